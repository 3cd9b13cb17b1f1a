#pragma once
// Deletion and insertion curves (Petsiuk et al. 2018, RISE), for any ForwardModel: features
// (pixels, or the segments of a label map) are removed from the image, or inserted into the
// removed image, in order of decreasing attribution, `step` features at a time, through any
// masker (an input fill, or layer masking on LibTorch); the curve is the target's score after
// each step and its area the trapezoid over the fraction of features removed (x in [0, 1]).
// A good attribution makes deletion fall fast (small area) and insertion rise fast (large
// area).
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "salient/attribution/detail/perturbation_engine.hpp"
#include "salient/core/model.hpp"

namespace salient {

template <ForwardModel M>
struct CurveOptions {
  // Features removed (or inserted) per step; 0: a hundredth of them (rounded up).
  int64_t step = 0;
  // A label map [H,W] (or [N,H,W]): features are its segments, ranked by mean attribution.
  // None: features are pixels, ranked by the attribution summed over channels.
  std::optional<TensorOf<M>> segments = {};
  // The masker and the score; by default the target's softmax probability, as in RISE.
  PerturbationOptions<M> evaluation = {.probabilities = true};
};

// The fields by name (core/options.hpp); the segmentation is a tensor, set directly.
template <class M, class Visit>
void for_each_option(CurveOptions<M>& o, Visit&& visit) {
  visit("step", o.step);
  for_each_option(o.evaluation, visit);
}

// One curve per input: scores[s] after fractions[s] of the features were removed (deletion)
// or inserted (insertion); fractions run from 0 to 1.
struct Curve {
  std::vector<double> fractions;
  std::vector<double> scores;
  double area = 0;  // trapezoid under scores over fractions
};

enum class CurveKind { deletion, insertion };

namespace detail {
inline double trapezoid(const std::vector<double>& x, const std::vector<double>& y) {
  double area = 0;
  for (size_t k = 1; k < x.size(); ++k) area += (x[k] - x[k - 1]) * (y[k] + y[k - 1]) / 2;
  return area;
}

// Positions of `values` from the largest to the smallest (ties in their original order).
inline std::vector<int64_t> descending_order(const std::vector<double>& values) {
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  return order;
}

// Rank of every pixel's feature (0 = most important) and the feature count, from the
// attribution per pixel (channels summed) and, for segment features, the segmentation.
inline std::pair<std::vector<int64_t>, int64_t> feature_ranks(const std::vector<double>& per_pixel,
                                                              const std::optional<Segments>& segments) {
  std::vector<int64_t> ranks(per_pixel.size());
  if (!segments) {
    const auto order = descending_order(per_pixel);
    for (std::size_t r = 0; r < order.size(); ++r) ranks[order[r]] = static_cast<int64_t>(r);
    return {ranks, static_cast<int64_t>(per_pixel.size())};
  }
  std::vector<double> means(static_cast<std::size_t>(segments->count), 0.0), counts(means.size(), 0.0);
  for (std::size_t p = 0; p < per_pixel.size(); ++p) {
    means[segments->labels[p]] += per_pixel[p];
    counts[segments->labels[p]] += 1;
  }
  for (std::size_t k = 0; k < means.size(); ++k) means[k] /= counts[k];
  const auto order = descending_order(means);
  std::vector<int64_t> segment_rank(means.size());
  for (std::size_t r = 0; r < order.size(); ++r) segment_rank[order[r]] = static_cast<int64_t>(r);
  for (std::size_t p = 0; p < per_pixel.size(); ++p) ranks[p] = segment_rank[segments->labels[p]];
  return {ranks, segments->count};
}
}  // namespace detail

// Deletion or insertion curves of `attributions` ([N,C,H,W] or [N,1,H,W]) for `inputs`.
template <ForwardModel M>
std::vector<Curve> perturbation_curves(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                       const TensorOf<M>& attributions, CurveKind kind,
                                       const CurveOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto size = detail::check_perturbation_inputs(inputs, evaluation);
  const int64_t n = size.n, h = size.h, w = size.w;
  const auto shape = B::shape(attributions);
  if (shape.size() != 4 || shape[0] != n || shape[2] != h || shape[3] != w)
    detail::fail("attributions of shape ", detail::shape_text(shape), " do not fit inputs ",
                 detail::shape_text(B::shape(inputs)), " (expected [", n, ",C,", h, ",", w, "])");
  B::check_finite(attributions, "attribution");
  if (options.step < 0) detail::fail("curve step must be >= 0 (0: a hundredth of the features), got ", options.step);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<Curve> curves;
  for (int64_t i = 0; i < n; ++i) {
    const auto values = B::to_vector(B::slice_rows(attributions, i, i + 1));
    std::vector<double> per_pixel(static_cast<std::size_t>(h * w), 0.0);
    for (std::size_t v = 0; v < values.size(); ++v) per_pixel[v % per_pixel.size()] += values[v];
    std::optional<detail::Segments> segments;
    if (options.segments) segments = detail::segments_of<B>(options.segments, inputs, i);
    const auto [ranks, features] = detail::feature_ranks(per_pixel, segments);
    const int64_t step = options.step > 0 ? options.step : (features + 99) / 100;
    const int64_t points = (features + step - 1) / step + 1;
    Curve curve;
    for (int64_t p = 0; p < points; ++p)
      curve.fractions.push_back(static_cast<double>(std::min(features, p * step)) / static_cast<double>(features));
    detail::EvaluationCounter counter(evaluation.progress, points);
    curve.scores = detail::masked_scores(
        model, B::slice_rows(inputs, i, i + 1), resolved.slice(i, i + 1), points,
        [&](int64_t begin, int64_t end) {
          // Point p changes the first min(p * step, features) features.
          std::vector<double> masks(static_cast<std::size_t>((end - begin) * h * w));
          for (int64_t p = begin; p < end; ++p) {
            const int64_t changed = std::min(features, p * step);
            for (int64_t q = 0; q < h * w; ++q) {
              const bool removed = ranks[q] < changed;
              masks[(p - begin) * h * w + q] = (kind == CurveKind::deletion) != removed ? 1.0 : 0.0;
            }
          }
          return detail::mask_tensor<B>(masks, h, w, inputs);
        },
        evaluation, counter);
    curve.area = detail::trapezoid(curve.fractions, curve.scores);
    curves.push_back(std::move(curve));
  }
  return curves;
}

template <ForwardModel M>
std::vector<Curve> deletion_curves(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                   const TensorOf<M>& attributions, const CurveOptions<M>& options = {}) {
  return perturbation_curves(model, inputs, target, attributions, CurveKind::deletion, options);
}

template <ForwardModel M>
std::vector<Curve> insertion_curves(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                    const TensorOf<M>& attributions, const CurveOptions<M>& options = {}) {
  return perturbation_curves(model, inputs, target, attributions, CurveKind::insertion, options);
}

}  // namespace salient
