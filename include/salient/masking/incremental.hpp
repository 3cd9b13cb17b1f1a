#pragma once
// Incremental forward passes of a TorchModel (the IncrementalModel capability,
// masking/masker.hpp): the outputs of inputs that differ from one image only inside small
// rectangles, from the image's kept activations and what the rectangles change
// (graph/incremental_rules.hpp). The fill masker uses it for every batch whose changed
// pixels fit a rectangle of at most a quarter of the image (occlusion windows, small
// segments of feature ablation, LIME or KernelSHAP with few removed segments near each
// other); larger changes run the ordinary forward, and so do rectangles of a size for which
// a one-item probe run saves less than a third of the convolutions' multiply-adds (the
// rectangles reach the whole map early: squeeze-and-excitation or concatenation ends them,
// see graph/incremental_rules.hpp). Which path a call takes depends only on the model and
// the call's sizes, never on what ran before (resumed and sharded runs compute each item as
// the whole run does).
//
// The image's run is kept per model (one image: the last one asked for) and made again when
// the image or any parameter or buffer changes (their version counters, and
// TorchModel::parameters_changed()). Before its first
// use for a model, the executor's run of the image is checked against the model's own
// forward; a model whose program does not reproduce it, or that routes tensors through
// control flow, is never run incrementally (IncrementalStats::refused says why).
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "salient/core/torch_backend.hpp"
#include "salient/graph/incremental_rules.hpp"
#include "salient/graph/layers.hpp"

namespace salient {

// What incremental forwards of a model computed, summed over its runs.
struct IncrementalStats {
  int64_t runs = 0, items = 0;
  double macs = 0, full_macs = 0;  // multiply-adds of convolutions and linear layers: done, and a full forward's
  std::string ended;               // where the first run's rectangles were first made whole ("kind at path")
  std::string declined;            // the first change size found not worth it, and why
  std::string refused;             // why the model is never run incrementally ("" when it is)
};

namespace detail {
class IncrementalCache {
 public:
  using Base = std::shared_ptr<const graph::IncrementalBase>;

  // The kept run of `image` [1,C,H,W]; none when the model cannot be run incrementally.
  Base base(TorchModel& model, const graph::Program& program, const torch::Tensor& image) {
    const std::lock_guard<std::mutex> hold(shared_->mutex);
    auto& s = *shared_;
    if (!s.stats.refused.empty()) return nullptr;
    auto versions = model.parameter_versions();
    if (s.base && versions == s.versions && s.image.sizes() == image.sizes() &&
        s.image.options().type_equal(image.options()) && torch::equal(s.image, image))
      return s.base;
    if (auto reason = control_flow(program); !reason.empty()) return refuse(reason);
    graph::Watch watch;
    std::vector<torch::Tensor> values(program.value_count());
    std::vector<bool> seen(program.value_count(), false);
    for (std::size_t v = 0; v < program.value_count(); ++v) watch.values.push_back(static_cast<graph::ValueId>(v));
    watch.on_value = [&](graph::ValueId v, graph::Value& value) {
      const auto k = static_cast<std::size_t>(v);
      // A copy: an in-place op later in the run must not change what this value was.
      values[k] = seen[k] || !value.isTensor() ? torch::Tensor() : value.toTensor().clone();
      seen[k] = true;
    };
    torch::NoGradGuard no_grad;
    auto outputs = graph::run(program, graph::plain_rules(), {image}, &watch);
    auto output = TorchModel::output_tensor(outputs.at(0), model.options().output_element);
    if (!s.verified) {
      auto expected = model.forward(image);
      if (!expected.sizes().equals(output.sizes()) || !torch::allclose(expected, output, 1e-4, 1e-5))
        return refuse("the executor's run of the model does not reproduce its forward");
      s.verified = true;
    }
    s.image = image.clone();
    s.versions = std::move(versions);
    s.base = std::make_shared<const graph::IncrementalBase>(graph::IncrementalBase{std::move(values)});
    return s.base;
  }

  // Whether changed rectangles of a size ({image height, width, rectangle height, width}) are
  // worth running incrementally; none until decide() was told.
  std::optional<bool> pays(const std::array<int64_t, 4>& size) const {
    const std::lock_guard<std::mutex> hold(shared_->mutex);
    auto it = shared_->pays.find(size);
    return it == shared_->pays.end() ? std::nullopt : std::optional<bool>(it->second);
  }
  // A one-item run of that size (`probe`) decides: worth it when it saved at least a third of
  // the multiply-adds. It depends only on the program and the sizes, never on which images
  // ran before, so whether a call runs incrementally does not either.
  bool decide(const std::array<int64_t, 4>& size, const graph::IncrementalState& probe) {
    const std::lock_guard<std::mutex> hold(shared_->mutex);
    const bool worth = probe.macs * 1.5 <= probe.full_macs;
    if (!worth && shared_->stats.declined.empty()) {
      std::ostringstream why;
      why << "changes of up to " << size[2] << "x" << size[3] << " in " << size[0] << "x" << size[1] << " inputs would compute "
          << static_cast<int>(100 * probe.macs / std::max(1.0, probe.full_macs)) << "% of the multiply-adds (they reach the "
          << "whole map at " << probe.ended << "); run in full";
      shared_->stats.declined = why.str();
    }
    return shared_->pays[size] = worth;
  }

  void add(const graph::IncrementalState& state) {
    const std::lock_guard<std::mutex> hold(shared_->mutex);
    auto& stats = shared_->stats;
    ++stats.runs, stats.items += state.items;
    stats.macs += state.macs, stats.full_macs += state.full_macs;
    if (stats.ended.empty()) stats.ended = state.ended;
  }

  IncrementalStats stats() const {
    const std::lock_guard<std::mutex> hold(shared_->mutex);
    return shared_->stats;
  }
  void reset_stats() const {
    const std::lock_guard<std::mutex> hold(shared_->mutex);
    auto refused = shared_->stats.refused, declined = shared_->stats.declined;
    shared_->stats = {.declined = declined, .refused = refused};
  }

 private:
  Base refuse(std::string reason) {
    shared_->stats.refused = std::move(reason);
    shared_->base = nullptr;
    return nullptr;
  }
  static std::string control_flow(const graph::Program& program) {
    for (const auto& op : program.body.ops)
      if (!op.blocks.empty())
        for (auto v : op.outputs)
          if (program.is_tensor[v]) return "a tensor passes through control flow ('" + op.kind + "' at '" + std::string(op.where()) + "')";
    return {};
  }
  struct Shared {
    std::mutex mutex;
    torch::Tensor image;
    std::vector<int64_t> versions;
    Base base;
    bool verified = false;
    std::map<std::array<int64_t, 4>, bool> pays;
    IncrementalStats stats;
  };
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

inline IncrementalCache& incremental_cache(TorchModel& model) {
  return const_cast<IncrementalCache&>(model.derived<IncrementalCache>([] { return IncrementalCache(); }));
}

// A changed rectangle smaller than this part of the image runs incrementally.
inline constexpr double incremental_area = 0.25;

// The program's output for `patch` [k,C,h,w] written into the kept run's input at `region`.
inline std::pair<c10::IValue, std::shared_ptr<graph::IncrementalState>> run_changed(
    const graph::Program& program, const IncrementalCache::Base& base, graph::Region region, const torch::Tensor& patch) {
  auto state = std::make_shared<graph::IncrementalState>(base, patch.size(0));
  const auto input = static_cast<std::size_t>(program.body.inputs.at(0));
  state->regions[input] = std::move(region);
  state->changed[input] = true;
  auto output = graph::run(program, graph::incremental_rules(state), {patch}).at(0);
  const auto result = program.body.outputs.at(0);
  if (output.isTensor() && state->regions[static_cast<std::size_t>(result)])
    output = graph::detail::IncrementalRules(state).make_whole("the model's output", result, output.toTensor());
  return {output, state};
}
}  // namespace detail

namespace detail {
// forward_changed; without `decide`, also where the probe finds it not worth it (tests).
inline std::optional<torch::Tensor> forward_changed(TorchModel& model, const torch::Tensor& image, const torch::Tensor& inputs,
                                                    bool decide) {
  if (!model.options().incremental || (!model.module() && !model.nn_module())) return std::nullopt;
  if (image.dim() != 4 || image.size(0) != 1 || inputs.dim() != 4 || inputs.size(0) < 1 ||
      inputs.sizes().slice(1) != image.sizes().slice(1))
    return std::nullopt;
  torch::NoGradGuard no_grad;
  const int64_t items = inputs.size(0), rows = image.size(2), columns = image.size(3);
  // Each item's changed rows and columns.
  auto changed = (inputs != image).any(1);
  auto changed_rows = changed.any(2).to(torch::kCPU).contiguous(), changed_columns = changed.any(1).to(torch::kCPU).contiguous();
  graph::Region region{1, 1, std::vector<int64_t>(items, 0), std::vector<int64_t>(items, 0)};
  std::vector<int64_t> bottom(items, 0), right(items, 0);
  auto span = [](const bool* flags, int64_t n, int64_t& first, int64_t& end) {
    first = 0, end = 0;
    for (int64_t i = 0; i < n; ++i)
      if (flags[i]) end = i + 1;
    for (first = 0; first < end && !flags[first];) ++first;
  };
  for (int64_t b = 0; b < items; ++b) {
    span(changed_rows.data_ptr<bool>() + b * rows, rows, region.top[b], bottom[b]);
    span(changed_columns.data_ptr<bool>() + b * columns, columns, region.left[b], right[b]);
    region.height = std::max(region.height, bottom[b] - region.top[b]);
    region.width = std::max(region.width, right[b] - region.left[b]);
  }
  if (static_cast<double>(region.height * region.width) > incremental_area * static_cast<double>(rows * columns))
    return std::nullopt;
  for (int64_t b = 0; b < items; ++b) {
    region.top[b] = std::min(region.top[b], rows - region.height);
    region.left[b] = std::min(region.left[b], columns - region.width);
  }
  auto& cache = incremental_cache(model);
  // Decided per size class (sides rounded up to 16 pixels: segments of other sizes share a
  // probe), by a probe of the class's largest rectangle, at the centre.
  auto size_class = [](int64_t side, int64_t limit) { return std::min(limit, (side + 15) / 16 * 16); };
  const std::array<int64_t, 4> size{rows, columns, size_class(region.height, rows), size_class(region.width, columns)};
  auto pays = decide ? cache.pays(size) : std::optional<bool>(true);
  if (pays == false) return std::nullopt;
  const auto& program = program_of(model);
  auto base = cache.base(model, program, image);
  if (!base) return std::nullopt;
  if (!pays) {
    const int64_t top = (rows - size[2]) / 2, left = (columns - size[3]) / 2;
    auto probe = run_changed(program, base, {size[2], size[3], {top}, {left}}, image.narrow(2, top, size[2]).narrow(3, left, size[3]).clone());
    if (!cache.decide(size, *probe.second)) return std::nullopt;
  }
  auto patch = torch::empty({items, inputs.size(1), region.height, region.width}, inputs.options());
  for (int64_t b = 0; b < items; ++b)
    patch[b].copy_(inputs[b].narrow(1, region.top[b], region.height).narrow(2, region.left[b], region.width));
  auto [output, state] = run_changed(program, base, std::move(region), patch);
  cache.add(*state);
  return TorchModel::output_tensor(output, model.options().output_element);
}
}  // namespace detail

// Outputs of `inputs` [k,C,H,W] that differ from `image` [1,C,H,W] only inside rectangles of at
// most a quarter of the image, computed incrementally (forward-only); none where the model
// cannot be (see IncrementalStats::refused), ModelOptions::incremental is off, the changes
// are larger, or they would not stay small long enough to pay (IncrementalStats::declined).
inline std::optional<torch::Tensor> forward_changed(TorchModel& model, const torch::Tensor& image, const torch::Tensor& inputs) {
  return detail::forward_changed(model, image, inputs, /*decide=*/true);
}

// What incremental forwards of `model` (and its copies) computed since the last reset.
inline IncrementalStats incremental_stats(TorchModel& model) { return detail::incremental_cache(model).stats(); }
inline void reset_incremental_stats(TorchModel& model) { detail::incremental_cache(model).reset_stats(); }

}  // namespace salient
