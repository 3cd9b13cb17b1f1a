#pragma once
// Guided integrated gradients (Kapishnikov et al. 2021, "Guided Integrated Gradients: an
// Adaptive Path Method for Removing Noise"), as PAIR's saliency library computes it
// (`GuidedIG.GetMask`, whose defaults these are).
//
// The path starts at the baseline x' and reaches the input x in `steps` steps; step k ends
// at L1 distance (1 - k/steps) |x - x'|_1 from the input. Within a step, the features with
// the smallest |gradient| (the lowest `fraction` of those still free to move) move toward
// the input first, round after round, until the step's distance is covered; no feature
// leads or trails the straight line by more than `max_dist` in alpha (alpha = (v - x') /
// (x - x'), per feature). The attribution adds (x_new - x_old) * gradient at the step's
// start for every move, so it sums to F(x) - F(x') up to the Riemann error (completeness).
// max_dist = 0 is integrated gradients with left Riemann points; on a linear model it is
// (x - x') * w exactly. Path bookkeeping runs in double precision, as PAIR's NumPy; the
// gradients are the model's own. Inputs of a batch walk their paths together: one gradient
// call per step for up to `batch_size` inputs.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "salient/attribution/integrated_gradients.hpp"
#include "salient/core/model.hpp"

namespace salient {

template <class Tensor>
struct GuidedIgOptions {
  int64_t steps = 200;                   // PAIR's x_steps
  double fraction = 0.25;                // features moved per round: the lowest |gradient| fraction
  double max_dist = 0.02;                // how far, in alpha, a feature may leave the straight line
  std::optional<Tensor> baseline = {};   // default: 0 (the all-zero input), as PAIR
  int64_t batch_size = 16;               // inputs per model call (the steps run in sequence)
  Progress progress = {};                // in steps
};

template <class Tensor, class Visit>
void for_each_option(GuidedIgOptions<Tensor>& o, Visit&& visit) {
  visit("steps", o.steps), visit("fraction", o.fraction), visit("max_dist", o.max_dist);
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}

namespace detail {
// The k-th smallest (0-based) of non-negative doubles, whose bit patterns sort as they do: two
// radix passes over 11-bit digits (the exponent, then the top of the mantissa) keep only the
// bucket that holds it, and nth_element finishes on what is left. `values` is reordered.
inline double kth_smallest_nonnegative(std::vector<double>& values, std::size_t k) {
  std::vector<double> kept;  // (+inf, 0x7ff0..., has the largest exponent bucket)
  for (const int shift : {52, 41}) {
    if (values.size() < 4096) break;
    std::vector<uint32_t> counts(2048, 0);
    for (const double v : values) ++counts[std::bit_cast<uint64_t>(v) >> shift & 2047];
    uint64_t bucket = 0;
    for (; k >= counts[bucket]; ++bucket) k -= counts[bucket];
    kept.clear();
    for (const double v : values)
      if ((std::bit_cast<uint64_t>(v) >> shift & 2047) == bucket) kept.push_back(v);
    values.swap(kept);
  }
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

// sum_i term(i) for i < n in eight partial sums (lanes i mod 8), added pairwise at the end.
template <class Term>
double interleaved_sum(std::size_t n, Term&& term) {
  double lanes[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t l = 0; l < 8; ++l) lanes[l] += term(i + l);
  for (; i < n; ++i) lanes[i % 8] += term(i);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// One input's guided path: the current point, and the attribution so far.
class GuidedPath {
 public:
  GuidedPath(std::vector<double> input, std::vector<double> baseline)
      : input_(std::move(input)), baseline_(std::move(baseline)), span_(input_.size()), x_(baseline_),
        attribution_(input_.size(), 0.0) {
    for (std::size_t i = 0; i < input_.size(); ++i) {
      span_[i] = input_[i] - baseline_[i];
      l1_total_ += std::abs(span_[i]);
    }
  }
  const std::vector<double>& point() const { return x_; }
  const std::vector<double>& attribution() const { return attribution_; }

  // Step `step` (0-based) of `steps`, with the gradient at the current point. Each round is
  // four passes over the features (PAIR's NumPy makes about ten), selecting with conditional
  // moves rather than branches, and a radix selection; sums run in eight interleaved partial
  // sums (as NumPy's pairwise sum does within a block) instead of one dependency chain.
  void advance(int64_t step, int64_t steps, const double* gradient, double fraction, double max_dist) {
    if (l1_total_ == 0) return;  // the input is the baseline: nothing to attribute
    const std::size_t n = input_.size();
    const double alpha = (static_cast<double>(step) + 1.0) / static_cast<double>(steps);
    const double alpha_min = std::max(alpha - max_dist, 0.0), alpha_max = std::min(alpha + max_dist, 1.0);
    const double l1_target = l1_total_ * (1 - (static_cast<double>(step) + 1) / static_cast<double>(steps));
    const double inf = std::numeric_limits<double>::infinity();
    x_min_.resize(n), x_max_.resize(n), previous_.resize(n), magnitudes_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      x_min_[i] = baseline_[i] + span_[i] * alpha_min;
      x_max_[i] = baseline_[i] + span_[i] * alpha_max;
      magnitudes_[i] = std::abs(gradient[i]);  // +inf once a feature is fixed for the step
    }
    // NumPy's quantile (method 'lower') of the magnitudes: the k-th smallest.
    const auto k = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(n - 1)));
    for (double gamma = inf; gamma > 1.0;) {
      // Features that trail the allowed band jump to its lower edge.
      for (std::size_t i = 0; i < n; ++i) {
        previous_[i] = x_[i];
        const double a = span_[i] != 0 ? (x_[i] - baseline_[i]) / span_[i] : alpha_max;
        x_[i] = a < alpha_min ? x_min_[i] : x_[i];
      }
      const double l1_current = interleaved_sum(n, [&](std::size_t i) { return std::abs(x_[i] - input_[i]); });
      if (std::abs(l1_target - l1_current) <= std::max(1e-9 * std::max(std::abs(l1_target), std::abs(l1_current)), 1e-9)) {
        for (std::size_t i = 0; i < n; ++i) attribution_[i] += (x_[i] - previous_[i]) * gradient[i];
        return;
      }
      // Features at the band's upper edge cannot move (for the rest of the step); of the
      // others, the lowest |gradient| move.
      for (std::size_t i = 0; i < n; ++i) magnitudes_[i] = x_[i] == x_max_[i] ? inf : magnitudes_[i];
      ranked_ = magnitudes_;
      const double threshold = kth_smallest_nonnegative(ranked_, k);
      auto selected = [&](std::size_t i) { return magnitudes_[i] <= threshold && magnitudes_[i] != inf; };
      const double l1_selected = interleaved_sum(n, [&](std::size_t i) { return selected(i) ? std::abs(x_[i] - x_max_[i]) : 0.0; });
      gamma = l1_selected > 0 ? (l1_current - l1_target) / l1_selected : inf;
      for (std::size_t i = 0; i < n; ++i) {
        const double moved = gamma > 1.0 ? x_max_[i] : x_[i] + (x_max_[i] - x_[i]) * gamma;
        x_[i] = selected(i) ? moved : x_[i];
        attribution_[i] += (x_[i] - previous_[i]) * gradient[i];
      }
    }
  }

 private:
  std::vector<double> input_, baseline_, span_, x_, attribution_;
  std::vector<double> x_min_, x_max_, previous_, magnitudes_, ranked_;  // per-step buffers, kept for their memory
  double l1_total_ = 0;
};
}  // namespace detail

template <Model M>
TensorOf<M> guided_integrated_gradients(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                        const GuidedIgOptions<TensorOf<M>>& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  if (options.steps < 1 || options.steps > 100'000) detail::fail("Guided IG steps must be in [1, 100000], got ", options.steps);
  if (!(options.fraction > 0 && options.fraction <= 1))
    detail::fail("Guided IG fraction must be in (0, 1], got ", options.fraction);
  if (!(options.max_dist >= 0 && options.max_dist <= 1))
    detail::fail("Guided IG max_dist must be in [0, 1], got ", options.max_dist);
  detail::check_batch_size(options.batch_size, "Guided IG");
  const auto resolved = resolve_target(model, inputs, target);
  const auto shape = B::shape(inputs);
  const int64_t n = shape[0];
  const auto input_values = B::to_vector(inputs);
  const auto baseline_values = B::to_vector(detail::baseline_for<M>(inputs, options.baseline));
  const std::size_t size = input_values.size() / static_cast<std::size_t>(n);
  std::vector<detail::GuidedPath> paths;
  for (int64_t i = 0; i < n; ++i) {
    const auto begin = static_cast<std::ptrdiff_t>(i * size), end = begin + static_cast<std::ptrdiff_t>(size);
    paths.emplace_back(std::vector<double>(input_values.begin() + begin, input_values.begin() + end),
                       std::vector<double>(baseline_values.begin() + begin, baseline_values.begin() + end));
  }
  for (int64_t step = 0; step < options.steps; ++step) {
    detail::for_each_chunk(n, options.batch_size, [&](int64_t first, int64_t last) {
      std::vector<double> points;
      points.reserve(static_cast<std::size_t>(last - first) * size);
      for (int64_t i = first; i < last; ++i) points.insert(points.end(), paths[i].point().begin(), paths[i].point().end());
      auto chunk_shape = shape;
      chunk_shape[0] = last - first;
      const auto gradient = B::to_vector(model.gradient(B::from_values(points, chunk_shape, inputs), resolved.slice(first, last)).gradient);
      for (int64_t i = first; i < last; ++i)
        paths[i].advance(step, options.steps, gradient.data() + (i - first) * static_cast<std::ptrdiff_t>(size),
                         options.fraction, options.max_dist);
    });
    if (options.progress) options.progress(step + 1, options.steps);
  }
  std::vector<double> attribution;
  attribution.reserve(input_values.size());
  for (const auto& path : paths) attribution.insert(attribution.end(), path.attribution().begin(), path.attribution().end());
  return B::from_values(attribution, shape, inputs);
}

}  // namespace salient
