#pragma once
// Front end: a TorchScript module (traced or scripted) -> graph::Program.
//
// The forward graph is copied (the module is not changed) and inlined, so every op of every
// submodule is one node whose call stack names the module instances it came from
// ("layer4", "1", "conv2" -> path "layer4.1.conv2"). Module attributes that are not tensors
// (`training`, hyper-parameters) become constants and the branches they decide are folded
// away; tensor attributes (parameters, buffers) stay the module's own tensors, shared, so a
// change to a parameter is seen by the next run. In-place tensor ops are rewritten to their
// functional forms where that is safe, so a captured activation is never overwritten.
// Each remaining node runs through its own LibTorch implementation (node->getOperation()).
#include <atomic>
#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/script.h>

#include "salient/graph/program.hpp"

namespace salient::graph {

namespace detail {

// "layer4.1.conv2" from the node's inlined call stack ("" for the model's own code).
inline std::string module_path(const torch::jit::Node* node) {
  std::string path;
  if (auto stack = node->callstack()) {
    for (const auto& entry : (*stack)->vec()) {
      const auto& instance = std::get<2>(entry);
      if (!instance || instance->instance_name() == "SELF") continue;  // SELF: a method of the same module
      if (!path.empty()) path += '.';
      path += instance->instance_name();
    }
  }
  return path;
}

// The module objects and tensor attributes that prim::GetAttr nodes read, by value.
class AttributeResolver {
 public:
  AttributeResolver(torch::jit::Graph& graph, const torch::jit::Module& module) {
    known_[graph.inputs()[0]] = module._ivalue();
  }
  // The attribute a prim::GetAttr node reads, if its object is known.
  std::optional<c10::IValue> read(const torch::jit::Node* node) {
    auto object = known_.find(node->input(0));
    if (object == known_.end() || !object->second.isObject()) return std::nullopt;
    auto value = object->second.toObjectRef().getAttr(node->s(c10::Symbol::attr("name")));
    known_[node->output()] = value;
    return value;
  }
  const c10::IValue* find(const torch::jit::Value* value) const {
    auto it = known_.find(value);
    return it == known_.end() ? nullptr : &it->second;
  }

 private:
  std::unordered_map<const torch::jit::Value*, c10::IValue> known_;
};

// Replaces reads of non-tensor module attributes (training flags, sizes) by constants.
inline void constant_attributes(torch::jit::Graph& graph, const torch::jit::Module& module) {
  AttributeResolver resolver(graph, module);
  std::function<void(torch::jit::Block*)> walk = [&](torch::jit::Block* block) {
    for (auto* node : block->nodes()) {
      if (node->kind() == c10::prim::GetAttr) {
        auto value = resolver.read(node);
        if (value && !value->isTensor() && !value->isObject() && !value->isModule()) {
          torch::jit::WithInsertPoint guard(node);
          if (auto constant = torch::jit::tryInsertConstant(graph, *value))
            node->output()->replaceAllUsesWith(*constant);
        }
      }
      for (auto* inner : node->blocks()) walk(inner);
    }
  };
  walk(graph.block());
}

// List and tuple ops, which the TorchScript interpreter runs itself rather than as operators.
inline std::optional<Implementation> container_implementation(const torch::jit::Node* node) {
  using torch::jit::Stack;
  const auto kind = node->kind();
  const auto inputs = node->inputs().size(), outputs = node->outputs().size();
  auto take_inputs = [inputs](Stack& stack) {
    std::vector<c10::IValue> values(std::make_move_iterator(stack.end() - static_cast<long>(inputs)),
                                    std::make_move_iterator(stack.end()));
    stack.resize(stack.size() - inputs);
    return values;
  };
  if (kind == c10::prim::ListConstruct) {
    auto element = node->output()->type()->expectRef<c10::ListType>().getElementType();
    return [element, take_inputs](Stack& stack) {
      c10::impl::GenericList list(element);
      for (auto& value : take_inputs(stack)) list.push_back(std::move(value));
      stack.emplace_back(std::move(list));
    };
  }
  if (kind == c10::prim::TupleConstruct)
    return [take_inputs](Stack& stack) { stack.emplace_back(c10::ivalue::Tuple::create(take_inputs(stack))); };
  if (kind == c10::prim::ListUnpack || kind == c10::prim::TupleUnpack) {
    return [outputs](Stack& stack) {
      auto packed = torch::jit::pop(stack);
      std::vector<c10::IValue> elements = packed.isTuple() ? packed.toTupleRef().elements().vec() : packed.toListRef().vec();
      if (elements.size() != outputs)
        salient::detail::fail("cannot unpack ", elements.size(), " values into ", outputs);
      for (auto& e : elements) stack.push_back(std::move(e));
    };
  }
  if (kind == c10::prim::TupleIndex)
    return [](Stack& stack) {
      auto index = torch::jit::pop(stack).toInt();
      auto tuple = torch::jit::pop(stack);
      const auto& elements = tuple.toTupleRef().elements();
      stack.push_back(elements.at(index < 0 ? index + static_cast<int64_t>(elements.size()) : index));
    };
  if (kind == c10::prim::Uninitialized) return [](Stack& stack) { stack.emplace_back(); };
  if (kind == c10::aten::warn)  // once per op, as the interpreter does
    return [take_inputs, warned = std::make_shared<std::atomic<bool>>(false)](Stack& stack) {
      auto args = take_inputs(stack);
      if (!warned->exchange(true)) TORCH_WARN(args.at(0).toStringRef());
    };
  if (kind == c10::prim::unchecked_cast) return [](Stack&) {};
  return std::nullopt;
}

class ProgramBuilder {
 public:
  ProgramBuilder(torch::jit::Graph& graph, const torch::jit::Module& module, std::string source)
      : resolver_(graph, module) {
    program_.source = std::move(source);
    id(graph.inputs()[0]);
    program_.initial[0] = module._ivalue();
    for (std::size_t i = 1; i < graph.inputs().size(); ++i) program_.body.inputs.push_back(id(graph.inputs()[i]));
    convert(graph.block(), program_.body);
    for (auto* output : graph.outputs()) program_.body.outputs.push_back(id(output));
  }
  Program take() && { return std::move(program_); }

 private:
  ValueId id(const torch::jit::Value* value) {
    auto [it, inserted] = ids_.emplace(value, static_cast<ValueId>(program_.initial.size()));
    if (inserted) {
      program_.initial.emplace_back();
      program_.is_tensor.push_back(value->type()->kind() == c10::TypeKind::TensorType);
    }
    return it->second;
  }

  void convert(torch::jit::Block* block, Block& out) {
    for (auto* node : block->nodes()) {
      const auto kind = node->kind();
      if (kind == c10::prim::Constant) {
        program_.initial[id(node->output())] = *torch::jit::toIValue(node->output());
        continue;
      }
      if (kind == c10::prim::GetAttr) {
        if (auto value = resolver_.read(node)) {
          program_.initial[id(node->output())] = *value;
          continue;
        }
      }
      Op op;
      op.kind = kind.toQualString();
      op.path = module_path(node);
      for (auto* input : node->inputs()) op.inputs.push_back(id(input));
      for (auto* output : node->outputs()) op.outputs.push_back(id(output));
      for (auto* inner : node->blocks()) {
        Block& converted = op.blocks.emplace_back();
        for (auto* input : inner->inputs()) converted.inputs.push_back(id(input));
        convert(inner, converted);
        for (auto* output : inner->outputs()) converted.outputs.push_back(id(output));
      }
      if (auto container = container_implementation(node)) {
        op.implementation = std::move(*container);
      } else if (kind != c10::prim::If && kind != c10::prim::Loop) {
        try {
          op.implementation = node->getOperation();
        } catch (const c10::Error& e) {
          salient::detail::fail_unsupported("op '", op.kind, "' at '", op.path, "' of ", program_.source,
                                " has no LibTorch implementation: ", e.what_without_backtrace());
        }
      }
      out.ops.push_back(std::move(op));
    }
  }

  AttributeResolver resolver_;
  std::unordered_map<const torch::jit::Value*, ValueId> ids_;
  Program program_;
};

// Every value an op reads, including those read inside its blocks.
inline void collect_uses(const Op& op, std::vector<ValueId>& uses) {
  uses.insert(uses.end(), op.inputs.begin(), op.inputs.end());
  for (const auto& block : op.blocks) {
    for (const auto& inner : block.ops) collect_uses(inner, uses);
    uses.insert(uses.end(), block.outputs.begin(), block.outputs.end());
  }
}
inline void collect_definitions(const Op& op, std::vector<ValueId>& defs) {
  defs.insert(defs.end(), op.outputs.begin(), op.outputs.end());
  for (const auto& block : op.blocks) {
    defs.insert(defs.end(), block.inputs.begin(), block.inputs.end());
    for (const auto& inner : block.ops) collect_definitions(inner, defs);
  }
}

// Frees each computed top-level value after its last use (the graph outputs are kept).
inline std::vector<int> plan_releases(Program& program) {
  const auto& ops = program.body.ops;
  std::vector<int> last_use(program.value_count(), -1);
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
    std::vector<ValueId> uses;
    collect_uses(ops[i], uses);
    for (auto v : uses) last_use[v] = i;
  }
  std::vector<bool> kept(program.value_count(), false);
  for (auto v : program.body.outputs) kept[v] = true;
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
    auto& op = program.body.ops[i];
    for (auto v : op.outputs)
      if (!kept[v] && last_use[v] < i) op.release.push_back(v);  // never used
  }
  for (ValueId v = 0; v < static_cast<ValueId>(program.value_count()); ++v)
    if (!kept[v] && last_use[v] >= 0 && program.initial[v].isNone()) program.body.ops[last_use[v]].release.push_back(v);
  for (auto v : program.body.outputs) last_use[v] = static_cast<int>(ops.size());
  return last_use;
}

// Module calls: maximal runs of consecutive top-level ops inside one module path.
inline void find_layers(Program& program, const std::vector<int>& last_use) {
  struct Call {
    std::string module;
    int begin, end;
  };
  std::vector<Call> calls;
  std::map<std::string, std::size_t> latest;  // module -> its latest call
  const auto& ops = program.body.ops;
  // Ops that compute no tensor (argument checks, shape arithmetic, lists) neither start nor
  // end a call: TorchScript does not always give them the right call stack.
  auto neutral = [&](const Op& op) {
    return std::none_of(op.outputs.begin(), op.outputs.end(), [&](ValueId v) { return program.is_tensor[v]; });
  };
  int previous = -1;  // the last op that is not neutral
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
    if (neutral(ops[i])) continue;
    const auto& path = ops[i].path;
    for (std::size_t end = 0; end != std::string::npos && !path.empty();) {
      end = path.find('.', end + 1);
      auto prefix = path.substr(0, end);
      auto it = latest.find(prefix);
      if (it != latest.end() && calls[it->second].end == previous) {
        calls[it->second].end = i;
      } else {
        latest[prefix] = calls.size();
        calls.push_back({prefix, i, i});
      }
    }
    previous = i;
  }
  std::map<std::string, int> call_count;
  for (const auto& call : calls) ++call_count[call.module];
  std::map<std::string, int> call_index;
  for (const auto& call : calls) {
    Layer layer;
    layer.module = call.module;
    layer.call = call_index[call.module]++;
    layer.calls = call_count[call.module];
    layer.name = layer.call + 1 == layer.calls ? call.module : call.module + "@" + std::to_string(layer.call);
    std::vector<ValueId> uses, defs;
    for (int i = call.begin; i <= call.end; ++i) {
      collect_uses(ops[i], uses);
      collect_definitions(ops[i], defs);
    }
    std::set<ValueId> defined(defs.begin(), defs.end()), seen;
    for (auto v : uses)
      if (!defined.count(v) && program.is_tensor[v] && program.initial[v].isNone() && seen.insert(v).second)
        layer.inputs.push_back(v);
    std::vector<ValueId> outputs;
    for (int i = call.begin; i <= call.end; ++i)
      for (auto v : ops[i].outputs)
        if (program.is_tensor[v] && last_use[v] > call.end) outputs.push_back(v);
    if (outputs.size() != 1) continue;  // not addressable as one tensor
    layer.output = outputs.front();
    if (layer.calls > 1 && layer.call + 1 == layer.calls) {
      // The last call is also reachable as "<module>@<k>".
      Layer indexed = layer;
      indexed.name = call.module + "@" + std::to_string(layer.call);
      program.layers.push_back(std::move(indexed));
    }
    program.layers.push_back(std::move(layer));
  }
}

}  // namespace detail

// The forward graph of `module` as a Program (the module itself is not modified).
inline Program from_torchscript(const torch::jit::Module& module, std::string source = "the TorchScript model") {
  auto method = module.find_method("forward");
  if (!method) salient::detail::fail(source, " has no forward method");
  auto graph = method->graph()->copy();
  torch::jit::Inline(*graph);
  detail::constant_attributes(*graph, module);
  torch::jit::ConstantPropagation(graph);
  torch::jit::EliminateDeadCode(graph);
  torch::jit::RemoveTensorMutation(graph);
  torch::jit::EliminateDeadCode(graph);
  auto program = detail::ProgramBuilder(*graph, module, std::move(source)).take();
  auto last_use = detail::plan_releases(program);
  detail::find_layers(program, last_use);
  return program;
}

}  // namespace salient::graph
