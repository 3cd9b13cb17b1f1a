#pragma once
// Perturbation attributions: they need only model outputs, so they are written once for any
// ForwardModel (a LibTorch model, an analytic xtensor model, or any batch -> scores function
// made with forward_model). Each removes pixels through a masker (masking/masker.hpp: an input
// fill; masking/maskers.hpp: LibTorch baselines and layer masking) and evaluates the masked
// copies of an image in batches (attribution/detail/perturbation_engine.hpp). Region methods
// take their segmentation in the options: `segments`, a label map [H,W] (or [N,H,W], one per
// input) of integers.
//
// - occlusion: a window slides over the image; each pixel gets the mean output drop
//   F(x) - F(x without window) over the windows that cover it (Captum's `Occlusion`; the last
//   window of a row or column is clipped at the border).
// - feature_ablation: each segment gets F(x) - F(x without the segment) (Captum's
//   `FeatureAblation` with a feature mask).
// - rise: N random masks (a cells x cells grid kept with probability p, bilinearly upsampled
//   to (cells + 1) x the cell size and cropped at a random shift); the saliency is
//   sum_i score_i * mask_i / (N p), scores are softmax probabilities (Petsiuk et al. 2018).
// - lime: binary segment vectors z (the first all ones, then Bernoulli(0.5)), weights
//   pi = sqrt(exp(-d^2 / width^2)) with d the cosine distance of z to all ones (the `lime`
//   package's image explainer, width 0.25), a weighted ridge fit (alpha 1), optionally on the
//   K segments with the largest coefficients of a first fit (lime's "highest_weights").
// - kernel_shap: coalitions sampled with the Shapley kernel's size distribution, each with its
//   complement (all coalitions with their kernel weights when there are at most `samples`),
//   and a least-squares fit under the efficiency constraint: attributions sum exactly to
//   F(x) - F(nothing kept).
// Scores are the target's raw output (as Captum) unless `probabilities` is set (RISE's
// default). Every random method takes a seed: the same seed gives identical output, on every
// backend (core/random.hpp). Attributions are [N,1,H,W] (one value per pixel: the masks
// remove all channels), with the inputs' element type.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include <Eigen/Dense>

#include "salient/attribution/detail/perturbation_engine.hpp"
#include "salient/attribution/linear_surrogate.hpp"
#include "salient/core/random.hpp"
#include "salient/core/resample.hpp"

namespace salient {

template <ForwardModel M>
struct OcclusionOptions {
  std::array<int64_t, 2> window{15, 15};  // height, width
  std::array<int64_t, 2> strides{8, 8};
  PerturbationOptions<M> evaluation = {};
};

template <ForwardModel M>
struct AblationOptions {
  std::optional<TensorOf<M>> segments = {};  // label map [H,W] or [N,H,W]: the features
  PerturbationOptions<M> evaluation = {};
};

template <ForwardModel M>
struct RiseOptions {
  int64_t masks = 4000;
  int64_t cells = 7;  // the random grid is cells x cells
  double keep_probability = 0.5;
  uint64_t seed = 0;
  PerturbationOptions<M> evaluation = {.probabilities = true};
};

template <ForwardModel M>
struct LimeOptions {
  std::optional<TensorOf<M>> segments = {};  // label map [H,W] or [N,H,W]: the features
  int64_t samples = 1000;
  double kernel_width = 0.25;
  double ridge = 1.0;    // the surrogate's regularisation
  int64_t features = 0;  // fit on the K segments with the largest first-fit weights; 0: all
  uint64_t seed = 0;
  PerturbationOptions<M> evaluation = {};
};

template <ForwardModel M>
struct KernelShapOptions {
  std::optional<TensorOf<M>> segments = {};  // label map [H,W] or [N,H,W]: the features
  int64_t samples = 1000;
  uint64_t seed = 0;
  PerturbationOptions<M> evaluation = {};
};

// The fields by name (core/options.hpp), the evaluation's included; segments are a tensor.
template <class M, class Visit>
void for_each_option(OcclusionOptions<M>& o, Visit&& visit) {
  visit("window", o.window), visit("strides", o.strides);
  for_each_option(o.evaluation, visit);
}
template <class M, class Visit>
void for_each_option(AblationOptions<M>& o, Visit&& visit) {
  for_each_option(o.evaluation, visit);
}
template <class M, class Visit>
void for_each_option(RiseOptions<M>& o, Visit&& visit) {
  visit("masks", o.masks), visit("cells", o.cells), visit("keep_probability", o.keep_probability), visit("seed", o.seed);
  for_each_option(o.evaluation, visit);
}
template <class M, class Visit>
void for_each_option(LimeOptions<M>& o, Visit&& visit) {
  visit("samples", o.samples), visit("kernel_width", o.kernel_width), visit("ridge", o.ridge);
  visit("features", o.features), visit("seed", o.seed);
  for_each_option(o.evaluation, visit);
}
template <class M, class Visit>
void for_each_option(KernelShapOptions<M>& o, Visit&& visit) {
  visit("samples", o.samples), visit("seed", o.seed);
  for_each_option(o.evaluation, visit);
}

namespace detail {
inline Eigen::VectorXd eigen_vector(const std::vector<double>& values) {
  return Eigen::Map<const Eigen::VectorXd>(values.data(), static_cast<Eigen::Index>(values.size()));
}

// The bound target of item i as a Target for a one-image call.
template <ForwardModel M>
TargetOf<M> item_target(const ResolvedTarget<TensorOf<M>>& resolved, int64_t i) {
  if (resolved.is_custom()) return TargetOf<M>(resolved.custom);
  return TargetOf<M>(resolved.classes.at(static_cast<std::size_t>(i)));
}

// RISE's masks: grids of cells x cells kept with probability p, bilinearly upsampled to
// (cells + 1) x the cell size (PyTorch's interpolate, align_corners=False) and cropped at a
// random shift. Every draw is made up front, so the masks do not depend on the batch size.
class RiseMasks {
 public:
  RiseMasks(int64_t count, int64_t cells, double keep, uint64_t seed, int64_t h, int64_t w)
      : cells_(cells), h_(h), w_(w), grids_(static_cast<std::size_t>(count * cells * cells)) {
    Random random(seed);
    for (auto& g : grids_) g = random.uniform() < keep ? 1 : 0;
    const int64_t cell_h = (h + cells - 1) / cells, cell_w = (w + cells - 1) / cells;
    for (int64_t k = 0; k < count; ++k) shift_y_.push_back(random.below(cell_h));
    for (int64_t k = 0; k < count; ++k) shift_x_.push_back(random.below(cell_w));
    rows_ = bilinear_taps(cells, (cells + 1) * cell_h, /*align_corners=*/false);
    cols_ = bilinear_taps(cells, (cells + 1) * cell_w, /*align_corners=*/false);
  }

  // Masks [begin, end) as doubles, one H*W block each.
  std::vector<double> make(int64_t begin, int64_t end) const {
    std::vector<double> masks(static_cast<std::size_t>((end - begin) * h_ * w_));
    for (int64_t k = begin; k < end; ++k) {
      const double* g = grids_.data() + k * cells_ * cells_;
      double* out = masks.data() + (k - begin) * h_ * w_;
      for (int64_t y = 0; y < h_; ++y) {
        const BilinearTap& r = rows_[shift_y_[k] + y];
        for (int64_t x = 0; x < w_; ++x) {
          const BilinearTap& c = cols_[shift_x_[k] + x];
          const double top = c.w0 * g[r.i0 * cells_ + c.i0] + c.w1 * g[r.i0 * cells_ + c.i1];
          const double bottom = c.w0 * g[r.i1 * cells_ + c.i0] + c.w1 * g[r.i1 * cells_ + c.i1];
          out[y * w_ + x] = std::clamp(r.w0 * top + r.w1 * bottom, 0.0, 1.0);
        }
      }
    }
    return masks;
  }

 private:
  int64_t cells_, h_, w_;
  std::vector<double> grids_;
  std::vector<int64_t> shift_y_, shift_x_;
  std::vector<BilinearTap> rows_, cols_;
};

// KernelSHAP's coalitions z [S, m] and their regression weights.
inline std::pair<Eigen::MatrixXd, Eigen::VectorXd> shap_coalitions(int64_t m, int64_t samples, Random& random) {
  if (m <= 1) return {Eigen::MatrixXd(0, m), Eigen::VectorXd(0)};
  if (m < 31 && (int64_t{1} << m) - 2 <= samples) {
    // Every coalition but the empty and the full one, with the Shapley kernel's weight
    // (m - 1) / (C(m, k) k (m - k)).
    const int64_t count = (int64_t{1} << m) - 2;
    Eigen::MatrixXd z = Eigen::MatrixXd::Zero(count, m);
    Eigen::VectorXd weights(count);
    for (int64_t c = 1; c <= count; ++c) {
      int64_t k = 0;
      for (int64_t j = 0; j < m; ++j)
        if ((c >> j) & 1) z(c - 1, j) = 1, ++k;
      const double log_choose = std::lgamma(m + 1.0) - std::lgamma(k + 1.0) - std::lgamma(m - k + 1.0);
      weights(c - 1) = (m - 1.0) / (std::exp(log_choose) * static_cast<double>(k * (m - k)));
    }
    return {z, weights};
  }
  // Sizes k in 1..m-1 with probability proportional to (m - 1) / (k (m - k)); each coalition
  // with its complement (paired sampling); weights 1.
  std::vector<double> size_probability;
  for (int64_t k = 1; k < m; ++k) size_probability.push_back((m - 1.0) / static_cast<double>(k * (m - k)));
  const int64_t pairs = samples / 2;
  Eigen::MatrixXd z = Eigen::MatrixXd::Zero(2 * pairs, m);
  for (int64_t p = 0; p < pairs; ++p)
    for (int64_t j : random.choose(m, 1 + random.weighted(size_probability))) z(p, j) = 1;
  z.bottomRows(pairs) = Eigen::MatrixXd::Ones(pairs, m) - z.topRows(pairs);
  return {z, Eigen::VectorXd::Ones(2 * pairs)};
}
}  // namespace detail

template <ForwardModel M>
TensorOf<M> occlusion(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                      const OcclusionOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto image_size = detail::check_perturbation_inputs(inputs, evaluation);
  const int64_t n = image_size.n, h = image_size.h, w = image_size.w, size[2] = {h, w};
  int64_t counts[2];
  for (int d = 0; d < 2; ++d) {
    const int64_t window = options.window[d], stride = options.strides[d];
    if (window < 1 || window > size[d])
      detail::fail("occlusion window ", options.window[0], "x", options.window[1], " does not fit the image of ",
                   size[0], "x", size[1]);
    if (stride < 1 || (stride > window && window < size[d]))
      detail::fail("occlusion stride ", stride, " must be in [1, window ", window,
                   "] (a larger stride leaves pixels that no window covers)");
    counts[d] = (size[d] - window + stride - 1) / stride + 1;
  }
  const int64_t windows = counts[0] * counts[1];
  // Calls fn(pixel) for every pixel of window k (the last window of a row or column is clipped).
  auto for_each_pixel = [&](int64_t k, auto&& fn) {
    const int64_t top = (k / counts[1]) * options.strides[0], left = (k % counts[1]) * options.strides[1];
    for (int64_t y = top; y < std::min(top + options.window[0], h); ++y)
      for (int64_t x = left; x < std::min(left + options.window[1], w); ++x) fn(y * w + x);
  };
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(evaluation.progress, n * windows);
  // How many windows cover each pixel: the same for every item.
  std::vector<double> coverage(static_cast<std::size_t>(h * w), 0.0);
  for (int64_t k = 0; k < windows; ++k) for_each_pixel(k, [&](int64_t p) { coverage[p] += 1; });
  std::vector<std::vector<double>> maps;
  for (int64_t i = 0; i < n; ++i) {
    auto image = B::slice_rows(inputs, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    const double full = detail::full_score(model, image, item_target, evaluation);
    auto scores = detail::masked_scores(
        model, image, item_target, windows,
        [&](int64_t begin, int64_t end) {
          std::vector<double> masks(static_cast<std::size_t>((end - begin) * h * w), 1.0);
          for (int64_t k = begin; k < end; ++k) for_each_pixel(k, [&](int64_t p) { masks[(k - begin) * h * w + p] = 0; });
          return detail::mask_tensor<B>(masks, h, w, inputs);
        },
        evaluation, counter);
    std::vector<double> total(static_cast<std::size_t>(h * w), 0.0);
    for (int64_t k = 0; k < windows; ++k) for_each_pixel(k, [&](int64_t p) { total[p] += full - scores[k]; });
    for (int64_t p = 0; p < h * w; ++p) total[p] /= coverage[p];
    maps.push_back(std::move(total));
  }
  return detail::maps_tensor<B>(maps, h, w, inputs);
}

template <ForwardModel M>
TensorOf<M> feature_ablation(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                             const AblationOptions<M>& options) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto image_size = detail::check_perturbation_inputs(inputs, evaluation);
  const int64_t n = image_size.n, h = image_size.h, w = image_size.w;
  std::vector<detail::Segments> per_item;
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += per_item.emplace_back(detail::segments_of<B>(options.segments, inputs, i)).count;
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(evaluation.progress, total);
  std::vector<std::vector<double>> maps;
  for (int64_t i = 0; i < n; ++i) {
    const auto& seg = per_item[i];
    auto image = B::slice_rows(inputs, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    const double full = detail::full_score(model, image, item_target, evaluation);
    auto scores = detail::masked_scores(
        model, image, item_target, seg.count,
        [&](int64_t begin, int64_t end) {
          Eigen::MatrixXd z = Eigen::MatrixXd::Ones(end - begin, seg.count);
          for (int64_t k = begin; k < end; ++k) z(k - begin, k) = 0;
          return detail::mask_tensor<B>(detail::coalition_masks(z, seg), h, w, inputs);
        },
        evaluation, counter);
    for (auto& s : scores) s = full - s;
    maps.push_back(detail::paint(scores, seg));
  }
  return detail::maps_tensor<B>(maps, h, w, inputs);
}

template <ForwardModel M>
TensorOf<M> rise(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const RiseOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto image_size = detail::check_perturbation_inputs(inputs, evaluation);
  if (options.masks < 1) detail::fail("RISE needs at least one mask, got ", options.masks);
  if (options.cells < 1) detail::fail("RISE needs at least one cell per side, got ", options.cells);
  if (!(options.keep_probability > 0 && options.keep_probability <= 1))
    detail::fail("RISE keep probability must be in (0, 1], got ", options.keep_probability);
  const int64_t n = image_size.n, h = image_size.h, w = image_size.w;
  const detail::RiseMasks masks(options.masks, options.cells, options.keep_probability, options.seed, h, w);
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(evaluation.progress, n * options.masks);
  std::vector<std::vector<double>> maps;
  for (int64_t i = 0; i < n; ++i) {
    // sum_k score_k * mask_k / (N p), accumulated chunk by chunk with that chunk's masks.
    std::vector<double> saliency(static_cast<std::size_t>(h * w), 0.0), chunk;
    detail::for_each_masked_chunk(
        model, B::slice_rows(inputs, i, i + 1), resolved.slice(i, i + 1), options.masks,
        [&](int64_t begin, int64_t end) {
          chunk = masks.make(begin, end);
          return detail::mask_tensor<B>(chunk, h, w, inputs);
        },
        evaluation, counter,
        [&](int64_t begin, int64_t end, const std::vector<double>& scores) {
          for (int64_t k = 0; k < end - begin; ++k)
            for (int64_t p = 0; p < h * w; ++p) saliency[p] += scores[k] * chunk[k * h * w + p];
        });
    for (auto& v : saliency) v /= static_cast<double>(options.masks) * options.keep_probability;
    maps.push_back(std::move(saliency));
  }
  return detail::maps_tensor<B>(maps, h, w, inputs);
}

// LIME of one image [1,C,H,W]: the surrogate's fit and its attribution map [1,1,H,W].
template <class Tensor>
struct LimeExplanation {
  Tensor attribution;
  LinearFit fit;                  // coefficients per segment (0 for segments not selected)
  std::vector<int64_t> features;  // the segments the surrogate was fitted on
};

template <ForwardModel M>
LimeExplanation<TensorOf<M>> lime_explanation(M& model, const TensorOf<M>& image, const TargetOf<M>& target,
                                              const LimeOptions<M>& options) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto image_size = detail::check_perturbation_inputs(image, evaluation);
  if (image_size.n != 1) detail::fail("lime_explanation explains one image, got a batch of ", image_size.n);
  if (options.samples < 2) detail::fail("LIME needs at least 2 samples, got ", options.samples);
  if (!(options.kernel_width > 0)) detail::fail("LIME kernel width must be positive, got ", options.kernel_width);
  if (options.features < 0) detail::fail("LIME feature count must be >= 0, got ", options.features);
  const int64_t h = image_size.h, w = image_size.w;
  const auto seg = detail::segments_of<B>(options.segments, image, 0);
  const auto resolved = resolve_target(model, image, target);
  detail::Random random(options.seed);
  Eigen::MatrixXd z(options.samples, seg.count);
  for (Eigen::Index s = 0; s < z.rows(); ++s)
    for (Eigen::Index k = 0; k < z.cols(); ++k) z(s, k) = static_cast<double>(random.below(2));
  z.row(0).setOnes();  // the image itself
  detail::EvaluationCounter counter(evaluation.progress, options.samples);
  const auto scores = detail::masked_scores(
      model, image, resolved, options.samples,
      [&](int64_t begin, int64_t end) {
        return detail::mask_tensor<B>(detail::coalition_masks(z.middleRows(begin, end - begin), seg), h, w, image);
      },
      evaluation, counter);
  // Cosine distance to all ones: 1 - |z|_1 / sqrt(|z|_1 K) for binary z (1 for the empty z).
  const Eigen::ArrayXd distance = 1.0 - (z.rowwise().sum().array() / static_cast<double>(seg.count)).sqrt();
  const Eigen::VectorXd pi =
      (-distance.square() / (options.kernel_width * options.kernel_width)).exp().sqrt().matrix();
  const Eigen::VectorXd y = detail::eigen_vector(scores);
  LimeExplanation<TensorOf<M>> result;
  if (options.features > 0 && options.features < seg.count) {
    const auto first = weighted_ridge(z, y, pi, 0.01);
    std::vector<int64_t> order(static_cast<std::size_t>(seg.count));
    for (int64_t k = 0; k < seg.count; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return std::abs(first.coefficients[a]) > std::abs(first.coefficients[b]);
    });
    result.features.assign(order.begin(), order.begin() + options.features);
    std::sort(result.features.begin(), result.features.end());
  } else {
    for (int64_t k = 0; k < seg.count; ++k) result.features.push_back(k);
  }
  Eigen::MatrixXd selected(z.rows(), static_cast<Eigen::Index>(result.features.size()));
  for (std::size_t j = 0; j < result.features.size(); ++j) selected.col(j) = z.col(result.features[j]);
  const auto fit = weighted_ridge(selected, y, pi, options.ridge);
  result.fit = fit;
  result.fit.coefficients.assign(static_cast<std::size_t>(seg.count), 0.0);
  for (std::size_t j = 0; j < result.features.size(); ++j) result.fit.coefficients[result.features[j]] = fit.coefficients[j];
  result.attribution = detail::maps_tensor<B>({detail::paint(result.fit.coefficients, seg)}, h, w, image);
  return result;
}

template <ForwardModel M>
TensorOf<M> lime(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const LimeOptions<M>& options) {
  using B = BackendOf<M>;
  const int64_t n = detail::check_perturbation_inputs(inputs, options.evaluation).n;
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<TensorOf<M>> maps;
  for (int64_t i = 0; i < n; ++i) {
    auto item_options = options;
    if (options.evaluation.progress)
      item_options.evaluation.progress = [&, i](int64_t done, int64_t) {
        options.evaluation.progress(i * options.samples + done, n * options.samples);
      };
    if (options.segments && B::shape(*options.segments).size() == 3 && B::rows(*options.segments) > 1)
      item_options.segments = B::slice_rows(*options.segments, i, i + 1);
    maps.push_back(lime_explanation(model, B::slice_rows(inputs, i, i + 1), detail::item_target<M>(resolved, i),
                                    item_options)
                       .attribution);
  }
  return B::concat_rows(maps);
}

template <ForwardModel M>
TensorOf<M> kernel_shap(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                        const KernelShapOptions<M>& options) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto image_size = detail::check_perturbation_inputs(inputs, evaluation);
  if (options.samples < 2) detail::fail("KernelSHAP needs at least 2 samples, got ", options.samples);
  const int64_t n = image_size.n, h = image_size.h, w = image_size.w;
  std::vector<detail::Segments> per_item;
  for (int64_t i = 0; i < n; ++i) per_item.push_back(detail::segments_of<B>(options.segments, inputs, i));
  const auto resolved = resolve_target(model, inputs, target);
  detail::Random random(options.seed);
  detail::EvaluationCounter counter(evaluation.progress, n * (options.samples + 1));
  std::vector<std::vector<double>> maps;
  for (int64_t i = 0; i < n; ++i) {
    const auto& seg = per_item[i];
    auto image = B::slice_rows(inputs, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    const double full = detail::full_score(model, image, item_target, evaluation);
    const auto [z, weights] = detail::shap_coalitions(seg.count, options.samples, random);
    const double empty = detail::masked_scores(
        model, image, item_target, 1,
        [&](int64_t, int64_t) { return detail::mask_tensor<B>(std::vector<double>(h * w, 0.0), h, w, inputs); },
        evaluation, counter)[0];
    std::vector<double> phi;
    if (seg.count == 1) {
      phi = {full - empty};
    } else {
      auto scores = detail::masked_scores(
          model, image, item_target, z.rows(),
          [&](int64_t begin, int64_t end) {
            return detail::mask_tensor<B>(detail::coalition_masks(z.middleRows(begin, end - begin), seg), h, w, inputs);
          },
          evaluation, counter);
      phi = efficient_least_squares(z, detail::eigen_vector(scores), weights, empty, full).coefficients;
    }
    maps.push_back(detail::paint(phi, seg));
  }
  return detail::maps_tensor<B>(maps, h, w, inputs);
}

}  // namespace salient
