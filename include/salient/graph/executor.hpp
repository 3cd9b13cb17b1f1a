#pragma once
// Runs a graph::Program op by op under a rule set.
//
// Control flow (prim::If, prim::Loop) is run by the executor itself; every other op goes
// through the rule set's rule for its kind. Values are freed after their last use, as the
// TorchScript interpreter does. Autograd records whatever the rules compute, so gradients
// of the outputs (or of any watched value) follow the rules' backward passes.
#include <string>
#include <vector>

#include "salient/graph/program.hpp"
#include "salient/graph/rules.hpp"

namespace salient::graph {

// Watches values as they are computed (layer activations); `on_value` may replace them.
struct Watch {
  std::vector<ValueId> values;
  std::function<void(ValueId, Value&)> on_value;
};

namespace detail {

inline void check_rules(const Program& program, const Block& block, const RuleSet& rules) {
  for (const auto& op : block.ops) {
    if (op.blocks.empty() && !rules.find(op))
      salient::detail::fail_unsupported("rule set '", rules.name(), rules.refuses(op.kind) ? "' refuses op '" : "' has no rule for op '",
                                        op.kind, "' at '", op.where(), "' of ", program.source);
    for (const auto& inner : op.blocks) check_rules(program, inner, rules);
  }
}

inline std::string describe_inputs(const std::vector<Value>& frame, const Op& op) {
  std::string text;
  for (auto v : op.inputs) {
    if (!frame[v].isTensor()) continue;
    auto sizes = frame[v].toTensor().sizes();
    text += text.empty() ? "[" : ", [";
    for (std::size_t d = 0; d < sizes.size(); ++d) text += (d ? "," : "") + std::to_string(sizes[d]);
    text += "]";
  }
  return text;
}

class Run {
 public:
  Run(const Program& program, const RuleSet& rules, const Watch* watch)
      : program_(program), rules_(rules), watch_(watch), frame_(program.initial) {
    if (watch_) {
      watched_.assign(program.value_count(), false);
      for (auto v : watch_->values) watched_.at(static_cast<std::size_t>(v)) = true;
    }
  }

  std::vector<Value> operator()(std::vector<Value> inputs) {
    const auto& body = program_.body;
    if (inputs.size() != body.inputs.size())
      salient::detail::fail(program_.source, " takes ", body.inputs.size(), " inputs, got ", inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) set(body.inputs[i], std::move(inputs[i]));
    run(body);
    std::vector<Value> outputs;
    for (auto v : body.outputs) outputs.push_back(frame_[v]);
    return outputs;
  }

 private:
  void set(ValueId v, Value value) {
    frame_[v] = std::move(value);
    if (watch_ && watched_[v]) watch_->on_value(v, frame_[v]);
  }

  void run(const Block& block) {
    for (const auto& op : block.ops) {
      if (op.kind == "prim::If") {
        const auto& branch = op.blocks[frame_[op.inputs[0]].toBool() ? 0 : 1];
        run(branch);
        for (std::size_t k = 0; k < op.outputs.size(); ++k) set(op.outputs[k], frame_[branch.outputs[k]]);
      } else if (op.kind == "prim::Loop") {
        run_loop(op);
      } else {
        stack_.clear();
        for (auto v : op.inputs) stack_.push_back(frame_[v]);
        try {
          (*rules_.find(op))(op, stack_);
        } catch (const c10::Error& e) {
          std::string message = e.what_without_backtrace();
          salient::detail::fail("op '", op.kind, "' at '", op.where(),
                                "' failed on inputs ", describe_inputs(frame_, op), ": ",
                                message.substr(0, message.find('\n')));
        }
        if (stack_.size() != op.outputs.size())
          salient::detail::fail("rule set '", rules_.name(), "' left ", stack_.size(), " values for op '", op.kind,
                                "' at '", op.path, "', which has ", op.outputs.size(), " outputs");
        for (std::size_t k = 0; k < op.outputs.size(); ++k) set(op.outputs[k], std::move(stack_[k]));
      }
      for (auto v : op.release) frame_[v] = Value();
    }
  }

  void run_loop(const Op& op) {
    const auto& body = op.blocks[0];
    const int64_t trips = frame_[op.inputs[0]].toInt();
    bool condition = frame_[op.inputs[1]].toBool();
    std::vector<Value> carried;
    for (std::size_t k = 2; k < op.inputs.size(); ++k) carried.push_back(frame_[op.inputs[k]]);
    for (int64_t i = 0; i < trips && condition; ++i) {
      set(body.inputs[0], Value(i));
      for (std::size_t k = 0; k < carried.size(); ++k) set(body.inputs[k + 1], carried[k]);
      run(body);
      condition = frame_[body.outputs[0]].toBool();
      for (std::size_t k = 0; k < carried.size(); ++k) carried[k] = frame_[body.outputs[k + 1]];
    }
    for (std::size_t k = 0; k < op.outputs.size(); ++k) set(op.outputs[k], carried[k]);
  }

  const Program& program_;
  const RuleSet& rules_;
  const Watch* watch_;
  std::vector<bool> watched_;
  std::vector<Value> frame_;
  torch::jit::Stack stack_;
};

}  // namespace detail

// Runs `program` on `inputs` under `rules`; returns the program's outputs. Every op must
// have a rule the set does not refuse (checked before anything runs).
inline std::vector<Value> run(const Program& program, const RuleSet& rules, std::vector<Value> inputs,
                              const Watch* watch = nullptr) {
  detail::check_rules(program, program.body, rules);
  return detail::Run(program, rules, watch)(std::move(inputs));
}

}  // namespace salient::graph
