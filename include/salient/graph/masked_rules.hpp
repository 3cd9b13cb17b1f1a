#pragma once
// Layer masking (Balasubramanian & Feizi 2023, "Towards Improved Input Masking for
// Convolutional Neural Networks"; ../shared/PAPERS.md paper 1) as a rule set of the executor.
//
// A binary mask [N,1,h,w] (1 = keep) travels with every activation; masked positions of an
// activation are 0. Per op:
// - convolution: masked input positions are first filled from their unmasked neighbours
//   (neighbour padding: rounds of "each still-empty position takes the mean of its known
//   3x3 neighbours", as deep as the kernel reaches: (kernel - 1) x dilation), the convolution runs, and its output is multiplied by the
//   mask max-pooled with the convolution's kernel, stride, padding and dilation (a position
//   is kept when its window saw any kept input). 1x1 convolutions skip the filling (their
//   outputs at masked positions are dropped anyway).
// - max pooling: masked positions do not take part (-inf); a window with no kept input gives
//   0 and is masked; the mask is max-pooled the same way.
// - average pooling (also adaptive, so global average pooling): the average over kept
//   positions only; masked where a window has none. Scaled so that an all-ones mask gives
//   exactly the plain op, count_include_pad included.
// - batch norm, activations, dropout, element-wise arithmetic: the op, then x mask; a binary
//   op's mask is the product of its operands' masks (a residual addition keeps a position
//   only where both branches do, as the paper's reference implementation).
// - concatenation along channels: the product of the parts' masks.
// - bilinear / nearest upsampling: the interpolation of kept values only, normalised by the
//   interpolated mask; the output mask is where that is positive.
// - explicit padding (aten::pad): pads the activation as the model does and the mask with 1
//   (the padding is part of the model's input, not a removed pixel).
// - flatten: the mask ends (classifier heads that read spatial positions directly, as in
//   VGG/AlexNet, see zeros at masked positions).
// Ops that cannot take a masked activation (linear, reshape, softmax, ...) run as themselves
// when no input carries a mask and are an error naming the op otherwise. A mask that keeps
// no pixel of an item gives that item's output for all-zero pooled features.
#include <limits>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "salient/graph/rules.hpp"

namespace salient::graph {

// The masks that travel with values during one masked run.
struct MaskState {
  std::vector<torch::Tensor> masks;                                    // per value id; undefined: nothing masked
  std::unordered_map<ValueId, std::vector<torch::Tensor>> list_masks;  // per Tensor[] value: its elements' masks
  explicit MaskState(std::size_t values) : masks(values) {}
};

namespace detail {

namespace F = torch::nn::functional;

inline std::vector<int64_t> int_pair(const Value& v, const char* what, const Op& op) {
  if (!v.isIntList()) salient::detail::fail("layer masking: op '", op.kind, "' at '", op.path, "' has a non-integer ", what);
  auto list = v.toIntVector();
  if (list.size() == 1) list.push_back(list[0]);
  return list;
}

// A mask of all ones is no mask: the rules then run the plain op, exactly.
inline torch::Tensor simplify(torch::Tensor mask) {
  if (mask.defined() && mask.min().item<float>() >= 1.0f) return {};
  return mask;
}

inline torch::Tensor combine(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return a * b;
}

// Neighbour padding: masked positions of x filled from kept neighbours, `rounds` deep (each
// round, every empty position next to a known one takes the mean of its known 3x3
// neighbours). The per-position weights depend on the mask only, so they are computed on
// one channel and each round costs one 3x3 box filter and one fused multiply-add over x.
// `input` holds 0 at removed positions (every masked rule keeps that invariant).
inline torch::Tensor neighbour_fill(const torch::Tensor& input, torch::Tensor known, int64_t rounds) {
  // The 3x3 mean with zero padding, as a depthwise convolution: LibTorch's CPU avg_pool2d
  // is ~10x slower than its depthwise convolution here.
  auto box = [](const torch::Tensor& t) {
    auto kernel = torch::full({t.size(1), 1, 3, 3}, 1.0 / 9.0, t.options());
    return F::conv2d(t, kernel, F::Conv2dFuncOptions().padding(1).groups(t.size(1)));
  };
  torch::Tensor x;
  for (int64_t round = 0; round < rounds; ++round) {
    if (known.min().item<float>() >= 1.0f) break;  // everything filled

    auto weight = box(known);                        // the fraction of known neighbours
    auto reached = (weight > 0).to(known.dtype());
    auto scale = (reached - known) / weight.clamp_min(1e-12);  // 1/weight where newly reached, else 0
    if (x.defined())
      x.addcmul_(box(x), scale);
    else
      x = torch::addcmul(input, box(input), scale);  // the first round makes the copy
    known = reached;
  }
  return x.defined() ? x : input;
}

// out * mask, in place when `out` is a fresh tensor (not one of the op's inputs).
inline torch::Tensor apply_mask(const torch::Tensor& out, const torch::Tensor& mask, const torch::jit::Stack& inputs) {
  for (const auto& input : inputs)
    if (input.isTensor() && input.toTensor().data_ptr() == out.data_ptr()) return out * mask;
  return out.mul_(mask);
}

// The rounds of neighbour padding a convolution needs: a kept output's window reaches at most
// (kernel - 1) * dilation positions away from the kept input that keeps it, so deeper fills
// are never read (the paper's reference implementation runs `kernel size` rounds; for
// undilated kernels the kept outputs are the same).
inline int64_t fill_rounds(const std::vector<int64_t>& kernel, const std::vector<int64_t>& dilation) {
  return std::max((kernel[0] - 1) * dilation[0], (kernel[1] - 1) * dilation[1]);
}

// Activations that map 0 to 0 keep removed positions at 0 without a multiply by the mask.
inline bool zero_preserving(std::string_view kind) {
  for (auto k : {"aten::relu", "aten::relu_", "aten::relu6", "aten::leaky_relu", "aten::elu", "aten::gelu",
                 "aten::silu", "aten::hardswish", "aten::tanh", "aten::mish", "aten::neg", "aten::dropout",
                 "aten::dropout_", "aten::feature_dropout", "aten::mul"})
    if (kind == k) return true;
  return false;
}

class MaskedRules {
 public:
  explicit MaskedRules(std::shared_ptr<MaskState> state) : state_(std::move(state)) {}

  torch::Tensor& mask(ValueId v) { return state_->masks.at(static_cast<std::size_t>(v)); }

  // op(x) * mask, mask passed on (activations, batch norm, dropout).
  Rule elementwise() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      torch::Tensor m;
      bool same_masks = true;  // every masked operand has this very mask
      for (std::size_t i = 0; i < op.inputs.size(); ++i) {
        if (!stack[i].isTensor()) continue;
        const auto& operand = mask(op.inputs[i]);
        if (m.defined() && operand.defined() && !operand.is_same(m)) same_masks = false;
        m = combine(m, operand);
      }
      // hardtanh keeps 0 when its range contains 0 (ReLU6); batch norm, sigmoid, ... do not.
      const bool keeps_zero = zero_preserving(op.kind) ||
                              ((op.kind == "aten::hardtanh" || op.kind == "aten::hardtanh_") &&
                               stack[1].toScalar().toDouble() <= 0 && stack[2].toScalar().toDouble() >= 0);
      const bool multiply = m.defined() && !(keeps_zero && same_masks);
      torch::jit::Stack inputs;
      if (multiply) inputs = stack;
      op.implementation(stack);
      if (multiply) stack[0] = apply_mask(stack[0].toTensor(), m, inputs);
      mask(op.outputs[0]) = m;
    };
  }

  Rule convolution() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto m = mask(op.inputs[0]);
      if (!m.defined()) return op.implementation(stack);
      if (op.kind == "aten::_convolution" && stack[6].toBool())
        salient::detail::fail("layer masking: transposed convolution at '", op.path, "' is not supported");
      auto weight = stack[1].toTensor();
      const std::vector<int64_t> kernel{weight.size(2), weight.size(3)};
      auto stride = int_pair(stack[3], "stride", op), dilation = int_pair(stack[5], "dilation", op);
      std::vector<int64_t> padding;
      if (stack[4].isString()) {  // conv2d(padding="same"|"valid")
        padding = {0, 0};
        if (stack[4].toStringRef() == "same")
          for (int d = 0; d < 2; ++d) padding[d] = dilation[d] * (kernel[d] - 1) / 2;
      } else {
        padding = int_pair(stack[4], "padding", op);
      }
      if (kernel[0] * kernel[1] > 1) stack[0] = neighbour_fill(stack[0].toTensor(), m, fill_rounds(kernel, dilation));
      op.implementation(stack);
      auto y = stack[0].toTensor();
      auto padded = F::pad(m, F::PadFuncOptions({padding[1], padding[1], padding[0], padding[0]}));
      auto out_mask = F::max_pool2d(padded, F::MaxPool2dFuncOptions(kernel).stride(stride).dilation(dilation));
      stack[0] = y.mul_(out_mask);  // the convolution's own fresh output
      mask(op.outputs[0]) = simplify(out_mask);
    };
  }

  // max_pool2d / adaptive_max_pool2d: masked positions take no part.
  Rule max_pool() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto m = mask(op.inputs[0]);
      if (!m.defined()) return op.implementation(stack);
      auto x = stack[0].toTensor();
      auto mask_stack = stack;
      // Removed positions hold 0, which can only win a window over negative kept values:
      // those are excluded with -inf (after a ReLU there are none, and the copy is skipped).
      const bool negative = x.min().item<float>() < 0;
      if (negative) stack[0] = x.masked_fill(m <= 0, -std::numeric_limits<float>::infinity());
      op.implementation(stack);
      mask_stack[0] = m;
      op.implementation(mask_stack);
      auto pooled_mask = mask_stack[0].toTensor();
      auto y = stack[0].toTensor();
      stack[0] = negative ? torch::where(pooled_mask > 0, y, torch::zeros_like(y)) : y.mul_(pooled_mask);
      mask(op.outputs[0]) = simplify(pooled_mask);
    };
  }

  // avg_pool2d, adaptive_avg_pool2d, upsampling: the op applied to kept values, normalised
  // by the op applied to the mask, relative to the op applied to an all-ones mask.
  Rule normalised() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto m = mask(op.inputs[0]);
      if (!m.defined()) return op.implementation(stack);
      auto run = [&](const torch::Tensor& t) {
        auto s = stack;
        s[0] = t;
        op.implementation(s);
        return s[0].toTensor();
      };
      auto x = stack[0].toTensor();
      auto kept = run(m), full = run(torch::ones_like(m));
      auto y = run(x * m) * (full / kept.clamp_min(1e-12));  // exactly run(x) where nothing is masked
      auto out_mask = (kept > 0).to(x.dtype());
      stack.clear();
      stack.emplace_back(y * out_mask);
      mask(op.outputs[0]) = simplify(out_mask);
    };
  }

  Rule pad() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto m = mask(op.inputs[0]);
      if (m.defined() && op.kind == "aten::pad" && stack.size() > 2 && stack[2].isString() &&
          stack[2].toStringRef() != "constant")
        salient::detail::fail("layer masking: padding mode '", stack[2].toStringRef(), "' at '", op.path,
                              "' is not supported (only constant padding)");
      auto widths = stack[1].toIntVector();
      if (m.defined() && widths.size() > 4)
        salient::detail::fail("layer masking: padding of more than the two spatial dimensions at '", op.path, "'");
      op.implementation(stack);
      if (m.defined()) mask(op.outputs[0]) = F::pad(m, F::PadFuncOptions(widths).value(1.0));
    };
  }

  Rule list_construct() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      std::vector<torch::Tensor> element_masks;
      bool any = false;
      for (std::size_t i = 0; i < op.inputs.size(); ++i) {
        element_masks.push_back(stack[i].isTensor() ? mask(op.inputs[i]) : torch::Tensor());
        any = any || element_masks.back().defined();
      }
      op.implementation(stack);
      if (any) state_->list_masks[op.outputs[0]] = std::move(element_masks);
    };
  }

  Rule append() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto element = mask(op.inputs[1]);
      auto it = state_->list_masks.find(op.inputs[0]);
      if (element.defined() && it == state_->list_masks.end())
        it = state_->list_masks.emplace(op.inputs[0], std::vector<torch::Tensor>(stack[0].toListRef().size())).first;
      if (it != state_->list_masks.end()) it->second.push_back(element);
      op.implementation(stack);
      if (it != state_->list_masks.end()) state_->list_masks[op.outputs[0]] = it->second;
    };
  }

  Rule cat() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto it = state_->list_masks.find(op.inputs[0]);
      torch::Tensor m;
      if (it != state_->list_masks.end())
        for (const auto& part : it->second) m = combine(m, part);
      const auto& parts = stack[0].toListRef();
      const int64_t dim = stack[1].toInt(), rank = parts.empty() ? 0 : parts[0].toTensor().dim();
      op.implementation(stack);
      if (!m.defined()) return;
      if (rank != 4 || (dim != 1 && dim != -3))
        salient::detail::fail("layer masking: concatenation along dimension ", dim, " at '", op.path,
                              "' (only channels of [N,C,H,W] activations can be concatenated with masks)");
      stack[0] = stack[0].toTensor() * m;
      mask(op.outputs[0]) = m;
    };
  }

  // The mask ends here (flatten into a classifier head).
  Rule end_mask() {
    return [](const Op& op, torch::jit::Stack& stack) { op.implementation(stack); };
  }

  // Ops that cannot take a masked activation.
  Rule mask_free() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      for (std::size_t i = 0; i < op.inputs.size(); ++i)
        if (stack[i].isTensor() && mask(op.inputs[i]).defined())
          salient::detail::fail("rule set 'masked' cannot apply op '", op.kind, "' at '",
                                op.path.empty() ? "<top level>" : op.path, "' to a masked activation");
      op.implementation(stack);
    };
  }

 private:
  std::shared_ptr<MaskState> state_;
};
}  // namespace detail

// The layer-masking rule set over `state` (whose masks for the model inputs are set before
// the run).
inline RuleSet masked_rules(const std::shared_ptr<MaskState>& state) {
  auto rules = std::make_shared<detail::MaskedRules>(state);
  RuleSet set("masked");
  set.add(structural_ops, run_as_is);
  // The rule objects share `rules` (and through it the state) by capture.
  auto keep = [rules](Rule rule) { return Rule([rules, rule](const Op& op, torch::jit::Stack& s) { rule(op, s); }); };
  set.add({"aten::_convolution", "aten::conv2d"}, keep(rules->convolution()));
  set.add({"aten::max_pool2d", "aten::adaptive_max_pool2d"}, keep(rules->max_pool()));
  set.add({"aten::avg_pool2d", "aten::adaptive_avg_pool2d", "aten::upsample_bilinear2d", "aten::upsample_nearest2d"},
          keep(rules->normalised()));
  set.add({"aten::batch_norm", "aten::relu", "aten::relu_", "aten::relu6", "aten::hardtanh", "aten::hardtanh_",
           "aten::leaky_relu", "aten::elu", "aten::gelu", "aten::sigmoid", "aten::hardsigmoid", "aten::silu",
           "aten::hardswish", "aten::tanh", "aten::mish", "aten::clamp", "aten::neg", "aten::dropout", "aten::dropout_",
           "aten::feature_dropout", "aten::add", "aten::add_", "aten::sub", "aten::mul", "aten::div"},
          keep(rules->elementwise()));
  set.add({"aten::pad", "aten::constant_pad_nd"}, keep(rules->pad()));
  set.add({"prim::ListConstruct"}, keep(rules->list_construct()));
  set.add({"aten::append"}, keep(rules->append()));
  set.add({"aten::cat"}, keep(rules->cat()));
  set.add({"aten::flatten"}, keep(rules->end_mask()));
  set.add({"aten::linear", "aten::matmul", "aten::addmm", "aten::softmax", "aten::log_softmax", "aten::reshape",
           "aten::view", "aten::permute", "aten::transpose", "aten::t", "aten::contiguous", "aten::squeeze",
           "aten::unsqueeze", "aten::select", "aten::slice", "aten::mean", "aten::sum"},
          keep(rules->mask_free()));
  return set;
}

}  // namespace salient::graph
