#pragma once
// Layer masking (Balasubramanian & Feizi 2023, "Towards Improved Input Masking for
// Convolutional Neural Networks", CVPR 2023) as a rule set of the executor: the TorchScript
// driver of the backend-neutral arithmetic in masking/layer_masking.hpp (mask pooling, the
// neighbour-fill plan and its replay, run here per item and per channel plane in parallel).
//
// A binary mask [N,1,h,w] (1 = keep) travels with every activation. What an activation holds
// at removed positions never reaches a kept position: the rules below read only kept (or
// filled) values wherever an op mixes positions. So removed positions are not zeroed after
// every op; a value is marked "dirty" instead (removed positions hold anything), and the
// few ops that read them clean it first (max/average pooling, upsampling, the end of the
// mask). Per op:
// - convolution: masked input positions are first filled from their unmasked neighbours
//   (neighbour padding: rounds of "each still-empty position takes the mean of its known
//   3x3 neighbours", as deep as the kernel reaches: (kernel - 1) x dilation); positions the
//   fill does not reach are 0. The output's mask is the input's max-pooled with the
//   convolution's kernel, stride, padding and dilation (a position is kept when its window
//   saw any kept input; every other position of that window is filled). 1x1 convolutions
//   need no fill and keep the mask.
// - max pooling: masked positions do not take part (-inf); a window with no kept input gives
//   0 and is masked; the mask is max-pooled the same way.
// - average pooling (also adaptive, so global average pooling): the average over kept
//   positions only; masked where a window has none. Scaled so that an all-ones mask gives
//   exactly the plain op, count_include_pad included.
// - batch norm, activations, dropout, element-wise arithmetic: the op itself; a binary op's
//   mask is the product of its operands' masks (a residual addition keeps a position only
//   where both branches do, as the paper's reference implementation).
// - concatenation along channels: the product of the parts' masks.
// - bilinear / nearest upsampling: the interpolation of kept values only, normalised by the
//   interpolated mask; the output mask is where that is positive.
// - explicit padding (aten::pad): pads the activation as the model does and the mask with 1
//   (the padding is part of the model's input, not a removed pixel).
// - flatten: the mask ends, removed positions become 0 (classifier heads that read spatial
//   positions directly, as in VGG/AlexNet, see zeros there).
// - mean over H and W (a global average pool written as a mean): the average over kept
//   positions; the mask ends.
// - transposes and permutations: the mask moves with the values (any layout; the ops above
//   that mix positions then need the positions last again, as ConvNeXt's permute back does).
// - channel rearrangements (view / reshape keeping N, H and W, contiguous, channel_shuffle)
//   and channel splits (chunk, split, then the list's elements): the mask travels unchanged
//   (ShuffleNet's shuffle).
// - layer norm over trailing dimensions and linear layers, where the mask has size 1 on the
//   dimensions they mix (ConvNeXt's channels-last blocks): the op itself, per position.
// Every other op (softmax, other reductions, ..., and any op this set does not name) runs as itself
// when no input carries a mask and is an error naming the op otherwise. A mask that keeps
// no pixel of an item gives that item's output for all-zero pooled features.
#include <algorithm>
#include <array>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "salient/graph/rules.hpp"
#include "salient/masking/layer_masking.hpp"

namespace salient::graph {

namespace detail {

namespace F = torch::nn::functional;

inline std::vector<int64_t> int_pair(const Value& v, const char* what, const Op& op) {
  if (!v.isIntList()) salient::detail::fail_unsupported("layer masking: op '", op.kind, "' at '", op.path, "' has a non-integer ", what);
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
// neighbours). This is the tensor-op form, for devices other than the CPU: each round costs
// one 3x3 box filter over x and one fused multiply-add, the per-position weights computed
// on the one-channel mask. `input` holds 0 at removed positions (every masked rule keeps
// that invariant).
inline torch::Tensor neighbour_fill_dense(const torch::Tensor& input, torch::Tensor known, int64_t rounds) {
  // The 3x3 mean with zero padding, as a depthwise convolution (cheaper than avg_pool2d).
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
    // Out of place: under autograd, an in-place round would change the x that the box
    // filter's backward saved, tying the graph into a reference cycle that is never freed.
    x = x.defined() ? torch::addcmul(x, box(x), scale) : torch::addcmul(input, box(input), scale);
    known = reached;
  }
  return x.defined() ? x : input;
}

// A mask [N,1,h,w] as the float planes the arithmetic of masking/layer_masking.hpp reads.
inline torch::Tensor host_planes(const torch::Tensor& mask) { return mask.to(torch::kCPU, torch::kFloat).contiguous(); }

// The mask of a window op's output (masking::pool_mask per item).
inline torch::Tensor mask_max_pool(const torch::Tensor& mask, const masking::Window& window) {
  auto m = host_planes(mask);
  const int64_t items = m.size(0), h = m.size(2), w = m.size(3);
  const int64_t oh = window.output_size(h, 0), ow = window.output_size(w, 1);
  auto out = torch::empty({items, 1, oh, ow}, m.options());
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item)
      masking::pool_mask(m.data_ptr<float>() + item * h * w, h, w, window, out.data_ptr<float>() + item * oh * ow);
  });
  return out.to(mask.options());
}

// One fill plan per item of a mask [N,1,h,w].
using FillPlans = std::vector<masking::FillPlan>;

inline FillPlans plan_neighbour_fill(const torch::Tensor& mask, int64_t rounds) {
  auto m = host_planes(mask);
  const int64_t items = m.size(0), h = m.size(2), w = m.size(3);
  FillPlans plans(static_cast<std::size_t>(items));
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item)
      plans[static_cast<std::size_t>(item)] = masking::plan_neighbour_fill(m.data_ptr<float>() + item * h * w, h, w, rounds);
  });
  return plans;
}

// Neighbour fill by the plans: x [N,C,h,w] with each item's ring filled (same values as
// neighbour_fill_dense up to rounding) and, when `zero_removed`, the other removed positions 0
// whatever x held there. In place when `in_place` (x contiguous and seen by no one else: the
// caller checks), else in a copy, each channel plane filled right after it is copied, while it
// is in cache.
inline torch::Tensor neighbour_fill(const torch::Tensor& input, const FillPlans& plans, bool zero_removed, bool in_place = false) {
  auto x = input.contiguous();
  auto filled = in_place && x.is_same(input) ? x : torch::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t channels = x.size(1), plane_size = x.size(2) * x.size(3);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "neighbour_fill", [&] {
    const scalar_t* source = x.data_ptr<scalar_t>();
    scalar_t* target = filled.data_ptr<scalar_t>();
    at::parallel_for(0, x.size(0) * channels, 8, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        scalar_t* p = target + plane * plane_size;
        if (p != source + plane * plane_size) std::copy_n(source + plane * plane_size, plane_size, p);
        masking::neighbour_fill(p, plans[static_cast<std::size_t>(plane / channels)], zero_removed);
      }
    });
  });
  return filled;
}

// Whether the rule may change input `i` of `op` in place: this is its last use (the executor
// releases it after the op), it is that op's input once, and no other value, view or caller
// holds the tensor or its memory (the frame's and the stack's references only).
inline bool owned_by_op(const Op& op, std::size_t i, const torch::jit::Stack& stack) {
  const ValueId v = op.inputs[i];
  if (std::find(op.release.begin(), op.release.end(), v) == op.release.end() ||
      std::count(op.inputs.begin(), op.inputs.end(), v) != 1 || !stack[i].isTensor())
    return false;
  const auto& x = stack[i].toTensor();
  return x.use_count() <= 2 && x.storage().use_count() == 1 && x.is_contiguous() && !x.requires_grad();
}

}  // namespace detail

// The masks that travel with values during one masked run.
struct MaskState {
  std::vector<torch::Tensor> masks;  // per value id; undefined: nothing masked
  std::vector<char> dirty;           // per value id: removed positions may hold anything (else 0)
  std::unordered_map<ValueId, std::vector<torch::Tensor>> list_masks;  // per Tensor[] value: its elements' masks
  // Fill plans by mask and depth: the convolutions at one resolution usually share a mask.
  struct CachedPlan {
    torch::Tensor mask;
    int64_t rounds;
    std::shared_ptr<const detail::FillPlans> plan;
  };
  std::vector<CachedPlan> fill_plans;
  explicit MaskState(std::size_t values) : masks(values), dirty(values, 0) {}

  // Marks what `v` holds: its mask, and whether removed positions may hold anything.
  void set(ValueId v, torch::Tensor mask, bool may_be_dirty) {
    const auto i = static_cast<std::size_t>(v);
    dirty.at(i) = mask.defined() && may_be_dirty;
    masks[i] = std::move(mask);
  }

  // `value` (the value of `v`) with 0 at its removed positions (NaN or inf there included).
  torch::Tensor clean(ValueId v, const torch::Tensor& value) const {
    const auto i = static_cast<std::size_t>(v);
    if (!masks.at(i).defined() || !dirty[i]) return value;
    return torch::where(masks[i] > 0, value, torch::zeros({}, value.options()));
  }

  const detail::FillPlans& fill_plan(const torch::Tensor& mask, int64_t rounds) {
    for (const auto& cached : fill_plans)
      if (cached.mask.is_same(mask) && cached.rounds == rounds) return *cached.plan;
    fill_plans.push_back({mask, rounds, std::make_shared<const detail::FillPlans>(detail::plan_neighbour_fill(mask, rounds))});
    return *fill_plans.back().plan;
  }
};

namespace detail {

class MaskedRules {
 public:
  explicit MaskedRules(std::shared_ptr<MaskState> state) : state_(std::move(state)) {}

  const torch::Tensor& mask(ValueId v) const { return state_->masks.at(static_cast<std::size_t>(v)); }

  // The mask of input `i` of an op that mixes positions (convolution, pooling, padding, ...):
  // [N,1,H,W] (or [1,1,H,W]) for an [N,C,H,W] activation. A permute can leave a mask in another
  // layout (channels-last [N,H,W,1]), whose positions such an op cannot find.
  const torch::Tensor& spatial_mask(const Op& op, std::size_t i, const torch::jit::Stack& stack) const {
    const auto& m = mask(op.inputs[i]);
    if (!m.defined()) return m;
    const auto x = stack[i].toTensor();
    if (x.dim() != 4 || m.dim() != 4 || m.size(1) != 1 || (m.size(0) != x.size(0) && m.size(0) != 1) ||
        m.size(2) != x.size(2) || m.size(3) != x.size(3))
      salient::detail::fail_unsupported("layer masking: op '", op.kind, "' at '", op.where(),
                                        "' mixes the positions of a masked activation ", x.sizes(),
                                        " whose positions are not its last two dimensions (mask ", m.sizes(), ")");
    return m;
  }

  // Element-wise ops (activations, batch norm, dropout, arithmetic) run as themselves: a kept
  // position of the output reads only that position of the inputs.
  Rule elementwise() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      torch::Tensor m;
      for (std::size_t i = 0; i < op.inputs.size(); ++i)
        if (stack[i].isTensor()) m = combine(m, mask(op.inputs[i]));
      op.implementation(stack);
      state_->set(op.outputs[0], m, true);
    };
  }

  Rule convolution() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto m = spatial_mask(op, 0, stack);
      if (!m.defined()) return op.implementation(stack);
      if (op.kind == "aten::_convolution" && stack[6].toBool())
        salient::detail::fail_unsupported("layer masking: transposed convolution at '", op.path, "' is not supported");
      auto weight = stack[1].toTensor();
      const auto stride = int_pair(stack[3], "stride", op), dilation = int_pair(stack[5], "dilation", op);
      masking::Window window{{weight.size(2), weight.size(3)}, {stride[0], stride[1]}, {0, 0}, {dilation[0], dilation[1]}};
      if (!stack[4].isString()) {
        const auto padding = int_pair(stack[4], "padding", op);
        window.padding = {padding[0], padding[1]};
      } else if (stack[4].toStringRef() == "same") {  // conv2d(padding="same"|"valid")
        for (int d = 0; d < 2; ++d) window.padding[d] = window.dilation[d] * (window.kernel[d] - 1) / 2;
      }
      if (window.kernel[0] * window.kernel[1] > 1) {
        const auto& x = stack[0].toTensor();
        const int64_t rounds = masking::fill_rounds(window);
        // The planned fill runs on the CPU outside autograd; the tensor-op form elsewhere.
        const bool planned = x.device().is_cpu() &&
                             (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble) &&
                             !(x.requires_grad() && torch::GradMode::is_enabled());
        // An activation no one reads after this convolution is filled in place (MobileNets'
        // depthwise convolutions read wide expanded activations: the copy was most of the
        // cost of masking them).
        stack[0] = planned ? neighbour_fill(x, state_->fill_plan(m, rounds), state_->dirty[static_cast<std::size_t>(op.inputs[0])],
                                            owned_by_op(op, 0, stack))
                           : neighbour_fill_dense(state_->clean(op.inputs[0], x), m, rounds);
      }  // a pointwise convolution needs no fill: its outputs at removed positions are removed
      op.implementation(stack);
      // A pointwise convolution keeps the mask object itself, so later fills find its plan.
      state_->set(op.outputs[0], window.pointwise() ? m : simplify(mask_max_pool(m, window)), true);
    };
  }

  // max_pool2d / adaptive_max_pool2d: masked positions take no part.
  Rule max_pool() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto m = spatial_mask(op, 0, stack);
      if (!m.defined()) return op.implementation(stack);
      auto x = stack[0].toTensor();
      auto mask_stack = stack;
      // A removed position can win a window over kept values unless it holds 0 and the kept
      // values are not negative (after a ReLU): otherwise it is excluded with -inf.
      const bool exclude = state_->dirty[static_cast<std::size_t>(op.inputs[0])] || x.min().item<float>() < 0;
      if (exclude) stack[0] = x.masked_fill(m <= 0, -std::numeric_limits<float>::infinity());
      op.implementation(stack);
      mask_stack[0] = m;
      op.implementation(mask_stack);
      auto pooled_mask = mask_stack[0].toTensor();
      auto y = stack[0].toTensor();
      if (exclude) stack[0] = torch::where(pooled_mask > 0, y, torch::zeros({}, y.options()));
      state_->set(op.outputs[0], simplify(pooled_mask), false);  // a window of removed zeros gives 0
    };
  }

  // avg_pool2d, adaptive_avg_pool2d, upsampling: the op applied to kept values, normalised
  // by the op applied to the mask, relative to the op applied to an all-ones mask. With
  // `spatial_mean` (aten::mean over H and W: a global average pool written as a mean) the
  // output has no positions left, so the mask ends there.
  Rule normalised(bool spatial_mean = false) {
    return [this, spatial_mean](const Op& op, torch::jit::Stack& stack) {
      auto m = spatial_mask(op, 0, stack);
      if (!m.defined()) return op.implementation(stack);
      if (spatial_mean) {
        const int64_t rank = stack[0].toTensor().dim();
        auto dims = stack.size() > 1 && stack[1].isIntList() ? stack[1].toIntVector() : std::vector<int64_t>{};
        for (auto& d : dims) d = d < 0 ? d + rank : d;
        std::sort(dims.begin(), dims.end());
        if (rank != 4 || dims != std::vector<int64_t>{2, 3})
          salient::detail::fail_unsupported("layer masking: a mean at '", op.path,
                                            "' over other than the spatial dimensions of a masked [N,C,H,W] activation");
      }
      auto run = [&](const torch::Tensor& t) {
        auto s = stack;
        s[0] = t;
        op.implementation(s);
        return s[0].toTensor();
      };
      auto x = state_->clean(op.inputs[0], stack[0].toTensor());
      auto kept = run(m), full = run(torch::ones_like(m));
      // Exactly run(x) where nothing is masked; 0 where nothing is kept.
      auto y = run(x) * (full / kept.clamp_min(1e-12));
      stack.clear();
      stack.emplace_back(y);
      state_->set(op.outputs[0], spatial_mean ? torch::Tensor() : simplify((kept > 0).to(x.dtype())), false);
    };
  }

  // Ops that move values without arithmetic. Transposes and permutations move the mask with
  // the values, so every value keeps its own mask entry whatever the new layout (ConvNeXt's
  // channels-last blocks: permute to [N,H,W,C], per-position ops, permute back); ops that then
  // mix positions check the layout (spatial_mask). contiguous changes nothing. view / reshape /
  // channel_shuffle move values between channels only, keeping each at its position (ShuffleNet's
  // shuffle: view to [N,g,C/g,H,W], transpose(1,2), contiguous, view back): the mask, shaped
  // [N,1,...,1,H,W], is reshaped to the output's rank; one that merges or splits positions is
  // an error naming the op.
  Rule rearrangement() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      const auto m = mask(op.inputs[0]);
      if (!m.defined()) return op.implementation(stack);
      const bool dirty = state_->dirty[static_cast<std::size_t>(op.inputs[0])];
      const int64_t rank = stack[0].toTensor().dim();
      if (op.kind == "aten::transpose" || op.kind == "aten::permute") {
        if (m.dim() != rank)
          salient::detail::fail_unsupported("layer masking: op '", op.kind, "' at '", op.where(), "' on an activation of rank ",
                                            rank, " with a mask of rank ", m.dim());
        auto moved = op.kind == "aten::transpose" ? m.transpose(stack[1].toInt(), stack[2].toInt())
                                                  : m.permute(stack[1].toIntVector());
        op.implementation(stack);
        state_->set(op.outputs[0], moved, dirty);
        return;
      }
      op.implementation(stack);
      if (op.kind == "aten::contiguous") return state_->set(op.outputs[0], m, dirty);
      const auto y = stack[0].toTensor();
      const int64_t n = m.size(0), h = m.size(-2), w = m.size(-1);
      bool positions_last = m.dim() >= 3;
      for (int64_t d = 1; d + 2 < m.dim(); ++d) positions_last = positions_last && m.size(d) == 1;
      if (!positions_last || y.dim() < 4 || y.size(0) != n || y.size(-2) != h || y.size(-1) != w)
        salient::detail::fail_unsupported("rule set 'masked' cannot apply op '", op.kind, "' at '", op.where(),
                                          "' to a masked activation (it moves values between positions or items)");
      std::vector<int64_t> shape(static_cast<std::size_t>(y.dim()), 1);
      shape.front() = n, shape[shape.size() - 2] = h, shape.back() = w;
      state_->set(op.outputs[0], m.reshape(shape), dirty);
    };
  }

  // Ops that mix values within each position only: layer norm over trailing dimensions and a
  // linear layer on the last one, as ConvNeXt applies them channels-last. The op itself, when
  // the mask has size 1 on every dimension it mixes (otherwise it would mix positions: an
  // error naming the op).
  Rule per_position() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      const auto m = mask(op.inputs[0]);
      if (!m.defined()) return op.implementation(stack);
      const int64_t mixed = op.kind == "aten::layer_norm" ? static_cast<int64_t>(stack[1].toIntVector().size()) : 1;
      for (int64_t d = m.dim() - mixed; d < m.dim(); ++d)
        if (d < 0 || m.size(d) != 1)
          salient::detail::fail_unsupported("layer masking: op '", op.kind, "' at '",
                                            op.where(),
                                            "' mixes the positions of a masked activation (mask ", m.sizes(), ")");
      const bool dirty = state_->dirty[static_cast<std::size_t>(op.inputs[0])];
      op.implementation(stack);
      state_->set(op.outputs[0], m, dirty);
    };
  }

  // chunk / split along the channels of a masked [N,C,H,W] activation: every part keeps the mask.
  Rule channel_split() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      const auto& m = spatial_mask(op, 0, stack);
      if (!m.defined()) return op.implementation(stack);
      const int64_t rank = stack[0].toTensor().dim(), dim = stack[2].toInt();
      op.implementation(stack);
      if (rank != 4 || (dim != 1 && dim != -3))
        salient::detail::fail_unsupported("layer masking: '", op.kind, "' at '", op.path, "' along dimension ", dim,
                                          " (only the channels of a masked [N,C,H,W] activation can be split)");
      state_->list_masks[op.outputs[0]] = std::vector<torch::Tensor>(stack[0].toListRef().size(), m);
    };
  }

  // A list's elements as values: each gets its element's mask (removed positions may hold
  // anything, as far as this rule knows).
  Rule list_unpack() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto it = state_->list_masks.find(op.inputs[0]);
      const auto element_masks = it == state_->list_masks.end() ? std::vector<torch::Tensor>() : it->second;
      op.implementation(stack);
      for (std::size_t k = 0; k < element_masks.size() && k < op.outputs.size(); ++k)
        if (element_masks[k].defined()) state_->set(op.outputs[k], element_masks[k], true);
    };
  }

  Rule pad() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto m = spatial_mask(op, 0, stack);
      if (m.defined() && op.kind == "aten::pad" && stack.size() > 2 && stack[2].isString() &&
          stack[2].toStringRef() != "constant")
        salient::detail::fail_unsupported("layer masking: padding mode '", stack[2].toStringRef(), "' at '", op.path,
                              "' is not supported (only constant padding)");
      auto widths = stack[1].toIntVector();
      if (m.defined() && widths.size() > 4)
        salient::detail::fail_unsupported("layer masking: padding of more than the two spatial dimensions at '", op.path, "'");
      op.implementation(stack);
      if (m.defined())
        state_->set(op.outputs[0], F::pad(m, F::PadFuncOptions(widths).value(1.0)),
                    state_->dirty[static_cast<std::size_t>(op.inputs[0])]);
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
        salient::detail::fail_unsupported("layer masking: concatenation along dimension ", dim, " at '", op.path,
                              "' (only channels of [N,C,H,W] activations can be concatenated with masks)");
      state_->set(op.outputs[0], m, true);  // a part's kept values where another part's are removed
    };
  }

  // The mask ends here (flatten into a classifier head; a tuple of outputs): removed
  // positions become 0.
  Rule end_mask() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      for (std::size_t i = 0; i < op.inputs.size(); ++i)
        if (stack[i].isTensor()) stack[i] = state_->clean(op.inputs[i], stack[i].toTensor());
      op.implementation(stack);
    };
  }

  // Ops that cannot take a masked activation.
  Rule mask_free() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      for (std::size_t i = 0; i < op.inputs.size(); ++i)
        if (stack[i].isTensor() && mask(op.inputs[i]).defined())
          salient::detail::fail_unsupported("rule set 'masked' cannot apply op '", op.kind, "' at '",
                                op.where(), "' to a masked activation");
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
  set.add(ops::max_pooling, keep(rules->max_pool()));
  const auto normalised = keep(rules->normalised()), elementwise = keep(rules->elementwise());
  set.add(ops::average_pooling, normalised).add(ops::upsampling, normalised);
  set.add(ops::activation, elementwise).add(ops::arithmetic, elementwise).add(ops::dropout, elementwise);
  set.add({"aten::batch_norm"}, elementwise);  // per channel: element-wise at each position
  set.add(ops::padding, keep(rules->pad()));
  set.add({"prim::ListConstruct"}, keep(rules->list_construct()));
  set.add({"aten::append"}, keep(rules->append()));
  set.add({"aten::cat"}, keep(rules->cat()));
  set.add({"aten::flatten", "prim::TupleConstruct"}, keep(rules->end_mask()));
  set.add({"aten::mean"}, keep(rules->normalised(/*spatial_mean=*/true)));
  set.add(ops::rearrangement, keep(rules->rearrangement()));
  set.add({"aten::layer_norm", "aten::linear"}, keep(rules->per_position()));
  set.add(ops::split, keep(rules->channel_split()));
  set.add({"prim::ListUnpack"}, keep(rules->list_unpack()));
  // Any other op (linear heads, softmax, other reductions, ...): run as itself unless it meets a
  // masked activation, which it could not treat as "these positions are absent".
  set.otherwise(keep(rules->mask_free()));
  return set;
}

}  // namespace salient::graph
