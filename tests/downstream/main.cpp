// A user's program: integrated gradients of a linear model equals (x - b) * w.
#include <salient/salient.hpp>

#include <iostream>

int main() {
  auto linear = torch::nn::Linear(4, 2);
  salient::TorchModel model(linear);
  auto x = torch::randn({1, 4});
  auto ig = salient::integrated_gradients(model, x, 1, {.steps = 8});
  bool ok = torch::allclose(ig, x * linear->weight[1].detach(), 1e-5, 1e-6);
  std::cout << (ok ? "ok" : "wrong") << "\n";
  return ok ? 0 : 1;
}
