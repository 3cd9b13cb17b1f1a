#pragma once
// Faithfulness by removing features in the order an attribution gives them, as Quantus 0.6
// defines it (each a function on any ForwardModel; the model is scored by the target's softmax
// probability unless `evaluation.probabilities` is false):
//
// - pixel_flipping (Bach et al. 2015; Quantus' PixelFlipping): pixels removed cumulatively in
//   the order of numpy.argsort(-a), `features_in_step` per step; the curve of the target's
//   score after each step (low = faithful).
// - region_perturbation (Samek et al. 2016; Quantus' RegionPerturbation): every
//   patch_size x patch_size window (one starting at every pixel, clipped at the right and
//   bottom edges, as Quantus' zero padding does) is valued by its attribution sum; windows are
//   taken in that order (most relevant first, least, or at random) skipping any that overlaps
//   one already taken, up to `regions`; removed cumulatively; the curve of F(x) - F(x~)
//   (high = faithful for MoRF).
// - selectivity (Montavon et al. 2018; Quantus' Selectivity): the same windows, most relevant
//   first, all that fit without overlap; the curve of the score (low = faithful).
// - monotonicity_correlation (Nguyen & Martinez 2020; Quantus' MonotonicityCorrelation):
//   pixels in ascending order of |a|, `features_in_step` per step; step k replaces only its own
//   pixels (not cumulative) by a value drawn U(min x, max x), `samples` times; the Spearman
//   correlation of the steps' attribution sums with the mean squared change of the score,
//   divided by F(x)^2 (when |F(x)| >= eps) (high = faithful).
// - road (Rong, Leemann et al. 2022; Quantus' ROAD): for each percentage p the top
//   floor(H W p / 100) pixels (MoRF: numpy.argsort(-a); LeRF: numpy.argsort(a)) removed by
//   noisy linear imputation (masking/imputation.hpp); the curve of "the model still predicts
//   the target" (1 or 0) (MoRF: low = faithful; LeRF: high).
//
// Removed pixels take the input's minimum over all its values (Quantus' "black" baseline) unless
// `minimum_fill` is false, then `evaluation.masker` removes them (layer masking included).
// Maps hold one value per pixel ([N,1,H,W] or [N,H,W]); every channel of a removed pixel is
// removed. Quantus' normalisation is applied where it can change a result: normalise_by_negative
// before summing windows (pixel orders and rank correlations do not change under it or under
// normalise_by_max). Ties between equal values fall as numpy's unstable argsort leaves them
// (core/numpy_argsort.hpp).
//
// Deviations, each because Quantus' own behaviour depends on an accident of layout: Quantus
// broadcasts a one-channel map over the channels, so its monotonicity and ROAD rank channel
// values (a pixel's channels can land in different steps, and ROAD's count H W p / 100 then
// covers a third of the pixels); salient ranks pixels. The random draws (uniform fills, ROAD's
// noise, the random region order) are salient's own seeded ones, not NumPy's.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "salient/core/model.hpp"
#include "salient/core/numpy_argsort.hpp"
#include "salient/core/options.hpp"
#include "salient/core/random.hpp"
#include "salient/evaluation/curves.hpp"
#include "salient/evaluation/faithfulness.hpp"
#include "salient/evaluation/statistics.hpp"
#include "salient/masking/imputation.hpp"

namespace salient {

enum class RemovalOrder { morf, lerf, random };  // most relevant first, least relevant first, random

inline std::string_view to_string(RemovalOrder order) {
  return order == RemovalOrder::morf ? "morf" : order == RemovalOrder::lerf ? "lerf" : "random";
}
inline void from_string(std::string_view text, RemovalOrder& order) {
  if (text == "morf") order = RemovalOrder::morf;
  else if (text == "lerf") order = RemovalOrder::lerf;
  else if (text == "random") order = RemovalOrder::random;
  else detail::fail("unknown removal order '", text, "' (expected morf, lerf or random)");
}

// Quantus' get_auc_score for one curve: numpy.trapz(scores, dx=1).
inline double quantus_auc(const Curve& curve) {
  double area = 0;
  for (std::size_t k = 1; k < curve.scores.size(); ++k) area += (curve.scores[k] + curve.scores[k - 1]) / 2;
  return area;
}

template <ForwardModel M>
struct PixelFlippingOptions {
  int64_t features_in_step = 1;  // pixels removed per step (Quantus' default; 224 x 224 photos want more)
  bool abs = false;              // rank |a| instead of a
  bool minimum_fill = true;      // removed pixels take the input's minimum; false: evaluation.masker
  PerturbationOptions<M> evaluation = {.probabilities = true};
};

template <class M, class Visit>
void for_each_option(PixelFlippingOptions<M>& o, Visit&& visit) {
  visit("features_in_step", o.features_in_step), visit("abs", o.abs), visit("minimum_fill", o.minimum_fill);
  for_each_option(o.evaluation, visit);
}

template <ForwardModel M>
struct RegionPerturbationOptions {
  int64_t patch_size = 8;
  RemovalOrder order = RemovalOrder::morf;
  int64_t regions = 100;     // at most this many windows (fewer when no more fit); 0: all that fit
  bool normalise = true;     // Quantus' normalise_by_negative before the window sums
  bool abs = false;          // then absolute values
  bool minimum_fill = true;  // removed pixels take the input's minimum; false: evaluation.masker
  uint64_t seed = 0;         // the random order
  PerturbationOptions<M> evaluation = {.probabilities = true};
};

template <class M, class Visit>
void for_each_option(RegionPerturbationOptions<M>& o, Visit&& visit) {
  visit("patch_size", o.patch_size), visit("order", o.order), visit("regions", o.regions);
  visit("normalise", o.normalise), visit("abs", o.abs), visit("minimum_fill", o.minimum_fill), visit("seed", o.seed);
  for_each_option(o.evaluation, visit);
}

template <ForwardModel M>
struct SelectivityOptions {  // Quantus' Selectivity: RegionPerturbation's windows, all of them, most relevant first
  int64_t patch_size = 8;
  bool normalise = true;     // Quantus' normalise_by_negative before the window sums
  bool abs = false;          // then absolute values
  bool minimum_fill = true;  // removed pixels take the input's minimum; false: evaluation.masker
  PerturbationOptions<M> evaluation = {.probabilities = true};
};

template <class M, class Visit>
void for_each_option(SelectivityOptions<M>& o, Visit&& visit) {
  visit("patch_size", o.patch_size), visit("normalise", o.normalise), visit("abs", o.abs);
  visit("minimum_fill", o.minimum_fill);
  for_each_option(o.evaluation, visit);
}

template <ForwardModel M>
struct MonotonicityOptions {
  int64_t features_in_step = 1;  // pixels per step (Quantus' default)
  int64_t samples = 100;         // random fills per step (Quantus' nr_samples)
  double eps = 1e-5;             // |F(x)| below this: the squared changes are not divided by F(x)^2
  bool abs = true;               // Quantus' default
  uint64_t seed = 0;
  PerturbationOptions<M> evaluation = {.probabilities = true};  // its masker is not used: fills are random
};

template <class M, class Visit>
void for_each_option(MonotonicityOptions<M>& o, Visit&& visit) {
  visit("features_in_step", o.features_in_step), visit("samples", o.samples), visit("eps", o.eps);
  visit("abs", o.abs), visit("seed", o.seed);
  for_each_option(o.evaluation, visit);
}

template <ForwardModel M>
struct RoadOptions {
  std::vector<double> percentages = default_percentages();  // of the pixels, each in (0, 100)
  RemovalOrder order = RemovalOrder::morf;                    // morf or lerf
  double noise = 0.01;  // imputation noise in model-input units (Quantus' default)
  bool abs = false;
  uint64_t seed = 0;
  int64_t batch_size = 32;  // imputed inputs per forward pass
  Progress progress = {};   // (imputed inputs evaluated, total)

  static std::vector<double> default_percentages() {  // 1, 3, ..., 99 (Quantus)
    std::vector<double> p;
    for (int k = 1; k < 100; k += 2) p.push_back(k);
    return p;
  }
};

template <class M, class Visit>
void for_each_option(RoadOptions<M>& o, Visit&& visit) {
  visit("percentages", o.percentages), visit("order", o.order), visit("noise", o.noise), visit("abs", o.abs);
  visit("seed", o.seed), visit("batch_size", o.batch_size);
}

namespace detail {
// Item i's map, one value per pixel (already checked by check_pixel_map).
inline std::vector<double> pixel_map(const std::vector<double>& maps, int64_t item, int64_t pixels, bool absolute) {
  std::vector<double> a(maps.begin() + item * pixels, maps.begin() + (item + 1) * pixels);
  if (absolute)
    for (auto& v : a) v = std::abs(v);
  return a;
}

// Rank of each pixel from an order (order[k] = the k-th pixel).
inline std::vector<int64_t> ranks_of(const std::vector<int64_t>& order) {
  std::vector<int64_t> ranks(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) ranks[order[k]] = static_cast<int64_t>(k);
  return ranks;
}

inline std::vector<double> negated(std::vector<double> a) {
  for (auto& v : a) v = -v;
  return a;
}

// Scores of `image` after removing, at point k, the pixels whose rank is below thresholds[k].
template <ForwardModel M>
std::vector<double> scores_after_removal(M& model, const TensorOf<M>& image, const ResolvedTarget<TensorOf<M>>& target,
                                         const std::vector<int64_t>& ranks, const std::vector<int64_t>& thresholds,
                                         int64_t h, int64_t w, const PerturbationOptions<M>& evaluation) {
  EvaluationCounter counter(evaluation.progress, static_cast<int64_t>(thresholds.size()));
  return masked_scores(
      model, image, target, static_cast<int64_t>(thresholds.size()),
      [&](int64_t begin, int64_t end) {
        std::vector<double> masks(static_cast<std::size_t>((end - begin) * h * w));
        for (int64_t k = begin; k < end; ++k)
          for (int64_t p = 0; p < h * w; ++p) masks[(k - begin) * h * w + p] = ranks[p] < thresholds[k] ? 0.0 : 1.0;
        return mask_tensor<BackendOf<M>>(masks, h, w, image);
      },
      evaluation, counter);
}

// Quantus' window choice: windows (top-left at every pixel) by their attribution sums in
// `order`, skipping overlaps, at most `limit` (0: no limit). Per pixel the rank of the window
// that removes it (-> `count` windows), or a rank no threshold reaches.
struct Windows {
  std::vector<int64_t> ranks;
  int64_t count = 0;
};
inline Windows choose_windows(const std::vector<double>& a, int64_t h, int64_t w, int64_t size, RemovalOrder order,
                              int64_t limit, uint64_t seed) {
  // Window sums from a summed-area table; windows reaching past the edge sum what is inside.
  std::vector<double> table(static_cast<std::size_t>((h + 1) * (w + 1)), 0.0);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      table[(y + 1) * (w + 1) + x + 1] =
          a[y * w + x] + table[y * (w + 1) + x + 1] + table[(y + 1) * (w + 1) + x] - table[y * (w + 1) + x];
  std::vector<double> sums(static_cast<std::size_t>(h * w));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t y1 = std::min(h, y + size), x1 = std::min(w, x + size);
      sums[y * w + x] = table[y1 * (w + 1) + x1] - table[y * (w + 1) + x1] - table[y1 * (w + 1) + x] + table[y * (w + 1) + x];
    }
  std::vector<int64_t> candidates;
  if (order == RemovalOrder::random) {
    candidates.resize(sums.size());
    for (std::size_t k = 0; k < candidates.size(); ++k) candidates[k] = static_cast<int64_t>(k);
    Random random(seed);
    for (std::size_t k = candidates.size(); k > 1; --k)
      std::swap(candidates[k - 1], candidates[static_cast<std::size_t>(random.uniform() * static_cast<double>(k))]);
  } else {
    candidates = numpy_argsort(sums);
    if (order == RemovalOrder::morf) std::reverse(candidates.begin(), candidates.end());
  }
  // Overlap is decided on the padded grid, as in Quantus: windows past the edge block there too.
  const int64_t gh = h + size - 1, gw = w + size - 1;
  std::vector<char> blocked(static_cast<std::size_t>(gh * gw), 0);
  Windows result{std::vector<int64_t>(static_cast<std::size_t>(h * w), std::numeric_limits<int64_t>::max()), 0};
  for (const int64_t c : candidates) {
    if (limit > 0 && result.count >= limit) break;
    const int64_t y0 = c / w, x0 = c % w;
    bool free = true;
    for (int64_t y = y0; y < y0 + size && free; ++y)
      for (int64_t x = x0; x < x0 + size; ++x)
        if (blocked[y * gw + x]) {
          free = false;
          break;
        }
    if (!free) continue;
    for (int64_t y = y0; y < y0 + size; ++y)
      for (int64_t x = x0; x < x0 + size; ++x) {
        blocked[y * gw + x] = 1;
        if (y < h && x < w) result.ranks[y * w + x] = result.count;
      }
    ++result.count;
  }
  return result;
}

template <ForwardModel M>
std::vector<Curve> window_curves(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                 const TensorOf<M>& attributions, const RegionPerturbationOptions<M>& options,
                                 bool score_drop, std::string_view what) {
  using B = BackendOf<M>;
  const auto size = check_perturbation_inputs(inputs, options.evaluation);
  check_pixel_map<B>(attributions, size, what);
  const int64_t pixels = size.h * size.w;
  if (options.patch_size < 1 || options.patch_size > std::max(size.h, size.w))
    fail(what, " patch_size must be in [1, ", std::max(size.h, size.w), "], got ", options.patch_size);
  if (options.regions < 0 || options.regions > max_option_count)
    fail(what, " regions must be in [0, ", max_option_count, "] (0: all that fit), got ", options.regions);
  const auto maps = B::to_vector(attributions);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<Curve> curves;
  for (int64_t item = 0; item < size.n; ++item) {
    auto a = pixel_map(maps, item, pixels, false);
    if (options.normalise) normalise_by_negative(a);
    if (options.abs)
      for (auto& v : a) v = std::abs(v);
    const auto windows = choose_windows(a, size.h, size.w, options.patch_size, options.order, options.regions,
                                        mix_seed(options.seed, static_cast<uint64_t>(item), 0));
    const auto image = B::slice_rows(inputs, item, item + 1);
    const auto item_target = resolved.slice(item, item + 1);
    const auto evaluation = removal_evaluation(options.evaluation, options.minimum_fill, image);
    std::vector<int64_t> thresholds;
    for (int64_t k = 1; k <= windows.count; ++k) thresholds.push_back(k);
    Curve curve;
    curve.scores = scores_after_removal(model, image, item_target, windows.ranks, thresholds, size.h, size.w, evaluation);
    if (score_drop) {
      const double full = full_score(model, image, item_target, evaluation);
      for (auto& s : curve.scores) s = full - s;
    }
    std::vector<int64_t> removed(static_cast<std::size_t>(windows.count), 0);  // pixels each window removes
    for (const int64_t r : windows.ranks)
      if (r < windows.count) ++removed[r];
    int64_t total = 0;
    for (const int64_t r : removed) curve.fractions.push_back(static_cast<double>(total += r) / static_cast<double>(pixels));
    curve.area = trapezoid(curve.fractions, curve.scores);
    curves.push_back(std::move(curve));
  }
  return curves;
}

inline void check_features_in_step(int64_t features_in_step, int64_t pixels, std::string_view what) {
  if (features_in_step < 1 || features_in_step > pixels)
    fail(what, " features_in_step must be in [1, ", pixels, "] (the pixels), got ", features_in_step);
}
}  // namespace detail

// One curve per input: scores after each step; fractions = share of pixels removed.
template <ForwardModel M>
std::vector<Curve> pixel_flipping(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                  const TensorOf<M>& attributions, const PixelFlippingOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto size = detail::check_perturbation_inputs(inputs, options.evaluation);
  detail::check_pixel_map<B>(attributions, size, "pixel flipping");
  const int64_t pixels = size.h * size.w, step = options.features_in_step;
  detail::check_features_in_step(step, pixels, "pixel flipping");
  const auto maps = B::to_vector(attributions);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<Curve> curves;
  for (int64_t item = 0; item < size.n; ++item) {
    const auto ranks =
        detail::ranks_of(detail::numpy_argsort(detail::negated(detail::pixel_map(maps, item, pixels, options.abs))));
    std::vector<int64_t> thresholds;
    Curve curve;
    for (int64_t t = step; t < pixels + step; t += step) {
      thresholds.push_back(std::min(t, pixels));
      curve.fractions.push_back(static_cast<double>(thresholds.back()) / static_cast<double>(pixels));
    }
    const auto image = B::slice_rows(inputs, item, item + 1);
    curve.scores = detail::scores_after_removal(model, image, resolved.slice(item, item + 1), ranks, thresholds, size.h,
                                                size.w, detail::removal_evaluation(options.evaluation, options.minimum_fill, image));
    curve.area = detail::trapezoid(curve.fractions, curve.scores);
    curves.push_back(std::move(curve));
  }
  return curves;
}

// One curve per input: F(x) - F(x~) after each window.
template <ForwardModel M>
std::vector<Curve> region_perturbation(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                       const TensorOf<M>& attributions, const RegionPerturbationOptions<M>& options = {}) {
  return detail::window_curves(model, inputs, target, attributions, options, true, "region perturbation");
}

// One curve per input: F(x~) after each window, all windows that fit, most relevant first.
template <ForwardModel M>
std::vector<Curve> selectivity(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                               const TensorOf<M>& attributions, const SelectivityOptions<M>& options = {}) {
  const RegionPerturbationOptions<M> windows{.patch_size = options.patch_size, .order = RemovalOrder::morf, .regions = 0,
                                             .normalise = options.normalise, .abs = options.abs,
                                             .minimum_fill = options.minimum_fill, .evaluation = options.evaluation};
  return detail::window_curves(model, inputs, target, attributions, windows, false, "selectivity");
}

// Monotonicity correlation per input.
template <ForwardModel M>
std::vector<double> monotonicity_correlation(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                             const TensorOf<M>& attributions, const MonotonicityOptions<M>& options = {}) {
  using B = BackendOf<M>;
  using Tensor = TensorOf<M>;
  const auto size = detail::check_perturbation_inputs(inputs, options.evaluation);
  detail::check_pixel_map<B>(attributions, size, "monotonicity correlation");
  const int64_t pixels = size.h * size.w, step = options.features_in_step;
  detail::check_features_in_step(step, pixels, "monotonicity correlation");
  if (options.samples < 1 || options.samples > max_option_count)
    detail::fail("monotonicity correlation samples must be in [1, ", max_option_count, "], got ", options.samples);
  if (!(options.eps >= 0) || !std::isfinite(options.eps))
    detail::fail("monotonicity correlation eps must be finite and >= 0, got ", options.eps);
  const int64_t steps = (pixels + step - 1) / step, s = options.samples, total = steps * s;
  const auto maps = B::to_vector(attributions);
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(options.evaluation.progress, size.n * total);
  std::vector<double> result;
  for (int64_t item = 0; item < size.n; ++item) {
    const auto a = detail::pixel_map(maps, item, pixels, options.abs);
    const auto ranks = detail::ranks_of(detail::numpy_argsort(a));
    std::vector<double> sums(static_cast<std::size_t>(steps), 0.0);
    for (int64_t p = 0; p < pixels; ++p) sums[ranks[p] / step] += a[p];
    const Tensor image = B::slice_rows(inputs, item, item + 1);
    const auto item_target = resolved.slice(item, item + 1);
    const double full = detail::full_score(model, image, item_target, options.evaluation);
    const double scale = std::abs(full) >= options.eps ? 1.0 / (full * full) : 1.0;
    const auto [low, high] = B::value_range(image);
    const int64_t channels = B::shape(image)[1];
    std::vector<double> changes(static_cast<std::size_t>(steps), 0.0);
    // Copy r = step * samples + sample: the step's pixels set to one uniform value.
    detail::for_each_chunk(total, options.evaluation.batch_size, [&](int64_t begin, int64_t end) {
      std::vector<double> masks(static_cast<std::size_t>((end - begin) * pixels)), fills;
      fills.reserve(static_cast<std::size_t>((end - begin) * channels * pixels));
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t p = 0; p < pixels; ++p) masks[(r - begin) * pixels + p] = ranks[p] / step == r / s ? 0.0 : 1.0;
        detail::Random random(detail::mix_seed(options.seed, static_cast<uint64_t>(item), static_cast<uint64_t>(r)));
        fills.insert(fills.end(), static_cast<std::size_t>(channels * pixels), low + (high - low) * random.uniform());
      }
      const auto count = end - begin;
      const Tensor perturbed = B::blend(image, detail::mask_tensor<B>(masks, size.h, size.w, inputs),
                                        B::from_values(fills, {count, channels, size.h, size.w}, inputs));
      const auto scores = detail::target_scores<B>(model.forward(perturbed), item_target, options.evaluation.probabilities);
      for (int64_t r = begin; r < end; ++r) changes[r / s] += (scores[r - begin] - full) * (scores[r - begin] - full);
      counter.add(count);
    });
    for (auto& c : changes) c = c / static_cast<double>(s) * scale;
    result.push_back(detail::spearman_of(sums, changes));
  }
  return result;
}

// ROAD per input: curve.scores[k] = 1 when the model still predicts the target class after
// removing percentages[k] % of the pixels, else 0; fractions = percentages / 100. area is the
// trapezoid over them; Quantus reports the mean over inputs at each percentage.
template <ForwardModel M>
std::vector<Curve> road(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const TensorOf<M>& attributions,
                        const RoadOptions<M>& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  const auto shape = B::shape(inputs);
  const detail::ImageSize size{shape[0], shape[2], shape[3]};
  detail::check_pixel_map<B>(attributions, size, "ROAD");
  detail::check_batch_size(options.batch_size, "ROAD");
  if (options.percentages.empty() || static_cast<int64_t>(options.percentages.size()) > 1000)
    detail::fail("ROAD needs 1 to 1000 percentages, got ", options.percentages.size());
  for (const double p : options.percentages)
    if (!(p > 0 && p < 100)) detail::fail("ROAD percentages must be in (0, 100), got ", p);
  if (options.order == RemovalOrder::random) detail::fail("ROAD orders pixels by morf or lerf, not at random");
  const int64_t pixels = size.h * size.w;
  const auto maps = B::to_vector(attributions);
  const auto resolved = resolve_target(model, inputs, target);
  if (resolved.is_custom()) detail::fail("ROAD needs a class target (one class per input): it checks the predicted class");
  const BasicImputationMasker<B> masker(options.noise, options.seed);
  const auto points = static_cast<int64_t>(options.percentages.size());
  detail::EvaluationCounter counter(options.progress, size.n * points);
  std::vector<Curve> curves;
  for (int64_t item = 0; item < size.n; ++item) {
    auto a = detail::pixel_map(maps, item, pixels, options.abs);
    if (options.order == RemovalOrder::morf) a = detail::negated(std::move(a));
    const auto ranks = detail::ranks_of(detail::numpy_argsort(a));
    Curve curve;
    for (const double p : options.percentages) curve.fractions.push_back(p / 100);
    const auto image = B::slice_rows(inputs, item, item + 1);
    // One batch of removal levels at a time: the masks of all levels of a large image would
    // hold percentages x pixels doubles at once.
    for (int64_t begin = 0; begin < points; begin += options.batch_size) {
      const int64_t end = std::min(points, begin + options.batch_size);
      std::vector<double> masks(static_cast<std::size_t>((end - begin) * pixels));
      for (int64_t k = begin; k < end; ++k) {
        const auto removed = static_cast<int64_t>(static_cast<double>(pixels) * options.percentages[k] / 100);
        for (int64_t q = 0; q < pixels; ++q) masks[(k - begin) * pixels + q] = ranks[q] < removed ? 0.0 : 1.0;
      }
      const auto predicted = B::argmax_rows(masker.outputs(
          model, image, detail::mask_tensor<B>(masks, size.h, size.w, inputs), {.batch_size = options.batch_size}));
      for (const int64_t c : predicted) curve.scores.push_back(c == resolved.classes.at(item) ? 1.0 : 0.0);
    }
    counter.add(points);
    curve.area = detail::trapezoid(curve.fractions, curve.scores);
    curves.push_back(std::move(curve));
  }
  return curves;
}

}  // namespace salient
