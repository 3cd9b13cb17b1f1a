// A rule set of your own, without touching the library: a new LRP rule written as a
// graph::BasicRule (zennit's BasicHook shape), the library's rules for the rest, and a
// different rule for the first convolution, selected by its module path.
#include <iostream>

#include "salient/attribution/relevance.hpp"

namespace graph = salient::graph;

// Epsilon-LRP whose stabiliser scales with the layer's output: eps = factor * std(z).
graph::BasicRule scaled_epsilon(double factor) {
  return {{graph::Variant{}},  // one run of the op, inputs and weights unchanged
          [factor](const torch::Tensor& relevance, const std::vector<torch::Tensor>& z) {
            return std::vector<torch::Tensor>{relevance / graph::stabilize(z[0], factor * z[0].std().item<double>())};
          },
          [](const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& g) { return x[0] * g[0]; }};
}

int main() {
  torch::manual_seed(0);
  namespace nn = torch::nn;
  nn::Sequential net(nn::Conv2d(nn::Conv2dOptions(3, 8, 3).padding(1).bias(false)), nn::ReLU(),
                     nn::Conv2d(nn::Conv2dOptions(8, 8, 3).padding(1).bias(false)), nn::ReLU(),
                     nn::AdaptiveAvgPool2d(1), nn::Flatten(), nn::Linear(nn::LinearOptions(8, 5).bias(false)));
  net->eval();
  salient::TorchModel model(net.ptr());

  graph::RuleSet rules("scaled epsilon");
  rules.otherwise(graph::run_as_is)  // every op without a rule: its own gradient
      .add(graph::ops::activation, graph::pass_rule())
      .add(graph::ops::convolution, graph::relevance_rule(scaled_epsilon(0.05)))
      .add(graph::ops::average_pooling, graph::relevance_rule(graph::lrp::norm()))
      .add({"aten::linear"}, graph::relevance_rule(graph::lrp::epsilon()))
      .at("0", "aten::conv2d", graph::relevance_rule(graph::lrp::flat()));  // module "0": the first convolution

  auto x = torch::randn({2, 3, 16, 16});
  auto relevance = salient::rule_gradient(model, x, 3, {.rules = rules});
  auto sums = relevance.sum({1, 2, 3});
  std::cout << "relevance of class 3 per image (starts at 1; the stabilisers absorb a little): " << sums[0].item<double>()
            << ", " << sums[1].item<double>() << "\n";
  // Flat spreads each position's relevance evenly over the channels; without biases, the
  // relevance is kept up to what the stabilisers take.
  const bool flat = torch::allclose(relevance.select(1, 0), relevance.select(1, 1));
  const bool kept = (sums <= 1 + 1e-5).all().item<bool>() && (sums > 0.5).all().item<bool>();
  if (!flat || !kept) {
    std::cerr << "custom rule set: unexpected relevance\n";
    return 1;
  }
  return 0;
}
