#pragma once
// Rule sets: how the executor runs each kind of op.
//
// A rule receives the op and a stack holding its inputs, and leaves the op's outputs on the
// stack; `op.implementation(stack)` is the op itself. A rule set maps op kinds to rules, and
// may have a rule for every other kind (`otherwise`) and kinds it refuses (`refuse`): a
// program with an op the set neither names nor passes on is an error that names the op, the
// set and the module path before anything runs (graph/executor.hpp), never a silent
// fallback. Rule sets that change behaviour name the ops they change and run every other op
// as itself, so an op they know nothing about (aten::floor_divide in ShuffleNet's channel
// shuffle, ...) stops no method that leaves it alone.
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
// nn.ReLU6 (torchvision MobileNetV2) plain too; salient treats ReLU6 as a ReLU. The guided
// and deconvnet sets refuse opaque torch::nn modules, whose ReLUs they cannot see.
#include <initializer_list>
#include <span>
#include <limits>
#include <optional>
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
  // The rule for `op`: the one set for its module path and kind, else the one for its kind.
  const Rule* find(const Op& op) const {
    if (!at_path_.empty()) {
      auto it = at_path_.find(op.path + '\n' + op.kind);
      if (it != at_path_.end()) return &it->second;
    }
    return find(op.kind);
  }
  // The rule for `kind`: its own, else the set's rule for every other kind; nullptr when the
  // set refuses the kind or has neither.
  const Rule* find(std::string_view kind) const {
    auto it = rules_.find(std::string(kind));
    if (it != rules_.end()) return it->second ? &it->second : nullptr;  // an empty rule: refused
    return otherwise_ ? &*otherwise_ : nullptr;
  }
  bool refuses(std::string_view kind) const {
    auto it = rules_.find(std::string(kind));
    return it != rules_.end() && !it->second;
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
  RuleSet& add(std::initializer_list<std::string_view> kinds, const Rule& rule) {
    return add(std::span<const std::string_view>(kinds.begin(), kinds.size()), rule);
  }
  // `rule` for ops of `kind` at module path `path` only (the first convolution gets its own
  // rule; composites, graph/relevance.hpp).
  RuleSet& at(std::string_view path, std::string_view kind, const Rule& rule) {
    at_path_[std::string(path) + '\n' + std::string(kind)] = rule;
    return *this;
  }
  // The rule for every kind the set does not name.
  RuleSet& otherwise(Rule rule) {
    otherwise_ = std::move(rule);
    return *this;
  }
  // Kinds the set must not run (checked before a program runs).
  RuleSet& refuse(std::initializer_list<std::string_view> kinds) {
    for (auto kind : kinds) rules_[std::string(kind)] = Rule();
    return *this;
  }

 private:
  std::string name_;
  std::unordered_map<std::string, Rule> rules_;  // an empty Rule marks a refused kind
  std::unordered_map<std::string, Rule> at_path_;  // "path\nkind" -> rule
  std::optional<Rule> otherwise_;
};

// Runs the op as itself.
inline void run_as_is(const Op& op, torch::jit::Stack& stack) { op.implementation(stack); }

// Ops on shapes, scalars, lists and tuples, control-flow helpers and errors: they compute
// no activation (layer masking, which refuses unknown ops on masked activations, runs them
// as themselves).
inline constexpr std::string_view structural_ops[] = {
    "prim::ListConstruct", "prim::ListUnpack", "prim::TupleConstruct", "prim::TupleUnpack",
    "prim::TupleIndex", "prim::NumToTensor", "prim::RaiseException", "prim::Uninitialized",
    "prim::unchecked_cast", "prim::device", "prim::dtype", "prim::requires_grad", "prim::min",
    "prim::max", "prim::shape", "aten::Int", "aten::Float", "aten::Bool", "aten::ScalarImplicit",
    "aten::size", "aten::dim", "aten::len", "aten::__getitem__", "aten::__contains__", "aten::append",
    "aten::eq", "aten::ne", "aten::lt", "aten::gt", "aten::le", "aten::ge", "aten::__not__",
    "aten::__and__", "aten::__or__", "aten::__is__", "aten::__isnot__", "aten::floordiv",
    "aten::format", "aten::warn", "aten::list"};

// Op kinds by what they compute, for rule sets to name what they change (TorchScript's ATen
// kinds; the torch::nn front end maps module types to the same kinds).
namespace ops {
inline constexpr std::string_view convolution[] = {"aten::_convolution", "aten::conv1d", "aten::conv2d", "aten::conv3d"};
inline constexpr std::string_view linear[] = {"aten::linear", "aten::matmul", "aten::addmm"};
inline constexpr std::string_view relu[] = {"aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh", "aten::hardtanh_"};
// Element-wise activations (the ReLU family included).
inline constexpr std::string_view activation[] = {
    "aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh", "aten::hardtanh_", "aten::leaky_relu", "aten::elu",
    "aten::gelu", "aten::sigmoid", "aten::hardsigmoid", "aten::silu", "aten::hardswish", "aten::tanh", "aten::mish",
    "aten::clamp"};
inline constexpr std::string_view arithmetic[] = {"aten::add", "aten::add_", "aten::sub", "aten::mul", "aten::div", "aten::neg"};
inline constexpr std::string_view dropout[] = {"aten::dropout", "aten::dropout_", "aten::feature_dropout"};
// batch_norm is per channel and position; the others normalise over positions.
inline constexpr std::string_view normalisation[] = {"aten::batch_norm", "aten::layer_norm", "aten::group_norm",
                                                     "aten::instance_norm"};
inline constexpr std::string_view max_pooling[] = {"aten::max_pool2d", "aten::adaptive_max_pool2d"};
inline constexpr std::string_view average_pooling[] = {"aten::avg_pool2d", "aten::adaptive_avg_pool2d"};
inline constexpr std::string_view upsampling[] = {"aten::upsample_bilinear2d", "aten::upsample_nearest2d"};
inline constexpr std::string_view padding[] = {"aten::pad", "aten::constant_pad_nd"};
// Values moved between dimensions without arithmetic.
inline constexpr std::string_view rearrangement[] = {"aten::view", "aten::reshape", "aten::transpose", "aten::permute",
                                                     "aten::contiguous", "aten::channel_shuffle"};
inline constexpr std::string_view split[] = {"aten::chunk", "aten::split", "aten::unsafe_chunk"};
}  // namespace ops

// An opaque torch::nn module inside a Sequential (graph/sequential.hpp): only the plain set
// may run it, since no other rule can see what it computes.
inline constexpr std::string_view opaque_module = "nn::Module";

inline RuleSet plain_rules() {
  RuleSet rules("plain");
  rules.otherwise(run_as_is);
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
}  // namespace detail

inline RuleSet guided_relu_rules() {
  return plain_rules().with("guided_relu", ops::relu, detail::modified_relu(true)).refuse({opaque_module});
}
inline RuleSet deconv_relu_rules() {
  return plain_rules().with("deconv_relu", ops::relu, detail::modified_relu(false)).refuse({opaque_module});
}

}  // namespace salient::graph
