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
//
// Written once for any ParameterModel (core/parameters.hpp): TorchModel, or the xtensor
// AnalyticCnn. New weights are drawn from salient's own seeded generator (core/random.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/core/parameters.hpp"
#include "salient/core/random.hpp"

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

template <ParameterModel M>
std::vector<ParameterInfo> checked_parameters(const M& model) {
  auto parameters = parameter_list(model);
  if (parameters.empty())
    fail("parameter randomisation needs a model with parameters (a TorchScript or torch::nn module, not a plain "
         "function)");
  return parameters;
}

// fan_in of a weight [out, in, k...] (PyTorch's _calculate_fan_in_and_fan_out).
inline int64_t fan_in(const std::vector<int64_t>& weight) {
  int64_t fan = weight.size() > 1 ? weight[1] : 1;
  for (std::size_t d = 2; d < weight.size(); ++d) fan *= weight[d];
  return fan;
}

inline int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (auto d : shape) count *= d;
  return count;
}
}  // namespace detail

// The model's parameter groups in registration order (input side first).
template <ParameterModel M>
std::vector<ParameterGroup> parameter_groups(const M& model, int group_depth = 2) {
  std::vector<ParameterGroup> groups;
  for (const auto& [name, shape] : detail::checked_parameters(model)) {
    auto group = detail::owner_path(name, group_depth);
    if (group.empty()) group = "(model)";
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.name == group; });
    if (it == groups.end()) groups.push_back({group, {name}});
    else it->parameters.push_back(name);
  }
  return groups;
}

// A copy of every parameter of a model; restores them (bit-for-bit) when destroyed.
template <ParameterModel M>
class ParameterSnapshot {
 public:
  explicit ParameterSnapshot(M& model) : model_(model), saved_(snapshot_parameters(model)) {
    detail::checked_parameters(model);
  }
  ParameterSnapshot(const ParameterSnapshot&) = delete;
  ParameterSnapshot& operator=(const ParameterSnapshot&) = delete;
  ~ParameterSnapshot() { restore(); }

  void restore() { restore_parameters(model_, saved_); }

 private:
  M& model_;
  ParameterSnapshotOf<M> saved_;
};

// Re-initialises one group's parameters in place. `stream` separates the random draws of
// different groups (use the group's index) so a group gets the same weights in cascading and
// independent tests.
template <ParameterModel M>
void reinitialise(M& model, const ParameterGroup& group, const ReinitOptions& options, uint64_t stream = 0) {
  if (options.scheme == Reinitialisation::normal && !(options.stdev >= 0))
    detail::fail("normal re-initialisation needs stdev >= 0, got ", options.stdev);
  if (options.scheme == Reinitialisation::uniform && !(options.low <= options.high))
    detail::fail("uniform re-initialisation needs low <= high, got [", options.low, ", ", options.high, "]");
  const auto parameters = detail::checked_parameters(model);
  auto shape_of = [&](const std::string& name) -> const std::vector<int64_t>* {
    for (const auto& p : parameters)
      if (p.name == name) return &p.shape;
    return nullptr;
  };
  detail::Random random(options.seed * 0x9E3779B97F4A7C15ull + stream + 1);
  for (const auto& name : group.parameters) {
    const auto* shape = shape_of(name);
    if (!shape) detail::fail("the model has no parameter '", name, "'");
    std::vector<double> fresh(static_cast<std::size_t>(detail::element_count(*shape)));
    switch (options.scheme) {
      case Reinitialisation::normal:
        for (auto& v : fresh) v = random.normal(options.mean, options.stdev);
        break;
      case Reinitialisation::uniform:
        for (auto& v : fresh) v = options.low + (options.high - options.low) * random.uniform();
        break;
      case Reinitialisation::layer_default: {
        // The fan_in of a bias is that of the weight registered next to it (same module).
        const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
        const auto* weight = is_bias ? shape_of(name.substr(0, name.size() - 4) + "weight") : shape;
        if (weight && weight->size() >= 2) {
          const double bound = 1.0 / std::sqrt(static_cast<double>(detail::fan_in(*weight)));
          for (auto& v : fresh) v = -bound + 2 * bound * random.uniform();
        } else {
          std::fill(fresh.begin(), fresh.end(), is_bias ? 0.0 : 1.0);  // norm layers: scale 1, shift 0
        }
        break;
      }
    }
    set_parameter(model, name, fresh);
  }
}

// Runs `visit(model, step)` on the original model (step 0) and then on each randomised state:
// cascading adds one group per step from the top (logits) down; independent randomises one
// group per step, restoring the others. The model's parameters are restored afterwards.
template <ParameterModel M, class Visit>
std::vector<RandomisationStep> for_each_randomisation(M& model, const RandomisationOptions& options, Visit&& visit) {
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
