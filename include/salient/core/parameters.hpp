#pragma once
// The parameter capability: a model whose parameters can be listed, saved, restored and
// overwritten. The randomisation sanity checks (evaluation/randomisation.hpp) are written
// once over it. Like the layer capability it is a set of free functions found by
// argument-dependent lookup (in the model's namespace, or hidden friends):
//
//   parameter_list(model)              -> std::vector<ParameterInfo>, input side first
//   snapshot_parameters(model)         -> a snapshot S of every parameter's value
//   restore_parameters(model, S)       puts the saved values back, bit for bit
//   set_parameter(model, name, values) overwrites one parameter (row-major doubles)
//
// TorchModel implements it over its TorchScript or torch::nn module (core/torch_backend.hpp),
// the xtensor AnalyticCnn over its four arrays.
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "salient/core/model.hpp"

namespace salient {

struct ParameterInfo {
  std::string name;            // "features.3.conv.weight": module path, then the parameter
  std::vector<int64_t> shape;
};

template <class M>
concept ParameterModel = ForwardModel<M> &&
    requires(M& model, const std::string& name, const std::vector<double>& values) {
      { parameter_list(model) } -> std::same_as<std::vector<ParameterInfo>>;
      restore_parameters(model, snapshot_parameters(model));
      set_parameter(model, name, values);
    };

template <ParameterModel M>
using ParameterSnapshotOf = decltype(snapshot_parameters(std::declval<M&>()));

}  // namespace salient
