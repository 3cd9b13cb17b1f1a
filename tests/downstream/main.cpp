// A user's program: integrated gradients of a linear model equals (x - b) * w. It includes a
// header that needs each dependency's include path (LibTorch, xtensor, stb, Eigen,
// nlohmann_json, zlib) rather than salient.hpp, whose compiling on its own is the
// headers-alone test's business (and would triple this test's time).
#include <salient/attribution/integrated_gradients.hpp>
#include <salient/attribution/linear_surrogate.hpp>
#include <salient/core/torch_backend.hpp>
#include <salient/core/options.hpp>
#include <salient/core/xtensor_backend.hpp>
#include <salient/io/idx.hpp>
#include <salient/io/image.hpp>

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
