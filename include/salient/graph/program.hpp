#pragma once
// The graph executor's intermediate representation: a model as a list of ops, each knowing
// the module it came from.
//
// A front end (TorchScript today: graph/torchscript.hpp; torch::nn::Sequential:
// graph/sequential.hpp) turns a model into a Program; the executor (graph/executor.hpp)
// runs it under a rule set (graph/rules.hpp). Rules see only this representation — op
// kinds named like ATen schemas ("aten::relu", "aten::_convolution"), input values and the
// op's own implementation — so another front end (ONNX, torch.export programs) can be
// added without touching a rule.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>

#include "salient/core/error.hpp"

namespace salient::graph {

using Value = c10::IValue;
using ValueId = std::int32_t;
// An op's own implementation: pops its inputs from the stack, pushes its outputs.
using Implementation = std::function<void(torch::jit::Stack&)>;

struct Op;

// A straight-line list of ops; control-flow ops own blocks (prim::If: then/else,
// prim::Loop: body).
struct Block {
  std::vector<ValueId> inputs;
  std::vector<Op> ops;
  std::vector<ValueId> outputs;
};

struct Op {
  std::string kind;                // "aten::_convolution", "prim::If", ...
  std::string path;                // module path ("layer4.1.conv2"; "" = the model's own code)
  std::vector<ValueId> inputs;
  std::vector<ValueId> outputs;
  std::vector<Block> blocks;       // non-empty only for control flow
  Implementation implementation;   // empty only for control flow
  std::vector<ValueId> release;    // values no longer needed once this op has run

  // Where the op is, for messages: its module path, or "<top level>".
  std::string_view where() const { return path.empty() ? std::string_view("<top level>") : std::string_view(path); }
};

// One call of a submodule: what flows in and what comes out.
struct Layer {
  std::string name;            // module path, with "@k" for the k-th call of a module called more than once
  std::string module;          // module path
  int call = 0;                // 0-based call index of the module
  int calls = 1;               // how many times the module is called
  std::vector<ValueId> inputs;  // tensors computed outside the call and used inside
  ValueId output = -1;          // its single tensor output
};

struct Program {
  std::string source;                  // what it was made from, for messages
  std::vector<Value> initial;          // per value: constants, parameters, module objects; None if computed
  std::vector<bool> is_tensor;         // per value: statically typed as a tensor
  Block body;                          // inputs: the model input(s); outputs: the model output(s)
  std::vector<Layer> layers;           // in execution order of their first op
  // Made on the assumption that a module runs its children in order: the first run checks
  // it against the model's own forward (graph/layers.hpp).
  bool check_against_forward = false;
  mutable bool checked = false;

  std::size_t value_count() const { return initial.size(); }

  // The layer called `name`; an error listing the closest valid names otherwise.
  const Layer& layer(std::string_view name) const;
  // Every name that refers to the same tensor as `layer`'s output, outermost first.
  std::vector<std::string> aliases(const Layer& layer) const {
    std::vector<std::string> names;
    for (const auto& other : layers)
      if (other.output == layer.output) names.push_back(other.name);
    std::stable_sort(names.begin(), names.end(),
                     [](const auto& a, const auto& b) { return a.size() < b.size(); });
    return names;
  }
};

namespace detail {
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The `count` names closest to `name` (edit distance; names containing it first).
inline std::vector<std::string> closest_names(std::string_view name, const std::vector<std::string>& names,
                                              std::size_t count = 5) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const auto& candidate : names) {
    bool contains = !name.empty() && candidate.find(name) != std::string::npos;
    scored.emplace_back(contains ? 0 : 1 + edit_distance(name, candidate), candidate);
  }
  std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> closest;
  for (std::size_t i = 0; i < scored.size() && i < count; ++i) closest.push_back(scored[i].second);
  return closest;
}
}  // namespace detail

inline const Layer& Program::layer(std::string_view name) const {
  for (const auto& candidate : layers)
    if (candidate.name == name) return candidate;
  std::vector<std::string> names;
  for (const auto& candidate : layers) names.push_back(candidate.name);
  std::string suggestions;
  for (const auto& n : detail::closest_names(name, names)) suggestions += (suggestions.empty() ? "" : ", ") + n;
  if (names.empty())
    salient::detail::fail("unknown layer '", name, "': ", source, " has no addressable layers");
  salient::detail::fail("unknown layer '", name, "' in ", source, "; closest valid names: ", suggestions,
                        " (list them all with --list-layers / salient::list_layers)");
}

}  // namespace salient::graph
