#pragma once
// Rule sets: how the executor runs each kind of op.
//
// A rule receives the op and a stack holding its inputs, and leaves the op's outputs on the
// stack; `op.implementation(stack)` is the op itself. A rule set maps op kinds to rules and
// has no default: running a program with an op the set does not name is an error that
// names the op, the set and the module path (graph/executor.hpp), never a silent fallback.
//
// Built-in sets here (layer masking's set is graph/masked_rules.hpp):
// - plain: every op as itself, the same numbers as the model's own forward.
// - guided_relu (guided backprop, Springenberg et al. 2015): ReLU and ReLU6 pass back only
//   positive gradients, and only where their input was in the active range:
//   dx = 1[lo < x < hi] * relu(g). Captum's GuidedBackprop does the same on nn.ReLU modules.
// - deconv_relu (deconvnet, Zeiler & Fergus 2014): ReLU and ReLU6 pass back relu(g),
//   ignoring the forward input (Captum's Deconvolution).
// Other activations (SiLU, Hardswish, sigmoid, GELU, ...) back-propagate plainly in the
// guided and deconvnet sets, as in Captum, which hooks nn.ReLU modules only. Captum leaves
// nn.ReLU6 (torchvision MobileNetV2) plain too; salient treats ReLU6 as a ReLU.
#include <initializer_list>
#include <span>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <torch/torch.h>

#include "salient/graph/program.hpp"

namespace salient::graph {

using Rule = std::function<void(const Op& op, torch::jit::Stack& stack)>;

class RuleSet {
 public:
  explicit RuleSet(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  const Rule* find(std::string_view kind) const {
    auto it = rules_.find(std::string(kind));
    return it == rules_.end() ? nullptr : &it->second;
  }
  // A copy named `name` with `rule` for each of `kinds` (replacing what was there).
  RuleSet with(std::string name, std::span<const std::string_view> kinds, const Rule& rule) const {
    RuleSet copy = *this;
    copy.name_ = std::move(name);
    return copy.add(kinds, rule), copy;
  }
  RuleSet& add(std::span<const std::string_view> kinds, const Rule& rule) {
    for (auto kind : kinds) rules_[std::string(kind)] = rule;
    return *this;
  }
  RuleSet& remove(std::initializer_list<std::string_view> kinds) {
    for (auto kind : kinds) rules_.erase(std::string(kind));
    return *this;
  }
  RuleSet& add(std::initializer_list<std::string_view> kinds, const Rule& rule) {
    return add(std::span<const std::string_view>(kinds.begin(), kinds.size()), rule);
  }

 private:
  std::string name_;
  std::unordered_map<std::string, Rule> rules_;
};

// Runs the op as itself.
inline void run_as_is(const Op& op, torch::jit::Stack& stack) { op.implementation(stack); }

// Ops on shapes, scalars, lists and tuples, control-flow helpers and errors: they compute
// no activation, so every rule set runs them as themselves.
inline constexpr std::string_view structural_ops[] = {
    "prim::ListConstruct", "prim::ListUnpack", "prim::TupleConstruct", "prim::TupleUnpack",
    "prim::TupleIndex", "prim::NumToTensor", "prim::RaiseException", "prim::Uninitialized",
    "prim::unchecked_cast", "prim::device", "prim::dtype", "prim::requires_grad", "prim::min",
    "prim::max", "prim::shape", "aten::Int", "aten::Float", "aten::Bool", "aten::ScalarImplicit",
    "aten::size", "aten::dim", "aten::len", "aten::__getitem__", "aten::__contains__", "aten::append",
    "aten::eq", "aten::ne", "aten::lt", "aten::gt", "aten::le", "aten::ge", "aten::__not__",
    "aten::__and__", "aten::__or__", "aten::__is__", "aten::__isnot__", "aten::floordiv",
    "aten::format", "aten::warn", "aten::list"};

// Tensor ops of image classifiers (torchvision's ResNet, VGG, DenseNet, SqueezeNet,
// MobileNet v2/v3, EfficientNet, AlexNet, GoogLeNet; the shared TF-converted models).
inline constexpr std::string_view tensor_ops[] = {
    "aten::_convolution", "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::batch_norm",
    "aten::layer_norm", "aten::group_norm", "aten::instance_norm", "aten::linear", "aten::matmul",
    "aten::addmm", "aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh", "aten::hardtanh_",
    "aten::leaky_relu", "aten::elu", "aten::gelu", "aten::sigmoid", "aten::hardsigmoid", "aten::silu",
    "aten::hardswish", "aten::tanh", "aten::mish", "aten::softmax", "aten::log_softmax", "aten::add",
    "aten::add_", "aten::sub", "aten::mul", "aten::div", "aten::neg", "aten::clamp", "aten::cat",
    "aten::stack", "aten::flatten", "aten::reshape", "aten::view", "aten::permute", "aten::transpose", "aten::t",
    "aten::contiguous", "aten::squeeze", "aten::unsqueeze", "aten::chunk", "aten::split",
    "aten::select", "aten::slice", "aten::mean", "aten::sum", "aten::max_pool2d",
    "aten::avg_pool2d", "aten::adaptive_avg_pool2d", "aten::adaptive_max_pool2d", "aten::dropout",
    "aten::dropout_", "aten::feature_dropout", "aten::pad", "aten::constant_pad_nd",
    "aten::upsample_bilinear2d", "aten::upsample_nearest2d", "aten::channel_shuffle"};

// An opaque torch::nn module inside a Sequential (graph/sequential.hpp): only the plain set
// may run it, since no other rule can see what it computes.
inline constexpr std::string_view opaque_module = "nn::Module";

inline RuleSet plain_rules() {
  RuleSet rules("plain");
  rules.add(structural_ops, run_as_is).add(tensor_ops, run_as_is).add({opaque_module}, run_as_is);
  return rules;
}

namespace detail {
// y = clamp(x, lo, hi) (ReLU: lo = 0, hi = inf) with a replaced backward pass.
struct ModifiedReluBackward : torch::autograd::Function<ModifiedReluBackward> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double lo,
                               double hi, bool guided) {
    ctx->save_for_backward({x});
    ctx->saved_data["lo"] = lo;
    ctx->saved_data["hi"] = hi;
    ctx->saved_data["guided"] = guided;
    return std::isinf(hi) && lo == 0.0 ? torch::relu(x) : torch::hardtanh(x, lo, hi);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto g = grads[0].clamp_min(0);
    if (ctx->saved_data["guided"].toBool()) {
      auto x = ctx->get_saved_variables()[0];
      g = g * ((x > ctx->saved_data["lo"].toDouble()) & (x < ctx->saved_data["hi"].toDouble()));
    }
    return {g, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

inline Rule modified_relu(bool guided) {
  return [guided](const Op& op, torch::jit::Stack& stack) {
    const bool is_relu = op.kind.rfind("aten::relu", 0) == 0 && op.kind != "aten::relu6";
    auto x = stack[0].toTensor();
    double lo = 0.0, hi = std::numeric_limits<double>::infinity();
    if (op.kind == "aten::relu6") hi = 6.0;
    if (!is_relu && op.kind != "aten::relu6") {  // hardtanh(x, min_val, max_val)
      lo = stack[1].toScalar().toDouble();
      hi = stack[2].toScalar().toDouble();
    }
    stack.clear();
    stack.emplace_back(ModifiedReluBackward::apply(x, lo, hi, guided));
  };
}
inline constexpr std::string_view relu_family[] = {"aten::relu", "aten::relu_", "aten::relu6",
                                                                        "aten::hardtanh", "aten::hardtanh_"};
}  // namespace detail

inline RuleSet guided_relu_rules() {
  return plain_rules().with("guided_relu", detail::relu_family, detail::modified_relu(true)).remove({opaque_module});
}
inline RuleSet deconv_relu_rules() {
  return plain_rules().with("deconv_relu", detail::relu_family, detail::modified_relu(false)).remove({opaque_module});
}

}  // namespace salient::graph
