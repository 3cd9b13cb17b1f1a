#pragma once
// Relevance propagation as rule sets: LRP rules, the helper that makes them, canonizers and
// composites.
//
// Relevance is computed as a modified gradient, as zennit does: the target's output gradient
// (one-hot) flows back, and every op with a relevance rule replaces its backward pass. A
// rule in the shape of zennit's BasicHook (`BasicRule`) runs the op on modified inputs and
// parameters (one run per variant), maps the incoming relevance to gradients of those runs'
// outputs, and reduces the inputs and their gradients to the relevance of the op's input:
//
//   z_k = op_k(input_k(x))                      (variant k: input and parameter modifiers)
//   g_k = gradient_mapper(R, z)[k]              (e.g. R / stabilize(z_0) for epsilon)
//   R_x = reducer({input_k(x)}, {d z_k/d input_k . g_k})   (e.g. x * gradient)
//
// The rules (zennit 1.0 / Captum 0.8 definitions, stabilize(z) = z + eps * sign(z) with
// sign(0) = +1):
// - epsilon(eps):  R_x = x * W^T (R / stabilize(z, eps))               (Bach et al. 2015)
// - z_plus:        positive contributions only: x+ with W+ (bias+) and x- with W- (no
//                  bias), R_x = x+ * W+^T s + x- * W-^T s, s = R / stabilize(z+ + z-)
// - alpha_beta(a, b): a * (positive part as z_plus) - b * (negative part: x+ with W-
//                  (bias-), x- with W+ (no bias)), each normalised by its own sum
// - gamma(g):      W + g W+ for positive outputs, W + g W- for negative ones, split by the
//                  sign of the input (zennit's generalised Gamma, Montavon et al. 2019)
// - flat:          every weight 1, input 1, no bias: relevance spread evenly over the
//                  receptive field (Lapuschkin et al. 2019)
// - w_square:      weights squared, input 1 (Montavon et al. 2017)
// - z_box(lo, hi): x with W, minus lo with W+ and hi with W- (Montavon et al. 2017)
// - norm:          epsilon with eps = 1e-6 on an op without parameters (sums, average pooling)
// - pass:          relevance passes unchanged (activations)
// Ops without a relevance rule back-propagate their gradient (max pooling, reshapes,
// concatenation, dropout, additions of constants), as in zennit. An op that mixes two
// activations by multiplication (squeeze-excitation gates, attention) has no relevance
// rule: a composite refuses it, naming the op and its module path.
#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "salient/core/torch_backend.hpp"
#include "salient/graph/rules.hpp"
#include "salient/graph/torchscript.hpp"

namespace salient::graph {

// zennit's stabilizer: z + eps * sign(z), with sign(0) = +1.
inline torch::Tensor stabilize(const torch::Tensor& z, double epsilon = 1e-6) {
  return z + ((z == 0).to(z.scalar_type()) + z.sign()) * epsilon;
}

using TensorMap = std::function<torch::Tensor(const torch::Tensor&)>;

// One run of the op in a BasicRule: how its activation input and parameters are modified.
struct Variant {
  TensorMap input;          // applied to each activation input; none: unchanged
  TensorMap parameters;     // applied to weight and bias; none: unchanged
  bool zero_bias = false;   // the bias is left out (after `parameters`)
  bool unchanged() const { return !input && !parameters && !zero_bias; }
};

// zennit's BasicHook as a rule: variants, gradient mapper, reducer (see the top of the file).
struct BasicRule {
  std::vector<Variant> variants;
  // Gradients for each variant's output, from the relevance at the op's output and the
  // variants' outputs; an undefined tensor: the variant gets none (and a zero gradient).
  std::function<std::vector<torch::Tensor>(const torch::Tensor& relevance, const std::vector<torch::Tensor>& outputs)>
      gradient_mapper;
  // The relevance of one activation input from its modified forms and the gradients
  // w.r.t. them (one each per variant).
  std::function<torch::Tensor(const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& gradients)>
      reducer;
};

namespace detail {

inline bool has_parameters(std::string_view kind) {
  for (auto k : ops::convolution)
    if (k == kind) return true;
  return kind == "aten::linear";
}

// The stack positions of an op's activations: every tensor of an explicit sum, else the
// first input (weights, statistics and scalars are not relevance inputs).
inline std::vector<std::size_t> activation_positions(const Op& op, const torch::jit::Stack& stack) {
  if (op.kind != "salient::sum") return {0};
  std::vector<std::size_t> positions;
  for (std::size_t i = 0; i < stack.size(); ++i)
    if (stack[i].isTensor()) positions.push_back(i);
  return positions;
}

// One call of an op under a BasicRule: what its backward pass needs.
struct RelevanceCall : torch::CustomClassHolder {
  const Op* op = nullptr;
  std::shared_ptr<const BasicRule> rule;
  torch::jit::Stack stack;                          // the op's inputs
  std::vector<std::size_t> positions;               // of the activations in `stack`
  std::vector<torch::Tensor> outputs;               // per variant; undefined: identically zero
  std::vector<std::vector<torch::Tensor>> inputs;   // per variant, per activation: the modified input
};

// Runs every variant in the forward pass (autograd on, so backward needs no second run;
// the unchanged variant's output is the op's output) and applies the rule in backward.
struct RelevanceFunction : torch::autograd::Function<RelevanceFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, at::TensorList activations,
                               c10::intrusive_ptr<RelevanceCall> call) {
    torch::AutoGradMode grad(true);
    const Op& op = *call->op;
    const bool parameters = has_parameters(op.kind);
    torch::Tensor output;
    for (const auto& variant : call->rule->variants) {
      auto run = call->stack;
      std::vector<torch::Tensor> modified;
      // With no bias, an op with parameters is linear: all-zero inputs give a zero output.
      bool zero = parameters && variant.input && (variant.zero_bias || run[2].isNone());
      for (std::size_t i = 0; i < call->positions.size(); ++i) {
        auto x = activations[i].detach();
        if (variant.input) x = variant.input(x).detach();
        if (zero) zero = !x.any().item<bool>();
        x.requires_grad_(true);
        run[call->positions[i]] = x;
        modified.push_back(std::move(x));
      }
      call->inputs.push_back(std::move(modified));
      if (zero) {
        call->outputs.emplace_back();
        continue;
      }
      if (parameters) {
        if (variant.parameters) {
          run[1] = variant.parameters(run[1].toTensor());
          if (!run[2].isNone()) run[2] = variant.parameters(run[2].toTensor());
        }
        if (variant.zero_bias) run[2] = c10::IValue();
      }
      op.implementation(run);
      auto z = run.at(0).toTensor();
      if (variant.unchanged() && !output.defined()) output = z.detach();
      call->outputs.push_back(std::move(z));
    }
    if (!output.defined()) {  // no variant is the op itself
      torch::NoGradGuard no_grad;
      auto run = call->stack;
      for (std::size_t i = 0; i < call->positions.size(); ++i) run[call->positions[i]] = activations[i].detach();
      op.implementation(run);
      output = run.at(0).toTensor();
    }
    call->stack.clear();
    ctx->saved_data["call"] = c10::IValue::make_capsule(std::move(call));
    return output;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto call = c10::static_intrusive_pointer_cast<RelevanceCall>(ctx->saved_data["call"].toCapsule());
    const auto& relevance = grads[0];
    std::vector<torch::Tensor> outputs;
    for (const auto& z : call->outputs) outputs.push_back(z.defined() ? z : torch::zeros({}, relevance.options()));
    auto mapped = call->rule->gradient_mapper(relevance, outputs);
    if (mapped.size() != outputs.size())
      salient::detail::fail("relevance rule at '", call->op->where(), "': its gradient mapper gave ", mapped.size(),
                            " gradients for ", outputs.size(), " variants");
    std::vector<torch::Tensor> differentiated, wrt, grad_outputs;
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      if (!call->outputs[k].defined() || !mapped[k].defined()) continue;
      differentiated.push_back(call->outputs[k]);
      grad_outputs.push_back(mapped[k]);
      wrt.insert(wrt.end(), call->inputs[k].begin(), call->inputs[k].end());
    }
    std::vector<torch::Tensor> gradients;
    if (!differentiated.empty())
      gradients = torch::autograd::grad(differentiated, wrt, grad_outputs, /*retain_graph=*/false,
                                        /*create_graph=*/false, /*allow_unused=*/true);
    torch::autograd::variable_list result;
    const auto positions = call->positions.size();
    for (std::size_t i = 0; i < positions; ++i) {
      std::vector<torch::Tensor> inputs, input_gradients;
      std::size_t next = 0;
      for (std::size_t k = 0; k < outputs.size(); ++k) {
        const auto& x = call->inputs[k][i];
        inputs.push_back(x.detach());
        const bool used = call->outputs[k].defined() && mapped[k].defined();
        torch::Tensor g = used ? gradients[next * positions + i] : torch::Tensor();
        if (used) ++next;
        input_gradients.push_back(g.defined() ? g : torch::zeros({}, x.options()));
      }
      result.push_back(call->rule->reducer(inputs, input_gradients));
    }
    call->outputs.clear();
    call->inputs.clear();
    result.emplace_back();  // for `call`
    return result;
  }
};

// Relevance passes through unchanged (zennit's Pass: activations).
struct PassFunction : torch::autograd::Function<PassFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x, const Op* op,
                               torch::jit::Stack stack) {
    stack[0] = x.detach();
    op->implementation(stack);
    return stack.at(0).toTensor();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list grads) {
    return {grads[0], torch::Tensor(), torch::Tensor()};
  }
};

inline torch::Tensor positive(const torch::Tensor& x) { return x.clamp_min(0); }
inline torch::Tensor negative(const torch::Tensor& x) { return x.clamp_max(0); }
inline torch::Tensor gradient_only(const std::vector<torch::Tensor>&, const std::vector<torch::Tensor>& gradients) {
  return gradients[0];
}
inline torch::Tensor contributions(const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& gradients,
                                   std::size_t begin, std::size_t end) {
  auto total = inputs[begin] * gradients[begin];
  for (std::size_t k = begin + 1; k < end; ++k) total = total + inputs[k] * gradients[k];
  return total;
}
inline TensorMap gamma_weights(double gamma, bool positive_part) {
  return [gamma, positive_part](const torch::Tensor& p) {
    return p + gamma * (positive_part ? p.clamp_min(0) : p.clamp_max(0));
  };
}

}  // namespace detail

// The rule that applies `rule` to an op (its first input, or both terms of an explicit sum).
inline Rule relevance_rule(BasicRule rule) {
  auto shared = std::make_shared<const BasicRule>(std::move(rule));
  return [shared](const Op& op, torch::jit::Stack& stack) {
    auto call = c10::make_intrusive<detail::RelevanceCall>();
    call->op = &op;
    call->rule = shared;
    call->positions = detail::activation_positions(op, stack);
    std::vector<torch::Tensor> activations;
    for (auto p : call->positions) activations.push_back(stack.at(p).toTensor());
    call->stack = std::move(stack);
    stack.clear();
    stack.emplace_back(detail::RelevanceFunction::apply(at::TensorList(activations), std::move(call)));
  };
}

// Relevance passes through the op unchanged (its output must have its input's shape).
inline Rule pass_rule() {
  return [](const Op& op, torch::jit::Stack& stack) {
    auto x = stack.at(0).toTensor();
    auto inputs = std::move(stack);
    stack.clear();
    stack.emplace_back(detail::PassFunction::apply(x, &op, std::move(inputs)));
  };
}

// The LRP rules (definitions at the top of the file; parameters as zennit's defaults).
namespace lrp {
inline BasicRule epsilon(double epsilon = 1e-6) {
  return {{Variant{}},
          [epsilon](const torch::Tensor& r, const std::vector<torch::Tensor>& z) {
            return std::vector<torch::Tensor>{r / stabilize(z[0], epsilon)};
          },
          [](const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& g) {
            return detail::contributions(x, g, 0, 1);
          }};
}
inline BasicRule norm() { return epsilon(1e-6); }

inline BasicRule z_plus() {
  return {{Variant{detail::positive, detail::positive}, Variant{detail::negative, detail::negative, true}},
          [](const torch::Tensor& r, const std::vector<torch::Tensor>& z) {
            auto s = r / stabilize(z[0] + z[1]);
            return std::vector<torch::Tensor>{s, s};
          },
          [](const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& g) {
            return detail::contributions(x, g, 0, 2);
          }};
}

inline BasicRule alpha_beta(double alpha = 2.0, double beta = 1.0) {
  if (alpha < 0 || beta < 0 || std::abs(alpha - beta - 1.0) > 1e-12)
    salient::detail::fail("the alpha-beta rule needs alpha, beta >= 0 and alpha - beta = 1; got alpha = ", alpha,
                          ", beta = ", beta);
  return {{Variant{detail::positive, detail::positive}, Variant{detail::negative, detail::negative, true},
           Variant{detail::positive, detail::negative}, Variant{detail::negative, detail::positive, true}},
          [](const torch::Tensor& r, const std::vector<torch::Tensor>& z) {
            auto positive = r / stabilize(z[0] + z[1]), negative = r / stabilize(z[2] + z[3]);
            return std::vector<torch::Tensor>{positive, positive, negative, negative};
          },
          [alpha, beta](const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& g) {
            return alpha * detail::contributions(x, g, 0, 2) - beta * detail::contributions(x, g, 2, 4);
          }};
}

inline BasicRule gamma(double gamma = 0.25) {
  auto up = detail::gamma_weights(gamma, true), down = detail::gamma_weights(gamma, false);
  return {{Variant{detail::positive, up}, Variant{detail::negative, down, true}, Variant{detail::positive, down},
           Variant{detail::negative, up, true}, Variant{}},
          [](const torch::Tensor& r, const std::vector<torch::Tensor>& z) {
            auto positive = r * (z[4] > 0) / stabilize(z[0] + z[1]);
            auto negative = r * (z[4] < 0) / stabilize(z[2] + z[3]);
            return std::vector<torch::Tensor>{positive, positive, negative, negative, torch::Tensor()};
          },
          [](const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& g) {
            return detail::contributions(x, g, 0, 4);
          }};
}

inline BasicRule flat() {
  return {{Variant{[](const torch::Tensor& x) { return torch::ones_like(x); },
                   [](const torch::Tensor& p) { return torch::ones_like(p); }, true}},
          [](const torch::Tensor& r, const std::vector<torch::Tensor>& z) {
            return std::vector<torch::Tensor>{r / stabilize(z[0])};
          },
          detail::gradient_only};
}

inline BasicRule w_square() {
  return {{Variant{[](const torch::Tensor& x) { return torch::ones_like(x); },
                   [](const torch::Tensor& p) { return p * p; }}},
          [](const torch::Tensor& r, const std::vector<torch::Tensor>& z) {
            return std::vector<torch::Tensor>{r / stabilize(z[0])};
          },
          detail::gradient_only};
}

// `low` and `high` broadcast to the op's input without its batch dimension ([C,1,1] or
// [1,C,1,1] per channel, or scalars).
inline BasicRule z_box(torch::Tensor low, torch::Tensor high) {
  auto bound = [](torch::Tensor value) {
    return [value](const torch::Tensor& x) { return value.to(x.options()).expand_as(x); };
  };
  return {{Variant{}, Variant{bound(low), detail::positive}, Variant{bound(high), detail::negative}},
          [](const torch::Tensor& r, const std::vector<torch::Tensor>& z) {
            auto s = r / stabilize(z[0] - z[1] - z[2]);
            return std::vector<torch::Tensor>{s, s, s};
          },
          [](const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& g) {
            return x[0] * g[0] - x[1] * g[1] - x[2] * g[2];
          }};
}
}  // namespace lrp

// Canonizers: the program rewritten so that relevance rules see the layers they are meant
// for (zennit's canonizers), the model untouched.
// - A batch norm right after a convolution or linear op (its only user) is folded into it:
//   a `salient::fold_batch_norm` op computes W * s and (b - mean) * s + beta, s = gamma /
//   sqrt(var + eps), from the module's own tensors on every run (so a changed parameter is
//   seen). The batch norm becomes `salient::folded_batch_norm`, which composites pass
//   relevance through. As zennit 0.5's canonizer, it keeps its eps: it scales by
//   1 / sqrt(1 + eps) (1 - 5e-6 for eps = 1e-5), so numbers agree with zennit's exactly;
//   LRP's near-cancelling sums (a residual a + b close to 0) turn even that difference
//   into 7e-4 of the largest relevance on resnet18.
// - An addition of two activations (a residual connection) becomes `salient::sum`, so a
//   rule applies to it (zennit's ResNet canonizer); MobileNetV2's inverted residuals are the
//   same addition.
// - Sub, mul, div and matrix products of two activations get the kind "<kind> of two
//   activations", which relevance rule sets refuse: relevance has no rule for them.
namespace detail {
// Ops that combine their inputs arithmetically.
inline constexpr std::string_view mixing_ops[] = {"aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul",
                                                  "aten::mul_", "aten::div", "aten::div_", "aten::matmul", "aten::bmm",
                                                  "aten::einsum"};
}  // namespace detail

inline Program canonical_program(Program program) {
  auto& ops = program.body.ops;
  auto computed = [&](ValueId v) { return program.is_tensor[v] && program.initial[v].isNone(); };
  auto constant = [&](ValueId v) { return !program.initial[v].isNone(); };
  std::vector<int> uses(program.value_count(), 0), producer(program.value_count(), -1);
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
    std::vector<ValueId> used;
    detail::collect_uses(ops[i], used);
    for (auto v : used) ++uses[v];
    for (auto v : ops[i].outputs) producer[v] = i;
  }
  for (auto v : program.body.outputs) ++uses[v];
  auto new_value = [&] {
    program.initial.emplace_back();
    program.is_tensor.push_back(true);
    return static_cast<ValueId>(program.initial.size() - 1);
  };
  std::vector<std::pair<int, Op>> folds;  // inserted before the op at the index
  for (auto& op : ops) {
    if (op.kind == "aten::batch_norm" && op.inputs.size() >= 8) {
      const auto in = op.inputs[0];
      const int p = producer[in];
      bool foldable = p >= 0 && uses[in] == 1 && detail::has_parameters(ops[p].kind);
      for (std::size_t k = 1; foldable && k < 8; ++k) foldable = constant(op.inputs[k]);
      foldable = foldable && program.initial[op.inputs[5]].isBool() && !program.initial[op.inputs[5]].toBool();
      if (ops[p].kind == "aten::_convolution" && foldable)  // a transposed convolution's outputs are dim 1
        foldable = constant(ops[p].inputs[6]) && !program.initial[ops[p].inputs[6]].toBool();
      if (!foldable) continue;
      auto& target = ops[p];
      Op fold;
      fold.kind = "salient::fold_batch_norm";
      fold.path = op.path;
      fold.inputs = {target.inputs[1], target.inputs[2], op.inputs[1], op.inputs[2], op.inputs[3], op.inputs[4],
                     op.inputs[7]};
      fold.outputs = {new_value(), new_value()};
      fold.implementation = [](torch::jit::Stack& stack) {
        auto eps = stack[6].toDouble();
        auto weight = stack[0].toTensor(), mean = stack[4].toTensor(), var = stack[5].toTensor();
        // In zennit's order of operations, so that the folded weights agree to the last bit.
        auto root = (var + eps).sqrt();
        auto scale = stack[2].isNone() ? root.reciprocal() : stack[2].toTensor() / root;
        auto bias = ((stack[1].isNone() ? torch::zeros_like(mean) : stack[1].toTensor()) - mean) * scale;
        if (!stack[3].isNone()) bias = bias + stack[3].toTensor();
        std::vector<int64_t> shape(static_cast<std::size_t>(weight.dim()), 1);
        shape[0] = -1;
        auto folded = weight * scale.reshape(shape);
        stack.clear();
        stack.emplace_back(std::move(folded));
        stack.emplace_back(std::move(bias));
      };
      target.inputs[1] = fold.outputs[0];
      target.inputs[2] = fold.outputs[1];
      folds.emplace_back(p, std::move(fold));
      op.kind = "salient::folded_batch_norm";
      op.inputs = {in, op.inputs[7]};
      op.implementation = [](torch::jit::Stack& stack) {  // zennit 0.5's identity batch norm, which keeps its eps
        const auto eps = stack[1].toDouble();
        auto x = stack[0].toTensor();
        auto ones = torch::ones({x.size(1)}, x.options()), zeros = torch::zeros({x.size(1)}, x.options());
        stack.clear();
        stack.emplace_back(torch::batch_norm(x, ones, zeros, zeros, ones, false, 0.0, eps, false));
      };
    } else if ((op.kind == "aten::add" || op.kind == "aten::add_") && op.inputs.size() == 3 && computed(op.inputs[0]) &&
               computed(op.inputs[1]) && constant(op.inputs[2]) && program.initial[op.inputs[2]].toScalar().toDouble() == 1.0) {
      op.kind = "salient::sum";
    } else {
      const auto& mixing = detail::mixing_ops;
      if (std::find(std::begin(mixing), std::end(mixing), op.kind) == std::end(mixing)) continue;
      int activations = 0;
      for (auto v : op.inputs) activations += computed(v) ? 1 : 0;
      if (activations >= 2) op.kind += " of two activations";
    }
  }
  for (auto it = folds.rbegin(); it != folds.rend(); ++it)
    ops.insert(ops.begin() + it->first, std::move(it->second));
  for (auto& op : ops) op.release.clear();
  detail::plan_releases(program);
  return program;
}

// A composite: which relevance rule each op gets (zennit's composites). The first entry
// naming an op's kind wins; `first` replaces it for the first op (in execution order) of
// its kinds; every other op back-propagates its gradient. Composites run on the canonical
// program.
struct Composite {
  struct Entry {
    std::vector<std::string_view> kinds;
    Rule rule;
  };
  std::string name;
  std::vector<Entry> entries;
  std::optional<Entry> first;

  RuleSet rule_set(const Program& program) const {
    RuleSet rules("lrp " + name);
    rules.otherwise(run_as_is).refuse({opaque_module});
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) rules.add(it->kinds, it->rule);
    for (auto kind : detail::mixing_ops) rules.refuse({std::string(kind) + " of two activations"});
    if (first) {
      for (const auto& op : program.body.ops)
        if (std::find(first->kinds.begin(), first->kinds.end(), op.kind) != first->kinds.end()) {
          rules.at(op.path, op.kind, first->rule);
          break;
        }
    }
    return rules;
  }
};

// Parameters of the named composites (zennit's defaults; Captum's epsilon is 1e-9).
struct CompositeParameters {
  std::optional<double> epsilon;  // default: 1e-6, and 1e-9 for "epsilon" (Captum's LRP)
  double gamma = 0.25;
  torch::Tensor low, high;        // z-box bounds (epsilon_gamma_box): the lowest and highest model input
};

inline constexpr std::string_view composite_names[] = {"epsilon_plus_flat", "epsilon_gamma_box",
                                                       "epsilon_alpha2_beta1_flat", "epsilon_plus",
                                                       "epsilon_alpha2_beta1", "epsilon"};

// A composite name's check: an unknown one is an error that lists the valid ones.
inline void check_composite_name(std::string_view name) {
  if (std::find(std::begin(composite_names), std::end(composite_names), name) != std::end(composite_names)) return;
  std::string valid;
  for (auto n : composite_names) valid += (valid.empty() ? "" : ", ") + std::string(n);
  salient::detail::fail("unknown LRP composite '", name, "'; valid composites: ", valid);
}

// The named composite, with zennit's layer assignments:
// - every composite: activations and folded batch norms pass relevance on, explicit sums
//   and average pooling get norm, linear layers epsilon;
// - epsilon_plus: convolutions z-plus; epsilon_alpha2_beta1: convolutions alpha2-beta1;
// - epsilon_plus_flat / epsilon_alpha2_beta1_flat: the same, and flat for the first
//   convolution or linear layer;
// - epsilon_gamma_box: convolutions gamma, the first convolution z-box;
// - epsilon: Captum's LRP defaults, epsilon (1e-9) on convolutions, linear layers, max and
//   average pooling and batch norm; activations and dropout pass relevance on. A batch
//   norm that follows a convolution is folded into it here (Captum applies epsilon to it).
inline Composite composite(std::string_view name, const CompositeParameters& parameters = {}) {
  auto kinds = [](std::initializer_list<std::span<const std::string_view>> groups) {
    std::vector<std::string_view> all;
    for (auto group : groups) all.insert(all.end(), group.begin(), group.end());
    return all;
  };
  static constexpr std::string_view sum[] = {"salient::sum"};
  static constexpr std::string_view dense[] = {"aten::linear"};
  static constexpr std::string_view folded[] = {"salient::folded_batch_norm"};
  const double epsilon = parameters.epsilon.value_or(name == "epsilon" ? 1e-9 : 1e-6);
  Composite c{std::string(name), {}, std::nullopt};
  if (name == "epsilon") {
    auto rule = relevance_rule(lrp::epsilon(epsilon));
    c.entries = {{kinds({ops::activation, ops::dropout, folded}), pass_rule()},
                 {kinds({ops::convolution, dense, ops::max_pooling, ops::average_pooling, ops::normalisation, sum}), rule}};
    return c;
  }
  c.entries = {{kinds({ops::activation, folded}), pass_rule()},
               {kinds({sum, ops::average_pooling}), relevance_rule(lrp::norm())},
               {kinds({dense}), relevance_rule(lrp::epsilon(epsilon))}};
  auto convolutions = [&](BasicRule rule) { c.entries.push_back({kinds({ops::convolution}), relevance_rule(std::move(rule))}); };
  if (name == "epsilon_plus" || name == "epsilon_plus_flat") {
    convolutions(lrp::z_plus());
  } else if (name == "epsilon_alpha2_beta1" || name == "epsilon_alpha2_beta1_flat") {
    convolutions(lrp::alpha_beta(2.0, 1.0));
  } else if (name == "epsilon_gamma_box") {
    if (!parameters.low.defined() || !parameters.high.defined())
      salient::detail::fail("composite 'epsilon_gamma_box' needs the z-box bounds: the lowest and highest model input "
                            "(per channel: (0 - mean) / std and (1 - mean) / std for a normalised image)");
    convolutions(lrp::gamma(parameters.gamma));
    c.first = Composite::Entry{kinds({ops::convolution}), relevance_rule(lrp::z_box(parameters.low, parameters.high))};
  } else {
    check_composite_name(name);
  }
  if (name.ends_with("_flat")) c.first = Composite::Entry{kinds({ops::convolution, dense}), relevance_rule(lrp::flat())};
  return c;
}

// DeepLIFT's rescale rule (Shrikumar et al. 2017) as Captum's DeepLift defines it, run in
// two passes instead of Captum's one on [inputs; baselines]: a forward-only run on the
// baselines records the input and output of every op with a DeepLIFT rule
// (DeepLiftReferences), then the run on the inputs reads them back in the same order. In
// backward, an element-wise activation's gradient becomes delta_out / delta_in, its plain
// gradient where |delta_in| < eps. Max pooling passes its gradient, or with
// `rescale_max_pool` gets Captum's cross-max rule: the change of the window maximum is sent
// to the input's and the baseline's argmax positions, divided by delta_in
// (DeepLiftMaxPool in attribution/relevance_options.hpp says which of the two Captum 0.8
// computes where). Captum back-propagates through the baselines' half too, but with the
// same seed, the same linear maps and the same multipliers that half carries the inputs'
// gradient exactly, so one backward on the inputs gives its numbers; a baseline shared by
// many inputs runs forward once. Captum hooks only ReLU, ELU, LeakyReLU, Sigmoid, Tanh,
// Softplus and MaxPool modules used once; these rules apply to every element-wise activation
// op (ReLU6, SiLU, GELU, Hardswish too) and to functional or reused ones, since they see the
// graph, not modules. Other ops keep their gradients (linear ones are exact; products of
// activations get the plain gradient, as in Captum).
struct DeepLiftReferences {
  struct Entry {
    const Op* op;
    torch::Tensor input, output;
  };
  std::vector<Entry> entries;  // in execution order
  std::size_t next = 0;        // the entry the inputs' run reads next
  bool recording = true;
};

namespace detail {
// `t` [P, ...] minus `reference` [R, ...], where item i's reference is row i % R (R divides P).
inline torch::Tensor minus_reference(const torch::Tensor& t, const torch::Tensor& reference) {
  auto shape = t.sizes().vec();
  const auto rows = reference.size(0);
  shape[0] = rows;
  shape.insert(shape.begin(), t.size(0) / rows);
  return (t.view(shape) - reference.unsqueeze(0)).view(t.sizes());
}

// delta_out / delta_in = (y - y_ref) / (x - x_ref) in one pass over the activations (item
// i's references are row i % R); with the flat positions where |x - x_ref| < eps, which
// the caller fills.
inline std::pair<torch::Tensor, torch::Tensor> rescale_multipliers(const torch::Tensor& x, const torch::Tensor& y,
                                                                  const torch::Tensor& reference_x,
                                                                  const torch::Tensor& reference_y, double eps) {
  if (!x.is_cpu() || x.scalar_type() != y.scalar_type() || x.scalar_type() != reference_x.scalar_type() ||
      !x.sizes().equals(y.sizes())) {  // the same in tensor operations
    auto delta_in = minus_reference(x, reference_x);
    return {minus_reference(y, reference_y) / delta_in, (delta_in.abs() < eps).view(-1).nonzero().squeeze(1)};
  }
  auto xc = x.contiguous(), yc = y.contiguous(), rx = reference_x.contiguous(), ry = reference_y.to(y.dtype()).contiguous();
  auto multipliers = torch::empty_like(xc);
  const int64_t count = xc.numel(), period = rx.numel();
  std::vector<int64_t> small;
  std::mutex merge;
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "deeplift_rescale", [&] {
    const scalar_t *px = xc.data_ptr<scalar_t>(), *py = yc.data_ptr<scalar_t>();
    const scalar_t *prx = rx.data_ptr<scalar_t>(), *pry = ry.data_ptr<scalar_t>();
    scalar_t* pm = multipliers.data_ptr<scalar_t>();
    at::parallel_for(0, count, 32768, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> local;
      for (int64_t i = begin; i < end;) {  // runs within one item, so that the loops vectorise
        const int64_t j = i % period, run = std::min(end - i, period - j);
        const scalar_t *xi = px + i, *yi = py + i, *xr = prx + j, *yr = pry + j;
        scalar_t* mi = pm + i;
        for (int64_t k = 0; k < run; ++k) mi[k] = (yi[k] - yr[k]) / (xi[k] - xr[k]);
        for (int64_t k = 0; k < run; ++k)
          if (std::abs(xi[k] - xr[k]) < eps) local.push_back(i + k);
        i += run;
      }
      if (local.empty()) return;
      std::lock_guard lock(merge);
      small.insert(small.end(), local.begin(), local.end());
    });
  });
  return {multipliers, torch::tensor(small, torch::kLong)};
}

// The element-wise rescale rule (`max_pool` false: the multipliers computed in forward, so
// that backward is one product) or Captum's max-pool rule.
struct RescaleFunction : torch::autograd::Function<RescaleFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const Op* op,
                               torch::jit::Stack stack, const DeepLiftReferences::Entry& reference, double eps,
                               bool max_pool) {
    // The op run on `at` with autograd on (its own derivative is the fallback where
    // |delta_in| < eps); an in-place op on a copy, so that x keeps its values.
    auto with_autograd = [&](const torch::Tensor& at) {
      torch::AutoGradMode grad(true);
      auto leaf = at.detach().requires_grad_(true);
      auto run = stack;
      run[0] = op->kind.ends_with('_') ? leaf.clone() : leaf;
      op->implementation(run);
      return std::pair{leaf, run.at(0).toTensor()};
    };
    if (!max_pool) {
      auto run = stack;
      run[0] = op->kind.ends_with('_') ? x.clone() : x.detach();
      op->implementation(run);
      auto y = run.at(0).toTensor();
      auto [multipliers, positions] = rescale_multipliers(x, y, reference.input, reference.output, eps);
      if (positions.numel() > 0) {  // an element-wise op's derivative: the gradient of its sum, at those positions
        auto derivative = [&](const torch::Tensor& at) {
          auto [leaf, own] = with_autograd(at);
          auto d = torch::autograd::grad({own}, {leaf}, {torch::ones_like(own)}, false, false, true)[0];
          return d.defined() ? d : torch::zeros_like(at);
        };
        const bool scalar_arguments =
            std::none_of(stack.begin() + 1, stack.end(), [](const c10::IValue& v) { return v.isTensor(); });
        multipliers.view(-1).index_put_({positions}, scalar_arguments ? derivative(x.reshape(-1).index_select(0, positions))
                                                      : derivative(x).reshape(-1).index_select(0, positions));
      }
      ctx->saved_data["multipliers"] = multipliers;
      return y;
    }
    auto [leaf, y] = with_autograd(x);
    ctx->saved_data["x"] = leaf;
    ctx->saved_data["y"] = y;
    ctx->saved_data["reference_x"] = reference.input;
    ctx->saved_data["reference_y"] = reference.output;
    ctx->saved_data["eps"] = eps;
    stack[0] = c10::IValue();  // its pooling arguments
    ctx->saved_data["stack"] = c10::ivalue::Tuple::create(std::move(stack));
    return y.detach();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    if (ctx->saved_data.count("multipliers"))
      return {grads[0] * ctx->saved_data["multipliers"].toTensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
              torch::Tensor(), torch::Tensor()};
    auto x = ctx->saved_data["x"].toTensor(), y = ctx->saved_data["y"].toTensor();
    auto reference_x = ctx->saved_data["reference_x"].toTensor(), reference_y = ctx->saved_data["reference_y"].toTensor();
    const auto eps = ctx->saved_data["eps"].toDouble();
    auto plain = torch::autograd::grad({y}, {x}, {grads[0]}, false, false, true)[0];
    if (!plain.defined()) plain = torch::zeros_like(x);
    torch::NoGradGuard no_grad;
    x = x.detach(), y = y.detach();
    auto delta_in = minus_reference(x, reference_x);
    // The change of each window's maximum goes to the input's and the baseline's argmax.
    const auto& args = ctx->saved_data["stack"].toTupleRef().elements();
    auto kernel = args[1].toIntVector(), stride = args[2].toIntVector();
    if (stride.empty()) stride = kernel;
    auto argmax = [&](const torch::Tensor& input) {
      return std::get<1>(at::max_pool2d_with_indices(input, kernel, stride, args[3].toIntVector(),
                                                     args[4].toIntVector(), args[5].toBool()));
    };
    const auto rows = reference_x.size(0);
    auto reference_argmax = argmax(reference_x).unsqueeze(0).expand({x.size(0) / rows, -1, -1, -1, -1}).reshape(y.sizes());
    auto rise = minus_reference(y, reference_y);                 // y - y_ref
    auto above = rise.clamp_min(0), below = rise.clamp_max(0);  // max(y, y_ref) - y_ref, y - max(y, y_ref)
    const std::vector<int64_t> size{x.size(-2), x.size(-1)};
    auto multiplied = (at::max_unpool2d(grads[0] * above, argmax(x), size) +
                       at::max_unpool2d(grads[0] * below, reference_argmax, size)) / delta_in;
    return {torch::where(delta_in.abs() < eps, plain, multiplied), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

// Records the op's input and output while `references` is recording (the baselines' run),
// else applies the rescale rule against the next recorded entry (the inputs' run).
inline Rule deeplift_rule(std::shared_ptr<DeepLiftReferences> references, double eps, bool max_pool) {
  return [references, eps, max_pool](const Op& op, torch::jit::Stack& stack) {
    auto x = stack.at(0).toTensor();
    if (references->recording) {
      op.implementation(stack);
      references->entries.push_back({&op, x, stack.at(0).toTensor()});
      return;
    }
    auto& entries = references->entries;
    if (references->next >= entries.size() || entries[references->next].op != &op)
      salient::detail::fail("DeepLIFT: the inputs reach op '", op.kind, "' at '", op.where(),
                            "' where the baselines took another path through the model's control flow");
    const auto& reference = entries[references->next++];
    if (reference.input.dim() != x.dim() || x.size(0) % reference.input.size(0) != 0 ||
        !reference.input.sizes().slice(1).equals(x.sizes().slice(1)))
      salient::detail::fail("DeepLIFT: op '", op.kind, "' at '", op.where(), "' sees ", shape_string(x),
                            " for the inputs but ", shape_string(reference.input), " for the baselines");
    auto inputs = std::move(stack);
    stack.clear();
    stack.emplace_back(RescaleFunction::apply(x, &op, std::move(inputs), reference, eps, max_pool));
  };
}
}  // namespace detail

// The rules of both passes, sharing `references` (a fresh recording).
inline RuleSet deeplift_rules(const std::shared_ptr<DeepLiftReferences>& references, double eps = 1e-10,
                              bool rescale_max_pool = false) {
  static constexpr std::string_view max_pool[] = {"aten::max_pool2d"};
  auto rules = plain_rules().with("deeplift", ops::activation, detail::deeplift_rule(references, eps, false));
  if (rescale_max_pool) rules.add(max_pool, detail::deeplift_rule(references, eps, true));
  return rules.refuse({opaque_module});
}

}  // namespace salient::graph
