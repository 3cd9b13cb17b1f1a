#pragma once
// Model parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"):
// re-initialise a model's layers, from the logits down (cascading) or one at a time
// (independent), and see whether an explanation changes. A method whose maps stay the same
// while the model is destroyed does not explain the model.
//
// Layers are grouped by module path: `group_depth = 2` makes "features.3" of MobileNetV2 or
// "layer2.1" of a ResNet one group (a block), `group_depth = 0` makes every module that owns
// parameters its own group. Parameters are changed in place (TorchScript and torch::nn
// modules alike) and always restored bit-for-bit afterwards, also when a visitor throws.
// Buffers (batch-norm running statistics) are left alone, as in the paper's code.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"

namespace salient {

// How a randomised layer gets its new weights.
//   layer_default: PyTorch's reset_parameters() of Conv*/Linear/norm layers: weights with
//                  two or more dimensions and their biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
//                  (kaiming_uniform with a = sqrt(5)); 1-D weights (norm scales) = 1 and their
//                  biases = 0.
//   normal:        every parameter ~ N(mean, stdev).
//   uniform:       every parameter ~ U(low, high).
enum class Reinitialisation { layer_default, normal, uniform };

struct ReinitOptions {
  Reinitialisation scheme = Reinitialisation::layer_default;
  double mean = 0, stdev = 0.01;     // normal
  double low = -0.05, high = 0.05;   // uniform
  uint64_t seed = 0;                 // each group draws from its own stream: seed and group index
};

enum class RandomisationMode {
  cascading,    // step k: the last k groups randomised (logits first, down to the input)
  independent,  // step k: only the k-th group from the top randomised
};

struct RandomisationOptions {
  RandomisationMode mode = RandomisationMode::cascading;
  ReinitOptions init = {};
  int group_depth = 2;              // module path components that name a group; 0: every module
  std::vector<std::string> groups;  // randomise only these groups (names from parameter_groups)
};

// The parameters of one group of layers, in the model's registration order.
struct ParameterGroup {
  std::string name;                     // module path prefix, e.g. "features.3"
  std::vector<std::string> parameters;  // full parameter names
};

// One state of the model during a randomisation test.
struct RandomisationStep {
  int64_t index = 0;                    // 0: the original model
  std::string group;                    // the group randomised at this step ("original" at 0)
  std::vector<std::string> randomised;  // every group randomised in this state
};

namespace detail {
// The module path owning `parameter`, cut to its first `depth` components (all when depth <= 0).
inline std::string owner_path(const std::string& parameter, int depth) {
  const auto last = parameter.rfind('.');
  const std::string path = last == std::string::npos ? std::string() : parameter.substr(0, last);
  size_t end = 0;
  for (int d = 0; depth > 0 && d < depth; ++d) {
    end = path.find('.', d == 0 ? 0 : end + 1);
    if (end == std::string::npos) return path;
  }
  return depth > 0 ? path.substr(0, end) : path;
}

inline std::vector<std::pair<std::string, torch::Tensor>> checked_parameters(const TorchModel& model) {
  auto parameters = model.named_parameters();
  if (parameters.empty())
    fail("parameter randomisation needs a TorchScript or torch::nn model with parameters "
         "(this model is a plain function or has none)");
  return parameters;
}

inline torch::Tensor find_parameter(const std::vector<std::pair<std::string, torch::Tensor>>& parameters,
                                    const std::string& name) {
  for (const auto& [n, t] : parameters)
    if (n == name) return t;
  fail("the model has no parameter '", name, "'");
}

// fan_in of a weight [out, in, k...] (PyTorch's _calculate_fan_in_and_fan_out).
inline int64_t fan_in(const torch::Tensor& weight) {
  int64_t fan = weight.size(1);
  for (int64_t d = 2; d < weight.dim(); ++d) fan *= weight.size(d);
  return fan;
}
}  // namespace detail

// The model's parameter groups in registration order (input side first).
inline std::vector<ParameterGroup> parameter_groups(const TorchModel& model, int group_depth = 2) {
  std::vector<ParameterGroup> groups;
  for (const auto& [name, tensor] : detail::checked_parameters(model)) {
    auto group = detail::owner_path(name, group_depth);
    if (group.empty()) group = "(model)";
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.name == group; });
    if (it == groups.end()) groups.push_back({group, {name}});
    else it->parameters.push_back(name);
  }
  return groups;
}

// A copy of every parameter of a model; restores them (bit-for-bit) when destroyed.
class ParameterSnapshot {
 public:
  explicit ParameterSnapshot(TorchModel& model) : model_(model) {
    for (const auto& [name, tensor] : detail::checked_parameters(model))
      saved_.push_back({tensor, tensor.detach().clone()});
  }
  ParameterSnapshot(const ParameterSnapshot&) = delete;
  ParameterSnapshot& operator=(const ParameterSnapshot&) = delete;
  ~ParameterSnapshot() { restore(); }

  void restore() {
    torch::NoGradGuard no_grad;
    for (auto& [live, copy] : saved_) live.detach().copy_(copy);
    model_.parameters_changed();
  }

 private:
  TorchModel& model_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;
};

// Re-initialises one group's parameters in place. `stream` separates the random draws of
// different groups (use the group's index) so a group gets the same weights in cascading and
// independent tests.
inline void reinitialise(TorchModel& model, const ParameterGroup& group, const ReinitOptions& options,
                         uint64_t stream = 0) {
  if (options.scheme == Reinitialisation::normal && !(options.stdev >= 0))
    detail::fail("normal re-initialisation needs stdev >= 0, got ", options.stdev);
  if (options.scheme == Reinitialisation::uniform && !(options.low <= options.high))
    detail::fail("uniform re-initialisation needs low <= high, got [", options.low, ", ", options.high, "]");
  auto parameters = detail::checked_parameters(model);
  auto generator = at::detail::createCPUGenerator(options.seed * 0x9E3779B97F4A7C15ull + stream + 1);
  torch::NoGradGuard no_grad;
  // The fan_in of a bias is that of the weight registered next to it (same module).
  auto weight_of = [&](const std::string& bias_name) -> torch::Tensor {
    auto weight = bias_name.substr(0, bias_name.size() - 4) + "weight";
    for (const auto& [n, t] : parameters)
      if (n == weight) return t;
    return {};
  };
  for (const auto& name : group.parameters) {
    auto live = detail::find_parameter(parameters, name);
    auto fresh = torch::empty(live.sizes(), torch::TensorOptions().dtype(torch::kFloat64));
    switch (options.scheme) {
      case Reinitialisation::normal: fresh.normal_(options.mean, options.stdev, generator); break;
      case Reinitialisation::uniform: fresh.uniform_(options.low, options.high, generator); break;
      case Reinitialisation::layer_default: {
        const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
        auto weight = is_bias ? weight_of(name) : live;
        if (weight.defined() && weight.dim() >= 2) {
          const double bound = 1.0 / std::sqrt(static_cast<double>(detail::fan_in(weight)));
          fresh.uniform_(-bound, bound, generator);
        } else {
          fresh.fill_(is_bias ? 0.0 : 1.0);  // norm layers: scale 1, shift 0
        }
        break;
      }
    }
    live.detach().copy_(fresh);
  }
  model.parameters_changed();
}

// Runs `visit(model, step)` on the original model (step 0) and then on each randomised state:
// cascading adds one group per step from the top (logits) down; independent randomises one
// group per step, restoring the others. The model's parameters are restored afterwards.
template <class Visit>
std::vector<RandomisationStep> for_each_randomisation(TorchModel& model, const RandomisationOptions& options,
                                                      Visit&& visit) {
  auto all = parameter_groups(model, options.group_depth);
  std::vector<std::pair<ParameterGroup, uint64_t>> chosen;  // group and its stream, top first
  for (size_t i = all.size(); i-- > 0;)
    if (options.groups.empty() || std::find(options.groups.begin(), options.groups.end(), all[i].name) != options.groups.end())
      chosen.push_back({all[i], i});
  for (const auto& wanted : options.groups)
    if (std::none_of(all.begin(), all.end(), [&](const auto& g) { return g.name == wanted; })) {
      std::string known;
      for (const auto& g : all) known += (known.empty() ? "" : ", ") + g.name;
      detail::fail("no parameter group '", wanted, "' at group_depth ", options.group_depth, " (groups: ", known, ")");
    }

  ParameterSnapshot snapshot(model);
  std::vector<RandomisationStep> steps{{0, "original", {}}};
  visit(model, steps.back());
  for (size_t k = 0; k < chosen.size(); ++k) {
    RandomisationStep step{static_cast<int64_t>(k + 1), chosen[k].first.name, {}};
    if (options.mode == RandomisationMode::independent) snapshot.restore();
    else step.randomised = steps.back().randomised;
    step.randomised.push_back(chosen[k].first.name);
    reinitialise(model, chosen[k].first, options.init, chosen[k].second);
    steps.push_back(step);
    visit(model, steps.back());
  }
  return steps;
}

}  // namespace salient
