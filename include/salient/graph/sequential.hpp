#pragma once
// Front end: a torch::nn module whose children run in order -> graph::Program.
//
// A torch::nn::Sequential (nested ones too) or a module whose forward applies its
// registered children one after the other becomes one op per child, named by child path
// ("features.3"), so the layer API and rule sets work on C++-built models without a graph.
// Known module types become the ATen op they compute ("aten::conv2d", "aten::relu",
// "aten::hardtanh" for ReLU6, ...), with their parameters as inputs, so rules treat them
// exactly like the same op from a TorchScript graph; the op's implementation is the module's
// own forward. Other modules inside a Sequential are opaque ops of kind "nn::Module", which
// only the plain rule set runs. For a module that is not a Sequential, run_layers checks
// once that running its children in order reproduces its forward.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "salient/graph/program.hpp"

namespace salient::graph {

namespace detail {

struct ModuleOp {
  std::string kind;
  std::vector<Value> arguments;  // the op's inputs after the activation
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  // Set for ops with weights: computes from the stack (input and `arguments`), so a rule that
  // changes the weights on the stack (relevance rules, folded batch norms) is obeyed.
  Implementation from_stack = {};
};

inline torch::Tensor optional_stack_tensor(const Value& v) { return v.isNone() ? torch::Tensor() : v.toTensor(); }

// aten::conv2d(input, weight, bias, stride, padding (list or "same"/"valid"), dilation, groups)
inline void conv2d_from_stack(torch::jit::Stack& stack) {
  const auto n = stack.size();
  auto x = stack[n - 7].toTensor(), weight = stack[n - 6].toTensor(), bias = optional_stack_tensor(stack[n - 5]);
  auto stride = stack[n - 4].toIntVector(), dilation = stack[n - 2].toIntVector();
  const auto groups = stack[n - 1].toInt();
  auto y = stack[n - 3].isString() ? at::conv2d(x, weight, bias, stride, stack[n - 3].toStringRef(), dilation, groups)
                                   : at::conv2d(x, weight, bias, stride, stack[n - 3].toIntVector(), dilation, groups);
  stack.resize(n - 7);
  stack.emplace_back(std::move(y));
}
// aten::linear(input, weight, bias)
inline void linear_from_stack(torch::jit::Stack& stack) {
  const auto n = stack.size();
  auto y = at::linear(stack[n - 3].toTensor(), stack[n - 2].toTensor(), optional_stack_tensor(stack[n - 1]));
  stack.resize(n - 3);
  stack.emplace_back(std::move(y));
}

inline Value optional_tensor(const torch::Tensor& t) { return t.defined() ? Value(t) : Value(); }
template <std::size_t D>
Value int_list(const torch::ExpandingArray<D>& a) {
  return Value(c10::List<int64_t>(std::vector<int64_t>(a->begin(), a->end())));
}

// The ATen op a module of a known type computes; nullopt for other types.
inline std::optional<ModuleOp> known_module_op(const std::shared_ptr<torch::nn::Module>& m) {
  using namespace torch::nn;
  auto call = [](auto impl) { return [impl](const torch::Tensor& x) { return impl->forward(x); }; };
  if (auto c = std::dynamic_pointer_cast<Conv2dImpl>(m)) {
    const auto& o = c->options;
    const auto* explicit_padding = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
    Value padding = explicit_padding ? int_list(*explicit_padding)
                                     : Value(c10::get_if<torch::enumtype::kSame>(&o.padding()) ? "same" : "valid");
    const bool zero_padding = c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr;
    return ModuleOp{"aten::conv2d",
                    {c->weight, optional_tensor(c->bias), int_list(o.stride()), padding, int_list(o.dilation()), o.groups()},
                    call(c), zero_padding ? Implementation(conv2d_from_stack) : Implementation()};
  }
  if (auto l = std::dynamic_pointer_cast<LinearImpl>(m))
    return ModuleOp{"aten::linear", {l->weight, optional_tensor(l->bias)}, call(l), linear_from_stack};
  auto batch_norm = [&](auto b) {
    const auto& o = b->options;
    return ModuleOp{"aten::batch_norm",
                    {optional_tensor(b->weight), optional_tensor(b->bias), optional_tensor(b->running_mean),
                     optional_tensor(b->running_var), false, o.momentum().value_or(0.1), o.eps(), true},
                    call(b)};
  };
  if (auto b = std::dynamic_pointer_cast<BatchNorm2dImpl>(m)) return batch_norm(b);
  if (auto b = std::dynamic_pointer_cast<BatchNorm1dImpl>(m)) return batch_norm(b);
  if (auto r = std::dynamic_pointer_cast<ReLUImpl>(m)) return ModuleOp{"aten::relu", {}, call(r)};
  if (auto r = std::dynamic_pointer_cast<ReLU6Impl>(m)) return ModuleOp{"aten::hardtanh", {0.0, 6.0}, call(r)};
  if (auto h = std::dynamic_pointer_cast<HardtanhImpl>(m))
    return ModuleOp{"aten::hardtanh", {h->options.min_val(), h->options.max_val()}, call(h)};
  if (auto l = std::dynamic_pointer_cast<LeakyReLUImpl>(m)) return ModuleOp{"aten::leaky_relu", {l->options.negative_slope()}, call(l)};
  if (auto s = std::dynamic_pointer_cast<SigmoidImpl>(m)) return ModuleOp{"aten::sigmoid", {}, call(s)};
  if (auto t = std::dynamic_pointer_cast<TanhImpl>(m)) return ModuleOp{"aten::tanh", {}, call(t)};
  if (auto s = std::dynamic_pointer_cast<SiLUImpl>(m)) return ModuleOp{"aten::silu", {}, call(s)};
  if (auto g = std::dynamic_pointer_cast<GELUImpl>(m)) return ModuleOp{"aten::gelu", {}, call(g)};
  if (auto p = std::dynamic_pointer_cast<MaxPool2dImpl>(m)) {
    const auto& o = p->options;
    return ModuleOp{"aten::max_pool2d",
                    {int_list(o.kernel_size()), int_list(o.stride()), int_list(o.padding()), int_list(o.dilation()), o.ceil_mode()},
                    call(p)};
  }
  if (auto p = std::dynamic_pointer_cast<AvgPool2dImpl>(m)) {
    const auto& o = p->options;
    return ModuleOp{"aten::avg_pool2d",
                    {int_list(o.kernel_size()), int_list(o.stride()), int_list(o.padding()), o.ceil_mode(),
                     o.count_include_pad(), o.divisor_override() ? Value(*o.divisor_override()) : Value()},
                    call(p)};
  }
  if (auto p = std::dynamic_pointer_cast<AdaptiveAvgPool2dImpl>(m)) {
    auto size = p->options.output_size();
    std::vector<int64_t> out;
    for (const auto& s : *size) out.push_back(s ? *s : -1);
    return ModuleOp{"aten::adaptive_avg_pool2d", {c10::List<int64_t>(out)}, call(p)};
  }
  if (auto f = std::dynamic_pointer_cast<FlattenImpl>(m))
    return ModuleOp{"aten::flatten", {f->options.start_dim(), f->options.end_dim()}, call(f)};
  if (auto d = std::dynamic_pointer_cast<DropoutImpl>(m)) return ModuleOp{"aten::dropout", {d->options.p(), false}, call(d)};
  if (auto d = std::dynamic_pointer_cast<Dropout2dImpl>(m))
    return ModuleOp{"aten::feature_dropout", {d->options.p(), false}, call(d)};
  return std::nullopt;
}

class SequentialBuilder {
 public:
  Program take() && { return std::move(program_); }

  explicit SequentialBuilder(const std::shared_ptr<torch::nn::Module>& module) {
    program_.source = "the torch::nn model (" + module->name() + ")";
    auto input = new_value(true);
    program_.body.inputs.push_back(input);
    auto output = add_children(module, "", input);
    program_.body.outputs.push_back(output);
  }

 private:
  ValueId new_value(bool tensor, Value initial = Value()) {
    program_.initial.push_back(std::move(initial));
    program_.is_tensor.push_back(tensor);
    return static_cast<ValueId>(program_.initial.size() - 1);
  }

  ValueId add_op(const std::string& kind, const std::string& path, ValueId x, const std::vector<Value>& arguments,
                 std::function<torch::Tensor(const torch::Tensor&)> forward, Implementation from_stack = {}) {
    Op op;
    op.kind = kind;
    op.path = path;
    op.inputs.push_back(x);
    for (const auto& argument : arguments) op.inputs.push_back(new_value(argument.isTensor(), argument));
    const auto count = op.inputs.size();
    op.implementation = from_stack ? std::move(from_stack) : [forward = std::move(forward), count](torch::jit::Stack& stack) {
      auto input = stack[stack.size() - count].toTensor();
      stack.resize(stack.size() - count);
      stack.emplace_back(forward(input));
    };
    auto output = new_value(true);
    op.outputs.push_back(output);
    program_.body.ops.push_back(std::move(op));
    Layer layer;
    layer.name = layer.module = path;
    layer.inputs = {x};
    layer.output = output;
    program_.layers.push_back(layer);
    return output;
  }

  // Adds `module`'s children in order; returns the value they produce.
  ValueId add_children(const std::shared_ptr<torch::nn::Module>& module, const std::string& path, ValueId x) {
    const auto first_layer = program_.layers.size();
    auto sequential = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(module);
    auto children = module->named_children();
    if (children.is_empty())
      salient::detail::fail_unsupported("module '", path.empty() ? module->name() : path, "' (", module->name(),
                            ") has no children to run in order");
    std::size_t index = 0;
    for (const auto& child : children) {
      const auto child_path = path.empty() ? child.key() : path + "." + child.key();
      const auto& m = child.value();
      if (std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m)) {
        x = add_children(m, child_path, x);
      } else if (auto op = known_module_op(m)) {
        x = add_op(op->kind, child_path, x, op->arguments, op->forward, op->from_stack);
      } else if (sequential) {
        auto any = sequential->begin()[static_cast<long>(index)];
        x = add_op("nn::Module", child_path, x, {}, [any](const torch::Tensor& in) mutable { return any.forward(in); });
      } else {
        salient::detail::fail_unsupported("child '", child_path, "' of type ", m->name(), " cannot be run in order: only "
                              "torch::nn::Sequential runs modules of any type (wrap the model in one)");
      }
      ++index;
    }
    if (!path.empty()) {  // the container as a layer of its own
      Layer layer;
      layer.name = layer.module = path;
      layer.inputs = program_.layers[first_layer].inputs;
      layer.output = x;
      program_.layers.insert(program_.layers.begin() + static_cast<long>(first_layer), layer);
    }
    return x;
  }

  Program program_;
};
}  // namespace detail

inline Program from_sequential(const std::shared_ptr<torch::nn::Module>& module) {
  auto program = detail::SequentialBuilder(module).take();
  program.check_against_forward = !std::dynamic_pointer_cast<torch::nn::SequentialImpl>(module);
  return program;
}

}  // namespace salient::graph
