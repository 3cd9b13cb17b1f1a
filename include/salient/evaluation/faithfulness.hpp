#pragma once
// Faithfulness: does an attribution point at what the model actually uses?
//
// - deletion / insertion curves: evaluation/curves.hpp (any ForwardModel).
// - infidelity (Yeh et al. 2019; Captum's `infidelity`): the mean over random perturbations
//   I of (sum(attribution * I) - (F(x) - F(x - I)))^2, optionally with the attribution first
//   rescaled by the least-squares factor beta (Captum's `normalize=True`).
// - sensitivity_max (Yeh et al. 2019): evaluation/robustness.hpp, included here.
// - faithfulness_correlation (Bhatt, Weller, Moura 2020, "Evaluating and Aggregating
//   Feature-based Model Explanations"; Quantus 0.6's FaithfulnessCorrelation with its
//   defaults): over `runs` random subsets S of `subset_size` pixels, the Pearson correlation
//   of sum_{p in S} a_p with F(x) - F(x with S removed).
// All work on any ForwardModel and return one value per input.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "salient/core/model.hpp"
#include "salient/core/options.hpp"
#include "salient/core/random.hpp"
#include "salient/evaluation/curves.hpp"
#include "salient/evaluation/robustness.hpp"  // sensitivity_max
#include "salient/evaluation/statistics.hpp"

namespace salient {

// A perturbation of a batch: the perturbation I and the perturbed input (x - I by default).
template <class Tensor>
struct Perturbation {
  Tensor perturbation;
  Tensor perturbed;
};
// Perturbs a batch of copies of the inputs; row r should draw from seeds[r] (a seed of its
// own item and sample), so that results do not depend on the batch size.
template <ForwardModel M>
using PerturbFunction =
    std::function<Perturbation<TensorOf<M>>(const TensorOf<M>& inputs, const std::vector<uint64_t>& seeds)>;

template <ForwardModel M>
struct InfidelityOptions {
  int64_t samples = 10;        // perturbations per input (Captum's n_perturb_samples)
  double stdev = 0.003;        // default perturbation: I ~ N(0, stdev^2), perturbed input x - I
  PerturbFunction<M> perturb;  // custom perturbation (replaces the default)
  bool normalize = false;      // rescale the attribution by beta first (Captum's normalize)
  uint64_t seed = 0;
  int64_t batch_size = 64;     // perturbed inputs per forward pass
  Progress progress = {};      // (perturbed inputs evaluated, total)
};

// Infidelity of `attributions` (the inputs' shape) for each input.
template <ForwardModel M>
std::vector<double> infidelity(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                               const TensorOf<M>& attributions, const InfidelityOptions<M>& options = {}) {
  using B = BackendOf<M>;
  using Tensor = TensorOf<M>;
  detail::check_inputs<B>(inputs);
  if (B::shape(attributions) != B::shape(inputs))
    detail::fail("attributions of shape ", detail::shape_text(B::shape(attributions)), " do not match inputs ",
                 detail::shape_text(B::shape(inputs)));
  B::check_finite(attributions, "attribution");
  if (options.samples < 1) detail::fail("infidelity needs at least 1 sample, got ", options.samples);
  if (!(options.stdev >= 0)) detail::fail("infidelity noise stdev must be >= 0, got ", options.stdev);
  const int64_t n = B::rows(inputs), s = options.samples, total = n * s;
  const auto resolved = resolve_target(model, inputs, target);
  const auto full = target_scores(model, inputs, resolved);  // F(x)
  // Copies sample-major (row r: item r % n, sample r / n), evaluated a chunk at a time.
  const auto tiled_target = resolved.tiled(s);
  std::vector<double> drop(static_cast<std::size_t>(total)), explained(drop.size());  // F(x) - F(x~), sum(attr * I)
  detail::for_each_chunk(total, options.batch_size, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> items;
    std::vector<uint64_t> seeds;
    for (int64_t r = begin; r < end; ++r) {
      items.push_back(r % n);
      seeds.push_back(detail::mix_seed(options.seed, static_cast<uint64_t>(r % n), static_cast<uint64_t>(r / n)));
    }
    const Tensor copies = B::take_rows(inputs, items);
    Perturbation<Tensor> p;
    if (options.perturb) {
      p = options.perturb(copies, seeds);
      if (B::shape(p.perturbation) != B::shape(copies) || B::shape(p.perturbed) != B::shape(copies))
        detail::fail("the perturbation function returned shapes ", detail::shape_text(B::shape(p.perturbation)), " and ",
                     detail::shape_text(B::shape(p.perturbed)), " for inputs ", detail::shape_text(B::shape(copies)));
    } else {
      p.perturbation = B::zeros_like(copies);
      B::add_normal_noise(p.perturbation, options.stdev, seeds);
      p.perturbed = copies - p.perturbation;
    }
    const auto scores = B::to_vector(B::select(model.forward(p.perturbed), tiled_target.slice(begin, end)));
    const auto sums = B::row_sums(Tensor(B::take_rows(attributions, items) * p.perturbation));
    for (int64_t r = begin; r < end; ++r) {
      drop[r] = full[r % n] - scores[r - begin];
      explained[r] = sums[r - begin];
    }
    if (options.progress) options.progress(end, total);
  });
  std::vector<double> result(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double a0 = 0, a1 = 0, a2 = 0, squared_error = 0;
    for (int64_t k = 0; k < s; ++k) {
      const double e = explained[k * n + i], d = drop[k * n + i];
      a0 += e * e, a1 += e * d, a2 += d * d, squared_error += (e - d) * (e - d);
    }
    if (!options.normalize) {
      result[i] = squared_error / static_cast<double>(s);
    } else {
      const double beta = a0 == 0 ? 0.0 : a1 / a0;
      result[i] = (beta * beta * a0 - 2 * beta * a1 + a2) / static_cast<double>(s);
    }
  }
  return result;
}

// Removed pixels take the input's minimum over all its values (Quantus' "black" baseline) unless
// `minimum_fill` is false, then `evaluation.masker` removes them. The map is first normalised
// as Quantus' normalise_by_negative does (positive values divided by the largest, negative ones
// by |the smallest|), then `abs` takes absolute values. Maps hold one value per pixel ([N,1,H,W]
// or [N,H,W]); every channel of a chosen pixel is removed. Subset r of item i is drawn from its
// own seed, so results do not depend on the batch size. A constant side gives 0 (Quantus: NaN).
template <ForwardModel M>
struct FaithfulnessCorrelationOptions {
  int64_t runs = 100;          // random subsets per input (Quantus' nr_runs)
  int64_t subset_size = 224;   // pixels removed per subset
  bool normalise = true;       // Quantus' normalise_by_negative first
  bool abs = false;            // then absolute values
  bool minimum_fill = true;    // removed pixels take the input's minimum; false: evaluation.masker
  uint64_t seed = 0;
  PerturbationOptions<M> evaluation = {};
};

template <class M, class Visit>
void for_each_option(FaithfulnessCorrelationOptions<M>& o, Visit&& visit) {
  visit("runs", o.runs), visit("subset_size", o.subset_size), visit("normalise", o.normalise), visit("abs", o.abs);
  visit("minimum_fill", o.minimum_fill), visit("seed", o.seed);
  for_each_option(o.evaluation, visit);
}

namespace detail {
// Quantus' normalise_by_negative: positive values / max, negative values / |min|.
inline void normalise_by_negative(std::vector<double>& a) {
  const auto [low, high] = std::minmax_element(a.begin(), a.end());
  const double lowest = *low, highest = *high;
  for (auto& v : a) v = v > 0 ? v / highest : v < 0 ? -v / lowest : 0.0;
}

// One value per pixel: attributions [N,1,H,W] or [N,H,W] for images [N,C,H,W].
template <TensorBackend B>
void check_pixel_map(const typename B::Tensor& attributions, const ImageSize& size, std::string_view what) {
  const auto shape = B::shape(attributions);
  const bool fits = (shape.size() == 4 && shape[0] == size.n && shape[1] == 1 && shape[2] == size.h && shape[3] == size.w) ||
                    (shape.size() == 3 && shape[0] == size.n && shape[1] == size.h && shape[2] == size.w);
  if (!fits)
    fail(what, " needs one value per pixel: attributions [", size.n, ",1,", size.h, ",", size.w, "] or [", size.n, ",",
         size.h, ",", size.w, "], got ", shape_text(shape), " (sum the channels of a per-channel map first)");
  B::check_finite(attributions, "attribution");
}

// The evaluation that removes pixels of `image`: its minimum value as fill (Quantus' "black"),
// or the options' masker.
template <ForwardModel M>
PerturbationOptions<M> removal_evaluation(const PerturbationOptions<M>& evaluation, bool minimum_fill,
                                          const TensorOf<M>& image) {
  PerturbationOptions<M> result = evaluation;
  if (minimum_fill)
    result.masker = BasicFillMasker<BackendOf<M>>::constant({static_cast<float>(BackendOf<M>::value_range(image)[0])}, "black");
  return result;
}
}  // namespace detail

template <ForwardModel M>
std::vector<double> faithfulness_correlation(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                             const TensorOf<M>& attributions,
                                             const FaithfulnessCorrelationOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto size = detail::check_perturbation_inputs(inputs, options.evaluation);
  detail::check_pixel_map<B>(attributions, size, "faithfulness correlation");
  const int64_t n = size.n, pixels = size.h * size.w;
  if (options.runs < 2 || options.runs > max_option_count)
    detail::fail("faithfulness correlation needs 2 to ", max_option_count, " runs, got ", options.runs);
  if (options.subset_size < 1 || options.subset_size > pixels)
    detail::fail("faithfulness correlation subset_size must be in [1, ", pixels, "] (the pixels), got ", options.subset_size);
  const auto maps = B::to_vector(attributions);
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(options.evaluation.progress, n * options.runs);
  std::vector<double> result;
  for (int64_t item = 0; item < n; ++item) {
    std::vector<double> a(maps.begin() + item * pixels, maps.begin() + (item + 1) * pixels);
    if (options.normalise) detail::normalise_by_negative(a);
    if (options.abs)
      for (auto& v : a) v = std::abs(v);
    const auto image = B::slice_rows(inputs, item, item + 1);
    const auto item_target = resolved.slice(item, item + 1);
    const auto evaluation = detail::removal_evaluation(options.evaluation, options.minimum_fill, image);
    std::vector<std::vector<int64_t>> subsets;
    std::vector<double> sums;
    for (int64_t r = 0; r < options.runs; ++r) {
      detail::Random random(detail::mix_seed(options.seed, static_cast<uint64_t>(item), static_cast<uint64_t>(r)));
      subsets.push_back(random.choose(pixels, options.subset_size));
      double sum = 0;
      for (const int64_t p : subsets.back()) sum += a[p];
      sums.push_back(sum);
    }
    const double full = detail::full_score(model, image, item_target, evaluation);
    auto drops = detail::masked_scores(
        model, image, item_target, options.runs,
        [&](int64_t begin, int64_t end) {
          std::vector<double> masks(static_cast<std::size_t>((end - begin) * pixels), 1.0);
          for (int64_t r = begin; r < end; ++r)
            for (const int64_t p : subsets[r]) masks[(r - begin) * pixels + p] = 0.0;
          return detail::mask_tensor<B>(masks, size.h, size.w, inputs);
        },
        evaluation, counter);
    for (auto& d : drops) d = full - d;
    result.push_back(detail::pearson_of(sums, drops));
  }
  return result;
}

}  // namespace salient
