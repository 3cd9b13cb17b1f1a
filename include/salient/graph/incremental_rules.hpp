#pragma once
// Incremental inference as a rule set of the executor: the outputs of inputs that differ from
// one image only inside small rectangles (occlusion windows, small segments), computed from
// the image's own activations plus what the rectangles change. Krypton (Nakandala, Kumar &
// Papakonstantinou, "Incremental and Approximate Inference for Faster Occlusion-based Deep
// CNN Explanations", SIGMOD 2019), the exact form.
//
// The unchanged image is run once and every activation kept (IncrementalBase). A batch of
// changed inputs then travels as rectangles: while an activation's changed positions fit a
// rectangle of one size for all items, the frame holds only that rectangle [B,C,h,w] and the
// state each item's position (Region); everything outside is the kept activation. Per op:
// - convolution, max pooling, average pooling: the output rectangle is every output whose
//   window reads a changed position (one size for all items, the largest; moved inward at
//   the borders). It is computed from the kept input around it (the window's reach, padded
//   as the op pads, max pooling's ceil mode included) with the item's changed rectangle
//   written in, by the op without padding.
// - element-wise ops (activations, batch norm and dropout in eval mode, arithmetic with
//   scalars or per-channel tensors the changes do not reach): on the rectangles only; changed
//   operands at different places are first brought to the rectangle covering all of them.
// - constant padding: the rectangles move with the values.
// - shape queries (aten::size, aten::dim): answered for the whole activation.
// - every other op (global pooling, flatten, linear, concatenation, ...): the activation is
//   made whole (the kept one with the rectangle written in) and the op runs as itself; so
//   does a window op whose rectangle would cover its whole output. From there on the run is
//   an ordinary forward (the region "ends"; state.ended says where first).
// Values outside the rectangles are exactly the kept ones, so outputs equal a full forward of
// the changed inputs up to the order of floating-point sums inside the recomputed ops.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "salient/graph/rules.hpp"

namespace salient::graph {

// Where each item's changed values lie in an activation [B,C,H,W]: a `height` x `width`
// rectangle at (top[b], left[b]).
struct Region {
  int64_t height = 0, width = 0;
  std::vector<int64_t> top, left;
  bool operator==(const Region&) const = default;
};

// The unchanged image's run: per value, its tensor ([1,...]); undefined where the value is not
// a tensor or was computed more than once.
struct IncrementalBase {
  std::vector<torch::Tensor> values;
};

struct IncrementalState {
  IncrementalState(std::shared_ptr<const IncrementalBase> base_run, int64_t batch)
      : base(std::move(base_run)), items(batch), regions(base->values.size()), changed(base->values.size(), false) {}
  std::shared_ptr<const IncrementalBase> base;
  int64_t items;
  std::vector<std::optional<Region>> regions;        // set while the frame holds a value's rectangles
  std::vector<bool> changed;                         // values that may differ from the kept run (inputs' included)
  std::unordered_map<ValueId, torch::Tensor> whole;  // values made whole, for their later uses
  // Multiply-adds of convolutions and linear layers: computed, and what a full forward computes.
  double macs = 0, full_macs = 0;
  std::string ended;  // the first op that made a value whole: "kind at path"
};

namespace detail {

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// One spatial dimension of a window op (convolution or pooling).
struct WindowAxis {
  int64_t kernel = 1, stride = 1, padding = 0, dilation = 1;
  int64_t reach() const { return dilation * (kernel - 1) + 1; }
};

// The output rectangle's common length and per-item starts along one axis, for changed
// inputs [start[b], start[b] + length) of an axis with `outputs` positions.
inline int64_t window_span(const std::vector<int64_t>& start, int64_t length, int64_t outputs, const WindowAxis& axis,
                           std::vector<int64_t>& out_start) {
  int64_t out_length = 1;
  out_start.resize(start.size());
  for (std::size_t b = 0; b < start.size(); ++b) {
    const int64_t first = std::max<int64_t>(0, -floor_div(-(start[b] + axis.padding - axis.reach() + 1), axis.stride));
    const int64_t last = std::min(outputs - 1, floor_div(start[b] + length - 1 + axis.padding, axis.stride));
    out_start[b] = first;
    out_length = std::max(out_length, last - first + 1);
  }
  out_length = std::min(out_length, outputs);
  for (auto& s : out_start) s = std::clamp<int64_t>(s, 0, outputs - out_length);
  return out_length;
}

class IncrementalRules {
 public:
  explicit IncrementalRules(std::shared_ptr<IncrementalState> state) : state_(std::move(state)) {}

  const torch::Tensor& base(ValueId v) const { return state_->base->values.at(static_cast<std::size_t>(v)); }
  const std::optional<Region>& region(ValueId v) const { return state_->regions.at(static_cast<std::size_t>(v)); }
  bool changed(ValueId v) const { return state_->changed.at(static_cast<std::size_t>(v)); }
  // Whether any input but the first may differ from the kept run.
  bool changed_beyond_first(const Op& op) const {
    for (std::size_t i = 1; i < op.inputs.size(); ++i)
      if (changed(op.inputs[i])) return true;
    return false;
  }

  // Item b of the whole value v (kept activation, padded with `fill`: pad[0] rows above,
  // pad[1] columns left, below and right as far as the crops reach), rows [top[b], top[b] +
  // height) and columns [left[b], left[b] + width) in padded coordinates.
  torch::Tensor crop(ValueId v, const torch::Tensor& rectangles, std::array<int64_t, 2> pad, double fill,
                     const std::vector<int64_t>& top, const std::vector<int64_t>& left, int64_t height, int64_t width) const {
    const auto& r = *region(v);
    auto kept = base(v);
    const int64_t below = std::max<int64_t>(0, *std::max_element(top.begin(), top.end()) + height - pad[0] - kept.size(2));
    const int64_t right = std::max<int64_t>(0, *std::max_element(left.begin(), left.end()) + width - pad[1] - kept.size(3));
    if (pad[0] || pad[1] || below || right) kept = torch::constant_pad_nd(kept, {pad[1], right, pad[0], below}, fill);
    auto out = torch::empty({state_->items, kept.size(1), height, width}, kept.options());
    for (int64_t b = 0; b < state_->items; ++b) {
      auto item = out[b];
      item.copy_(kept[0].narrow(1, top[b], height).narrow(2, left[b], width));
      // The changed rectangle, where it falls inside the crop.
      const int64_t y0 = std::max(r.top[b] + pad[0], top[b]), y1 = std::min(r.top[b] + pad[0] + r.height, top[b] + height);
      const int64_t x0 = std::max(r.left[b] + pad[1], left[b]), x1 = std::min(r.left[b] + pad[1] + r.width, left[b] + width);
      if (y0 < y1 && x0 < x1)
        item.narrow(1, y0 - top[b], y1 - y0)
            .narrow(2, x0 - left[b], x1 - x0)
            .copy_(rectangles[b].narrow(1, y0 - r.top[b] - pad[0], y1 - y0).narrow(2, x0 - r.left[b] - pad[1], x1 - x0));
    }
    return out;
  }

  // The whole value v [B,...]: the kept activation with each item's rectangle written in.
  // `where`: the op that needs it, for state.ended.
  torch::Tensor make_whole(std::string_view where, ValueId v, const torch::Tensor& rectangles) {
    if (auto it = state_->whole.find(v); it != state_->whole.end()) return it->second;
    if (state_->ended.empty()) state_->ended = where;
    const auto& r = *region(v);
    const auto& kept = base(v);
    auto sizes = kept.sizes().vec();
    sizes[0] = state_->items;
    auto whole = kept.expand(sizes).clone();
    for (int64_t b = 0; b < state_->items; ++b)
      whole[b].narrow(1, r.top[b], r.height).narrow(2, r.left[b], r.width).copy_(rectangles[b]);
    return state_->whole[v] = whole;
  }

  // Every changed input of the op made whole; then the op as itself.
  void run_whole(const Op& op, torch::jit::Stack& stack) {
    for (std::size_t i = 0; i < op.inputs.size(); ++i)
      if (stack[i].isTensor() && region(op.inputs[i])) stack[i] = make_whole(op.kind + " at " + std::string(op.where()), op.inputs[i], stack[i].toTensor());
    run_counted(op, stack);
  }

  // Ops with no rule of their own.
  Rule whole() {
    return [this](const Op& op, torch::jit::Stack& stack) { run_whole(op, stack); };
  }

  // aten::size / aten::dim / prim::shape: the whole activation's shape, without making it;
  // an answer the kept run gave too (a spatial size) is unchanged.
  Rule shape_query() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      auto kept = stack;
      bool known = true;  // every tensor input's kept value is known
      for (std::size_t i = 0; i < op.inputs.size(); ++i) {
        if (!stack[i].isTensor()) continue;
        known = known && base(op.inputs[i]).defined();
        if (!base(op.inputs[i]).defined()) continue;
        kept[i] = base(op.inputs[i]);
        if (!region(op.inputs[i])) continue;
        auto sizes = base(op.inputs[i]).sizes().vec();
        sizes[0] = state_->items;
        stack[i] = base(op.inputs[i]).expand(sizes);
      }
      op.implementation(stack);
      op.implementation(kept);
      if (known && kept.size() == stack.size() && std::equal(kept.begin(), kept.end(), stack.begin(),
                                                    [](const Value& a, const Value& b) { return a == b; }))
        for (auto v : op.outputs) state_->changed[static_cast<std::size_t>(v)] = false;
    };
  }

  // Element-wise ops on the rectangles.
  Rule elementwise() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      std::vector<std::size_t> rectangles;  // the operands held as rectangles
      for (std::size_t i = 0; i < op.inputs.size(); ++i)
        if (stack[i].isTensor() && region(op.inputs[i])) rectangles.push_back(i);
      if (rectangles.empty()) return run_counted(op, stack);
      const auto out = op.outputs.at(0);
      bool local = base(out).defined() && base(out).dim() == 4 && training_flag_off(op, stack);
      const auto& shape = base(op.inputs[rectangles[0]]).sizes();
      for (std::size_t i = 0; local && i < op.inputs.size(); ++i) {
        if (region(op.inputs[i])) {
          local = base(op.inputs[i]).sizes() == shape && base(out).sizes() == shape;
        } else if (changed(op.inputs[i])) {
          local = false;  // e.g. a squeeze-and-excitation scale: it changes every position
        } else if (stack[i].isTensor() && !(op.kind == "aten::batch_norm" && i > 0)) {
          const auto& t = stack[i].toTensor();  // broadcast over positions: a scalar or per item/channel
          local = t.numel() == 1 || (t.dim() >= 3 && t.size(-1) == 1 && t.size(-2) == 1 &&
                                     (t.dim() < 4 || t.size(0) == 1 || t.size(0) == state_->items));
        }
      }
      if (!local) return run_whole(op, stack);
      // The rectangle covering every changed operand.
      Region cover = *region(op.inputs[rectangles[0]]);
      bool moved = false;
      for (std::size_t k = 1; k < rectangles.size(); ++k) moved = moved || *region(op.inputs[rectangles[k]]) != cover;
      if (moved) {
        const int64_t rows = shape[2], columns = shape[3];
        int64_t height = 0, width = 0;
        std::vector<int64_t> top(state_->items), left(state_->items);
        for (int64_t b = 0; b < state_->items; ++b) {
          int64_t y0 = rows, y1 = 0, x0 = columns, x1 = 0;
          for (auto i : rectangles) {
            const auto& r = *region(op.inputs[i]);
            y0 = std::min(y0, r.top[b]), y1 = std::max(y1, r.top[b] + r.height);
            x0 = std::min(x0, r.left[b]), x1 = std::max(x1, r.left[b] + r.width);
          }
          top[b] = y0, left[b] = x0, height = std::max(height, y1 - y0), width = std::max(width, x1 - x0);
        }
        for (int64_t b = 0; b < state_->items; ++b)
          top[b] = std::min(top[b], rows - height), left[b] = std::min(left[b], columns - width);
        cover = Region{height, width, top, left};
        // An in-place op must write into its first operand's own tensor.
        if (op.kind.back() == '_' && *region(op.inputs[0]) != cover) return run_whole(op, stack);
        for (auto i : rectangles)
          if (*region(op.inputs[i]) != cover)
            stack[i] = crop(op.inputs[i], stack[i].toTensor(), {0, 0}, 0.0, top, left, height, width);
      }
      op.implementation(stack);
      state_->regions[static_cast<std::size_t>(out)] = std::move(cover);
    };
  }

  // Constant padding of the two spatial dimensions: the rectangles move with the values.
  Rule pad() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      const auto in = op.inputs.at(0), out = op.outputs.at(0);
      if (!region(in)) return run_counted(op, stack);
      bool local = base(out).defined() && base(out).dim() == 4 && stack[1].isIntList() && !changed_beyond_first(op) &&
                   !(op.kind == "aten::pad" && stack.size() > 2 && stack[2].isString() && stack[2].toStringRef() != "constant");
      const auto widths = local ? stack[1].toIntVector() : std::vector<int64_t>{};
      local = local && widths.size() == 4 && std::all_of(widths.begin(), widths.end(), [](int64_t p) { return p >= 0; });
      if (!local) return run_whole(op, stack);
      Region moved = *region(in);
      for (auto& t : moved.top) t += widths[2];
      for (auto& l : moved.left) l += widths[0];
      auto rectangles = stack[0].toTensor();
      stack.clear();
      stack.emplace_back(std::move(rectangles));
      state_->regions[static_cast<std::size_t>(out)] = std::move(moved);
    };
  }

  // Convolutions and max / average pooling (not adaptive) on the rectangles.
  Rule window() {
    return [this](const Op& op, torch::jit::Stack& stack) {
      const auto in = op.inputs.at(0), out = op.outputs.at(0);
      if (!region(in)) return run_counted(op, stack);
      const auto& x = base(in);
      std::array<WindowAxis, 2> axes;
      std::function<torch::Tensor(const torch::Tensor&)> unpadded;
      double fill = 0.0;
      if (!base(out).defined() || base(out).dim() != 4 || x.dim() != 4 || changed_beyond_first(op) ||
          !window_of(op, stack, axes, unpadded, fill))
        return run_whole(op, stack);
      const auto& r = *region(in);
      const auto& y = base(out);
      std::vector<int64_t> top, left;
      const int64_t height = window_span(r.top, r.height, y.size(2), axes[0], top);
      const int64_t width = window_span(r.left, r.width, y.size(3), axes[1], left);
      if (height == y.size(2) && width == y.size(3)) return run_whole(op, stack);  // nothing left unchanged
      std::vector<int64_t> crop_top(top), crop_left(left);
      for (auto& t : crop_top) t *= axes[0].stride;
      for (auto& t : crop_left) t *= axes[1].stride;
      auto input = crop(in, stack[0].toTensor(), {axes[0].padding, axes[1].padding}, fill, crop_top, crop_left,
                        (height - 1) * axes[0].stride + axes[0].reach(), (width - 1) * axes[1].stride + axes[1].reach());
      auto result = unpadded(input);
      count(macs_per_position(op, stack), result.numel() / result.size(1), y.numel() / y.size(1) * state_->items);
      stack.clear();
      stack.emplace_back(std::move(result));
      state_->regions[static_cast<std::size_t>(out)] = Region{height, width, std::move(top), std::move(left)};
    };
  }

 private:
  // Eval-mode batch norm and dropout only (training mode mixes items or draws noise).
  static bool training_flag_off(const Op& op, const torch::jit::Stack& stack) {
    if (op.kind == "aten::batch_norm") return stack.size() > 5 && stack[5].isBool() && !stack[5].toBool();
    if (op.kind.rfind("aten::dropout", 0) == 0 || op.kind == "aten::feature_dropout")
      return stack.size() > 2 && stack[2].isBool() && !stack[2].toBool();
    return true;
  }

  static std::vector<int64_t> pair(const Value& v, std::vector<int64_t> otherwise) {
    if (!v.isIntList()) return otherwise;
    auto list = v.toIntVector();
    if (list.empty()) return otherwise;
    if (list.size() == 1) list.push_back(list[0]);
    return list;
  }

  // The op's window and the op without padding; false for what this set does not localise
  // (transposed convolution, ceil mode, padding excluded from averages, ...).
  static bool window_of(const Op& op, const torch::jit::Stack& stack, std::array<WindowAxis, 2>& axes,
                        std::function<torch::Tensor(const torch::Tensor&)>& unpadded, double& fill) {
    auto set_axes = [&](std::vector<int64_t> kernel, std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> dilation) {
      if (kernel.size() != 2 || stride.size() != 2 || padding.size() != 2 || dilation.size() != 2) return false;
      for (int d = 0; d < 2; ++d) axes[d] = {kernel[d], stride[d], padding[d], dilation[d]};
      return true;
    };
    if (op.kind == "aten::_convolution" || op.kind == "aten::conv2d") {
      const auto weight = stack[1].toTensor();
      const bool transposed = op.kind == "aten::_convolution" && stack[6].toBool();
      if (transposed || weight.dim() != 4) return false;
      const auto stride = pair(stack[3], {1, 1}), dilation = pair(stack[5], {1, 1});
      std::vector<int64_t> padding{0, 0};
      if (stack[4].isString()) {
        if (stack[4].toStringRef() == "same")
          for (int d = 0; d < 2; ++d) {
            const int64_t total = dilation[d] * (weight.size(2 + d) - 1);
            if (total % 2) return false;  // "same" padding with more on one side
            padding[d] = total / 2;
          }
      } else {
        padding = pair(stack[4], {0, 0});
      }
      const int64_t groups = stack[op.kind == "aten::conv2d" ? 6 : 8].toInt();
      auto bias = stack[2].isTensor() ? c10::optional<torch::Tensor>(stack[2].toTensor()) : c10::nullopt;
      unpadded = [weight, bias, stride, dilation, groups](const torch::Tensor& x) {
        return at::convolution(x, weight, bias, stride, {0, 0}, dilation, false, {0, 0}, groups);
      };
      return set_axes({weight.size(2), weight.size(3)}, stride, padding, dilation);
    }
    if (op.kind == "aten::max_pool2d") {
      const auto kernel = pair(stack[1], {}), stride = pair(stack[2], kernel), padding = pair(stack[3], {0, 0}),
                 dilation = pair(stack[4], {1, 1});
      fill = -std::numeric_limits<double>::infinity();
      unpadded = [kernel, stride, dilation](const torch::Tensor& x) { return at::max_pool2d(x, kernel, stride, {0, 0}, dilation); };
      return set_axes(kernel, stride, padding, dilation);
    }
    if (op.kind == "aten::avg_pool2d") {
      const auto kernel = pair(stack[1], {}), stride = pair(stack[2], kernel), padding = pair(stack[3], {0, 0});
      const bool ceil = stack[4].toBool(), include_pad = stack[5].toBool();
      if (ceil || (!include_pad && (padding[0] || padding[1]))) return false;
      c10::optional<int64_t> divisor;
      if (stack.size() > 6 && stack[6].isInt()) divisor = stack[6].toInt();
      unpadded = [kernel, stride, divisor](const torch::Tensor& x) {
        return at::avg_pool2d(x, kernel, stride, {0, 0}, false, true, divisor);
      };
      return set_axes(kernel, stride, padding, {1, 1});
    }
    return false;
  }

  // Multiply-adds per output position of a convolution or linear layer (its weight's size); 0 for other ops.
  static double macs_per_position(const Op& op, const torch::jit::Stack& stack) {
    const bool weighted = op.kind == "aten::_convolution" || op.kind == "aten::conv2d" || op.kind == "aten::linear";
    return weighted && stack.size() > 1 && stack[1].isTensor() ? static_cast<double>(stack[1].toTensor().numel()) : 0.0;
  }
  void count(double per_position, int64_t positions, int64_t full_positions) {
    state_->macs += per_position * static_cast<double>(positions);
    state_->full_macs += per_position * static_cast<double>(full_positions);
  }
  // An op run as itself: all its output positions computed (per output channel / feature).
  void run_counted(const Op& op, torch::jit::Stack& stack) {
    const double per_position = macs_per_position(op, stack);
    op.implementation(stack);
    if (per_position > 0 && !stack.empty() && stack[0].isTensor()) {
      const auto& y = stack[0].toTensor();
      const int64_t positions = y.numel() / std::max<int64_t>(1, y.size(op.kind == "aten::linear" ? -1 : 1));
      count(per_position, positions, positions);
    }
  }

  std::shared_ptr<IncrementalState> state_;
};
}  // namespace detail

// The incremental rule set over `state`, whose input region is set before the run.
inline RuleSet incremental_rules(const std::shared_ptr<IncrementalState>& state) {
  auto rules = std::make_shared<detail::IncrementalRules>(state);
  // Every rule's outputs may differ from the kept run when an input may (a rule can say otherwise).
  auto keep = [rules, state](Rule rule) {
    return Rule([rules, state, rule](const Op& op, torch::jit::Stack& s) {
      bool changed = false;
      for (auto v : op.inputs) changed = changed || state->changed[static_cast<std::size_t>(v)];
      if (changed)
        for (auto v : op.outputs) state->changed[static_cast<std::size_t>(v)] = true;
      rule(op, s);
    });
  };
  RuleSet set("incremental");
  set.add({"aten::_convolution", "aten::conv2d", "aten::max_pool2d", "aten::avg_pool2d"}, keep(rules->window()));
  const auto elementwise = keep(rules->elementwise());
  set.add(ops::activation, elementwise).add(ops::arithmetic, elementwise).add(ops::dropout, elementwise);
  set.add({"aten::batch_norm", "aten::contiguous", "aten::add_", "aten::mul_", "aten::sub_", "aten::div_"}, elementwise);
  set.add(ops::padding, keep(rules->pad()));
  set.add({"aten::size", "aten::dim", "prim::shape"}, keep(rules->shape_query()));
  set.otherwise(keep(rules->whole()));
  return set;
}

}  // namespace salient::graph
