#pragma once
// Faithfulness: does an attribution point at what the model actually uses?
//
// - deletion / insertion curves (Petsiuk et al. 2018, RISE): features (pixels, or the segments
//   of a label map) are removed from the image, or inserted into the removed image, in order of
//   decreasing attribution, `step` features at a time, through any masker (an input fill or
//   layer masking); the curve is the target's score after each step and its area the
//   trapezoid over the fraction of features removed (x in [0, 1]). A good attribution makes
//   deletion fall fast (small area) and insertion rise fast (large area).
// - infidelity (Yeh et al. 2019; Captum's `infidelity`): the mean over random perturbations
//   I of (sum(attribution * I) - (F(x) - F(x - I)))^2, optionally with the attribution first
//   rescaled by the least-squares factor beta (Captum's `normalize=True`).
// - sensitivity_max (Yeh et al. 2019; Captum's `sensitivity_max`): the largest relative change
//   ||Phi(x + d) - Phi(x)|| / ||Phi(x)|| (Frobenius norms, a zero norm counted as 1) of an
//   explanation Phi over perturbations d ~ U[-radius, radius] of every input value.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "salient/attribution/perturbation.hpp"
#include "salient/core/torch_backend.hpp"

namespace salient {

struct CurveOptions {
  // Features removed (or inserted) per step; 0: a hundredth of them (rounded up).
  int64_t step = 0;
  // A label map [H,W] (or [N,H,W]): features are its segments, ranked by mean attribution.
  // Undefined: features are pixels, ranked by the attribution summed over channels.
  torch::Tensor segments = {};
  // The masker and the score; by default the target's softmax probability, as in RISE.
  PerturbationOptions evaluation = {.probabilities = true};
};

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

// Rank of every pixel's feature ([H*W] int64, 0 = most important) and the feature count.
inline std::pair<torch::Tensor, int64_t> feature_ranks(const torch::Tensor& attribution, const torch::Tensor& inputs,
                                                       const torch::Tensor& segments, int64_t item) {
  auto per_pixel = attribution.to(torch::kDouble).sum(0).reshape({-1});  // channels summed
  if (!segments.defined()) {
    auto order = std::get<1>(per_pixel.sort(/*stable=*/true, 0, /*descending=*/true));
    auto ranks = torch::empty_like(order);
    ranks.index_put_({order}, torch::arange(order.size(0), torch::kLong));
    return {ranks, order.size(0)};
  }
  auto s = segments_of(segments, inputs, item);
  auto sums = torch::zeros({s.count}, torch::kDouble).index_add_(0, s.labels, per_pixel);
  auto counts = torch::zeros({s.count}, torch::kDouble).index_add_(0, s.labels, torch::ones_like(per_pixel));
  auto order = std::get<1>((sums / counts).sort(/*stable=*/true, 0, /*descending=*/true));
  auto segment_rank = torch::empty_like(order);
  segment_rank.index_put_({order}, torch::arange(s.count, torch::kLong));
  return {segment_rank.index_select(0, s.labels), s.count};
}
}  // namespace detail

// Deletion or insertion curves of `attributions` ([N,C,H,W] or [N,1,H,W]) for `inputs`.
inline std::vector<Curve> perturbation_curves(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                              const torch::Tensor& attributions, CurveKind kind,
                                              const CurveOptions& options = {}) {
  const auto& evaluation = options.evaluation;
  detail::check_perturbation_inputs(inputs, evaluation);
  const int64_t n = inputs.size(0), h = inputs.size(2), w = inputs.size(3);
  if (attributions.dim() != 4 || attributions.size(0) != n || attributions.size(2) != h || attributions.size(3) != w)
    detail::fail("attributions of shape ", shape_string(attributions), " do not fit inputs ", shape_string(inputs),
                 " (expected [", n, ",C,", h, ",", w, "])");
  TorchBackend::check_finite(attributions, "attribution");
  if (options.step < 0) detail::fail("curve step must be >= 0 (0: a hundredth of the features), got ", options.step);
  auto resolved = resolve_target(model, inputs, target);
  std::vector<Curve> curves;
  for (int64_t i = 0; i < n; ++i) {
    auto image = inputs.slice(0, i, i + 1);
    auto [ranks, features] = detail::feature_ranks(attributions[i], inputs, options.segments, i);
    const int64_t step = options.step > 0 ? options.step : (features + 99) / 100;
    const int64_t points = (features + step - 1) / step + 1;
    Curve curve;
    for (int64_t p = 0; p < points; ++p)
      curve.fractions.push_back(static_cast<double>(std::min(features, p * step)) / static_cast<double>(features));
    auto rank_map = ranks.view({1, 1, h, w}).to(inputs.device());
    detail::EvaluationCounter counter(evaluation.progress, points);
    auto scores = detail::masked_scores(
        model, image, resolved.slice(i, i + 1), points,
        [&](int64_t begin, int64_t end) {
          auto changed = torch::arange(begin, end, torch::kLong).mul_(step).clamp_max_(features).to(inputs.device());
          auto removed = rank_map < changed.view({-1, 1, 1, 1});  // the first `changed` features
          return (kind == CurveKind::deletion ? removed.logical_not() : removed).to(inputs.dtype());
        },
        evaluation, counter);
    curve.scores.assign(scores.data_ptr<double>(), scores.data_ptr<double>() + points);
    curve.area = detail::trapezoid(curve.fractions, curve.scores);
    curves.push_back(std::move(curve));
  }
  return curves;
}

inline std::vector<Curve> deletion_curves(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                          const torch::Tensor& attributions, const CurveOptions& options = {}) {
  return perturbation_curves(model, inputs, target, attributions, CurveKind::deletion, options);
}

inline std::vector<Curve> insertion_curves(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                           const torch::Tensor& attributions, const CurveOptions& options = {}) {
  return perturbation_curves(model, inputs, target, attributions, CurveKind::insertion, options);
}

// A perturbation of a batch: {I, x - I}-style pair (the perturbation and the perturbed input).
struct Perturbation {
  torch::Tensor perturbation;
  torch::Tensor perturbed;
};
using PerturbFunction = std::function<Perturbation(const torch::Tensor& inputs, at::Generator& generator)>;

struct InfidelityOptions {
  int64_t samples = 10;      // perturbations per input (Captum's n_perturb_samples)
  double stdev = 0.003;      // default perturbation: I ~ N(0, stdev^2), perturbed input x - I
  PerturbFunction perturb;   // custom perturbation (replaces the default)
  bool normalize = false;    // rescale the attribution by beta first (Captum's normalize)
  uint64_t seed = 0;
  int64_t batch_size = 64;   // perturbed inputs per forward pass
};

// Infidelity of `attributions` (the inputs' shape) for each input: [N] (double).
inline torch::Tensor infidelity(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                const torch::Tensor& attributions, const InfidelityOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  if (attributions.sizes() != inputs.sizes())
    detail::fail("attributions of shape ", shape_string(attributions), " do not match inputs ", shape_string(inputs));
  TorchBackend::check_finite(attributions, "attribution");
  if (options.samples < 1) detail::fail("infidelity needs at least 1 sample, got ", options.samples);
  if (!(options.stdev >= 0)) detail::fail("infidelity noise stdev must be >= 0, got ", options.stdev);
  const int64_t n = inputs.size(0), s = options.samples;
  auto resolved = resolve_target(model, inputs, target);
  auto score = [&](const torch::Tensor& x, const ResolvedTarget<torch::Tensor>& t) {
    return TorchBackend::select(model.forward(x), t).to(torch::kDouble).cpu();
  };
  auto full = score(inputs, resolved);  // F(x) [N]
  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  // Sample-major copies [x_0..x_{N-1}, x_0..]: one target tiling for all chunks.
  auto tiled = inputs.repeat({s, 1, 1, 1}).contiguous();
  Perturbation p;
  if (options.perturb) {
    p = options.perturb(tiled, generator);
    if (p.perturbation.sizes() != tiled.sizes() || p.perturbed.sizes() != tiled.sizes())
      detail::fail("the perturbation function returned shapes ", shape_string(p.perturbation), " and ",
                   shape_string(p.perturbed), " for inputs ", shape_string(tiled));
  } else {
    auto noise = torch::empty(tiled.sizes(), torch::kDouble).normal_(0, options.stdev, generator).to(tiled.options());
    p = {noise, tiled - noise};
  }
  std::vector<torch::Tensor> parts;
  auto tiled_target = resolved.tiled(s);
  detail::for_each_chunk(n * s, options.batch_size, [&](int64_t begin, int64_t end) {
    parts.push_back(score(p.perturbed.slice(0, begin, end), tiled_target.slice(begin, end)));
  });
  auto drop = (full.repeat({s}) - torch::cat(parts)).view({s, n});                     // F(x) - F(x~)
  auto explained = (attributions.to(torch::kDouble).repeat({s, 1, 1, 1}) * p.perturbation.to(torch::kDouble))
                       .view({s, n, -1}).sum(2);                                          // sum(attr * I)
  if (!options.normalize) return (explained - drop).pow(2).mean(0);
  auto a0 = explained.pow(2).sum(0), a1 = (explained * drop).sum(0), a2 = drop.pow(2).sum(0);
  auto beta = torch::where(a0 == 0, torch::zeros_like(a0), a1 / a0);
  return (beta * beta * a0 - 2 * beta * a1 + a2) / static_cast<double>(s);
}

struct SensitivityOptions {
  int64_t samples = 10;   // perturbations per input
  double radius = 0.02;   // d ~ U[-radius, radius] per input value
  uint64_t seed = 0;
};

// The explanation being tested: attributions of a batch for per-item classes.
using ExplainFunction = std::function<torch::Tensor(const torch::Tensor& inputs, const Target& target)>;

// Sensitivity-max of an explanation for each input: [N] (double). The target is resolved once
// on the unperturbed inputs, so every perturbed copy explains the same class.
inline torch::Tensor sensitivity_max(TorchModel& model, const ExplainFunction& explain, const torch::Tensor& inputs,
                                     const Target& target, const SensitivityOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  if (options.samples < 1) detail::fail("sensitivity_max needs at least 1 sample, got ", options.samples);
  if (!(options.radius >= 0)) detail::fail("sensitivity radius must be >= 0, got ", options.radius);
  const int64_t n = inputs.size(0), s = options.samples;
  auto resolved = resolve_target(model, inputs, target);
  if (resolved.is_custom()) detail::fail("sensitivity_max needs a class target (one class per input)");
  auto original = explain(inputs, Target(resolved.classes)).to(torch::kDouble).reshape({n, -1});
  auto norms = original.norm(2, 1);
  norms = torch::where(norms == 0, torch::ones_like(norms), norms);
  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  auto noise = torch::empty(inputs.sizes(), torch::kDouble);
  auto worst = torch::zeros({n}, torch::kDouble);
  for (int64_t k = 0; k < s; ++k) {  // one batch of N per sample: the explanation batches itself
    noise.uniform_(-options.radius, options.radius, generator);
    auto perturbed = explain(inputs + noise.to(inputs.options()), Target(resolved.classes)).to(torch::kDouble).reshape({n, -1});
    worst = torch::maximum(worst, (perturbed - original).norm(2, 1) / norms);
  }
  return worst;
}

}  // namespace salient
