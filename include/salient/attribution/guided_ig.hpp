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
// Radix selection of the k-th smallest (0-based) of non-negative doubles, whose bit patterns
// sort as they do: `counts` holds the histogram of the top digit (bits 52.. : the exponent);
// the bucket that holds it is gathered into `kept`, one more 11-bit digit narrows it while it
// is large, and nth_element finishes on what is left.
template <class Values>
double kth_smallest_nonnegative(const Values& values, std::size_t count, std::size_t k, const std::vector<uint32_t>& counts,
                                std::vector<double>& kept) {
  uint64_t bucket = 0;
  for (; k >= counts[bucket]; ++bucket) k -= counts[bucket];
  kept.resize(counts[bucket] + 1);  // written without branches: the slot past the end takes the rest
  std::size_t found = 0;
  for (std::size_t i = 0; i < count; ++i) {
    kept[found] = values[i];
    found += (std::bit_cast<uint64_t>(values[i]) >> 52) == bucket;
  }
  kept.pop_back();
  if (kept.size() >= 4096) {
    std::vector<uint32_t> next(2048, 0);
    for (const double v : kept) ++next[std::bit_cast<uint64_t>(v) >> 41 & 2047];
    uint64_t digit = 0;
    for (; k >= next[digit]; ++digit) k -= next[digit];
    std::erase_if(kept, [&](double v) { return (std::bit_cast<uint64_t>(v) >> 41 & 2047) != digit; });
  }
  std::nth_element(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(k), kept.end());
  return kept[k];
}

inline double kth_smallest_nonnegative(const std::vector<double>& values, std::size_t k) {
  std::vector<uint32_t> counts(2048, 0);
  for (const double v : values) ++counts[std::bit_cast<uint64_t>(v) >> 52];
  std::vector<double> kept;
  return kth_smallest_nonnegative(values, values.size(), k, counts, kept);
}

// c ? a : b, by bit masks: compilers turn the conditional into a branch, which mispredicts on
// the path's random selections.
inline double choose(bool c, double a, double b) {
  const uint64_t mask = uint64_t{0} - static_cast<uint64_t>(c);
  return std::bit_cast<double>((std::bit_cast<uint64_t>(a) & mask) | (std::bit_cast<uint64_t>(b) & ~mask));
}

// sum_j term(j) for j < n in eight partial sums (lanes j mod 8), added pairwise at the end.
// `term` is taken by value: what it captures by value (restrict pointers, scalars) then stays
// in registers; captured by reference, the scalars are reloaded after every store.
template <class Term>
double lane_sum(std::size_t n, Term term) {
  double lanes[8] = {};
  for (std::size_t i = 0; i < n; i += 8) {
    const std::size_t block = std::min<std::size_t>(8, n - i);
    for (std::size_t l = 0; l < block; ++l) lanes[l] += term(i + l);
  }
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

  // Step `step` (0-based) of `steps`, with the gradient at the current point: PAIR's rounds,
  // each fused into three passes over the features (PAIR's NumPy makes about ten). The band's
  // edges x' + (x - x') alpha_min/max are computed where needed, "trailing" compares points
  // instead of dividing into alphas, and the gradient being constant within a step, the step
  // adds (x_end - x_start) * gradient once instead of once per round (equal up to rounding).
  void advance(int64_t step, int64_t steps, const double* gradient, double fraction, double max_dist) {
    if (l1_total_ == 0) return;  // the input is the baseline: nothing to attribute
    const std::size_t n = input_.size();
    const double alpha = (static_cast<double>(step) + 1.0) / static_cast<double>(steps);
    const double alpha_min = std::max(alpha - max_dist, 0.0), alpha_max = std::min(alpha + max_dist, 1.0);
    const double l1_target = l1_total_ * (1 - (static_cast<double>(step) + 1) / static_cast<double>(steps));
    const double inf = std::numeric_limits<double>::infinity();
    const double *input = input_.data(), *baseline = baseline_.data(), *span = span_.data();
    double* x = x_.data();
    start_.assign(x_.begin(), x_.end());
    magnitudes_.resize(n);
    double* magnitude = magnitudes_.data();  // +inf once a feature is fixed for the step
    for (std::size_t i = 0; i < n; ++i) magnitude[i] = std::abs(gradient[i]);
    counts_.resize(4 * 2048);
    // NumPy's quantile (method 'lower') of the magnitudes: the k-th smallest.
    const auto k = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(n - 1)));
    double threshold = -1;  // no feature selected before the first round
    for (;;) {
      const double l1_current = settle(n, x, magnitude, baseline, span, input, alpha_min, alpha_max, threshold);
      if (std::abs(l1_target - l1_current) <= std::max(1e-9 * std::max(std::abs(l1_target), std::abs(l1_current)), 1e-9)) break;
      // Of the features free to move, the lowest |gradient| move.
      count_exponents(n, magnitude, counts_.data());
      threshold = kth_smallest_nonnegative(magnitude, n, k, counts_, kept_);
      const double l1_selected = selected_distance(n, x, magnitude, baseline, span, alpha_max, threshold);
      const double gamma = l1_selected > 0 ? (l1_current - l1_target) / l1_selected : inf;
      if (gamma > 1.0) continue;  // the next round's first pass moves them all the way
      for (std::size_t i = 0; i < n; ++i) {
        const double high = baseline[i] + span[i] * alpha_max;
        x[i] = choose((magnitude[i] <= threshold) & (magnitude[i] != inf), x[i] + (high - x[i]) * gamma, x[i]);
      }
      break;
    }
    for (std::size_t i = 0; i < n; ++i) attribution_[i] += (x[i] - start_[i]) * gradient[i];
  }

 private:
  // A round's first pass: the features selected last round (|gradient| <= threshold, not
  // fixed) reach the band's upper edge; features that trail the band jump to its lower edge;
  // features at the upper edge are fixed for the rest of the step (magnitude +inf). Returns
  // the L1 distance left to the input. Over restrict pointers, so that the compiler keeps the
  // scalars in registers and vectorises.
  static double settle(std::size_t n, double* __restrict x, double* __restrict magnitude, const double* __restrict baseline,
                       const double* __restrict span, const double* __restrict input, double alpha_min, double alpha_max,
                       double threshold) {
    const double inf = std::numeric_limits<double>::infinity();
    return lane_sum(n, [=](std::size_t j) {
      const double low = baseline[j] + span[j] * alpha_min, high = baseline[j] + span[j] * alpha_max;
      double v = (magnitude[j] <= threshold) & (magnitude[j] != inf) ? high : x[j];
      v = ((span[j] > 0) & (v < low)) | ((span[j] < 0) & (v > low)) ? low : v;
      x[j] = v;
      magnitude[j] = v == high ? inf : magnitude[j];
      return std::abs(v - input[j]);
    });
  }

  // The L1 distance the selected features would cover by reaching the band's upper edge.
  static double selected_distance(std::size_t n, const double* __restrict x, const double* __restrict magnitude,
                                  const double* __restrict baseline, const double* __restrict span, double alpha_max,
                                  double threshold) {
    const double inf = std::numeric_limits<double>::infinity();
    return lane_sum(n, [=](std::size_t j) {
      const double distance = std::abs(x[j] - (baseline[j] + span[j] * alpha_max));
      return choose((magnitude[j] <= threshold) & (magnitude[j] != inf), distance, 0.0);
    });
  }

  // The histogram of the magnitudes' exponents (bits 52..), in four tables that do not wait
  // on each other, added into the first.
  static void count_exponents(std::size_t n, const double* magnitude, uint32_t* counts) {
    std::fill(counts, counts + 4 * 2048, 0u);
    for (std::size_t i = 0; i < n; ++i) ++counts[(i & 3) * 2048 + (std::bit_cast<uint64_t>(magnitude[i]) >> 52)];
    for (std::size_t b = 0; b < 2048; ++b) counts[b] += counts[2048 + b] + counts[4096 + b] + counts[6144 + b];
  }

  std::vector<double> input_, baseline_, span_, x_, attribution_;
  std::vector<double> start_, magnitudes_, kept_;  // per-step buffers, kept for their memory
  std::vector<uint32_t> counts_;
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
