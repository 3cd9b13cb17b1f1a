#pragma once
// Robustness: does an explanation stay put when the input barely moves? Three metrics for any
// ForwardModel and any method (MethodOf<M>), Quantus 0.6's two with its defaults:
//
// - sensitivity_max (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations";
//   Captum's `sensitivity_max`): over `samples` perturbations d ~ U[-radius, radius] of every
//   input value, the largest ||e(x + d) - e(x)||_2 / ||e(x)||_2 (a zero norm counted as 1); no
//   normalisation, every perturbation counts.
// - local_lipschitz_estimate (Alvarez-Melis & Jaakkola 2018, "On the Robustness of
//   Interpretability Methods"; Quantus' LocalLipschitzEstimate): over `samples` perturbations
//   x' = x + d, d ~ N(mean, stdev^2) per input value (Quantus' gaussian_noise, perturb_mean 0,
//   perturb_std 0.1, nr_samples 200), the largest
//       ||e(x) - e(x')||_2 / (||x - x'||_2 + 1e-10)
//   (Quantus' lipschitz_constant with distance_euclidean for numerator and denominator, its
//   1e-10 guarding a zero step). Explanations are flattened per item and, as Quantus'
//   normalise=True does by default, first divided by their largest |value| (normalise_by_max;
//   an all-zero map is left as it is); abs=False.
// - relative_input_stability (Agarwal et al. 2022, "Rethinking Stability for Attribution-based
//   Explanations"; Quantus' RelativeInputStability): over `samples` perturbations
//   x' = x + d, d ~ U[lower_bound, upper_bound] per value (Quantus' default uniform noise with
//   lower_bound 0.02 and upper_bound 0.2: one-sided, every value moves up), the largest
//       || (e_x - e_x') / e_x ||_2  /  || (x - x') / x ||_2
//   with Quantus' guards against division by zero, applied exactly as it does: each element
//   of e_x or x that is exactly 0 is replaced by eps_min (1e-6) in the elementwise division,
//   and a denominator norm that is exactly 0 becomes eps_min (the paper's max(., eps_min)
//   differs only for norms in (0, eps_min)). Quantus' defaults normalise=False, abs=False; with
//   `normalise`, each map is divided by the root of its mean square (Quantus'
//   normalise_by_average_second_moment_estimate; an all-zero map is left as it is).
// Deviation in both: Quantus' base class normalises a whole evaluation batch of maps at once
// (the normalise functions' default axes), here each map is normalised on its own (the same
// when the batch holds one item), so that a score does not depend on the other inputs.
//
// Predicted-class changes (Quantus' return_nan_when_prediction_changes): a perturbation changes
// the prediction of an item when argmax F(x') != argmax F(x) (the model's top class, whatever
// the explained target). `PredictionChange::nan` gives the item NaN as soon as one of its
// perturbations changes the prediction (Quantus takes np.max over samples, so one NaN makes
// the result NaN; RelativeInputStability's default, return_nan_when_prediction_changes=True);
// `keep` counts every perturbation and runs no extra forward passes (LocalLipschitzEstimate's
// default, False); `skip` (not in Quantus) leaves such perturbations out of the max, and an
// item whose every perturbation changed the prediction gets NaN: there is no sample to measure,
// and 0 would claim a perfectly stable explanation.
//
// As in sensitivity_max: the target is resolved once on the unperturbed inputs, so every
// perturbed copy explains the same class; the noise of item i in sample k is drawn from
// detail::Random(detail::mix_seed(seed, i, k)), value by value in storage order, so an item's
// result depends only on its input, its index in the batch and the seed (not on the other
// items); each sample is one batch of N perturbed inputs (the method batches itself). Quantus
// draws from NumPy's global generator, so results agree with it in distribution, not draw for
// draw.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include "salient/core/model.hpp"
#include "salient/core/options.hpp"
#include "salient/core/random.hpp"
#include "salient/evaluation/statistics.hpp"

namespace salient {

enum class PredictionChange { keep, nan, skip };

inline std::string_view to_string(PredictionChange change) {
  switch (change) {
    case PredictionChange::keep: return "keep";
    case PredictionChange::nan: return "nan";
    case PredictionChange::skip: return "skip";
  }
  return "?";
}
inline void from_string(std::string_view name, PredictionChange& change) {
  for (auto c : {PredictionChange::keep, PredictionChange::nan, PredictionChange::skip})
    if (name == to_string(c)) {
      change = c;
      return;
    }
  detail::fail("unknown prediction change rule '", name, "' (expected keep, nan or skip)");
}

struct LipschitzOptions {
  int64_t samples = 200;  // perturbations per input (Quantus' nr_samples)
  double mean = 0.0;      // d ~ N(mean, stdev^2) per input value (perturb_mean)
  double stdev = 0.1;     // (perturb_std)
  bool normalise = true;  // divide each explanation by its largest |value| (normalise_by_max)
  bool abs = false;       // then take absolute values
  PredictionChange prediction_change = PredictionChange::keep;  // Quantus: return_nan_when_prediction_changes=False
  uint64_t seed = 0;
  Progress progress = {};  // (perturbed batches explained, samples)
};

template <class Visit>
void for_each_option(LipschitzOptions& o, Visit&& visit) {
  visit("samples", o.samples), visit("mean", o.mean), visit("stdev", o.stdev), visit("normalise", o.normalise);
  visit("abs", o.abs), visit("prediction_change", o.prediction_change), visit("seed", o.seed);
  visit("progress", o.progress);
}

struct StabilityOptions {
  int64_t samples = 200;      // perturbations per input (Quantus' nr_samples)
  double lower_bound = 0.02;  // d ~ U[lower_bound, upper_bound] per input value
  double upper_bound = 0.2;   // (Quantus' uniform noise: lower_bound 0.02, upper_bound 0.2)
  double eps_min = 1e-6;      // replaces exact zeros of e_x, x and the denominator norm
  bool normalise = false;     // divide each explanation by its root mean square first
  bool abs = false;           // then take absolute values
  PredictionChange prediction_change = PredictionChange::nan;  // Quantus: return_nan_when_prediction_changes=True
  uint64_t seed = 0;
  Progress progress = {};  // (perturbed batches explained, samples)
};

template <class Visit>
void for_each_option(StabilityOptions& o, Visit&& visit) {
  visit("samples", o.samples), visit("lower_bound", o.lower_bound), visit("upper_bound", o.upper_bound);
  visit("eps_min", o.eps_min), visit("normalise", o.normalise), visit("abs", o.abs);
  visit("prediction_change", o.prediction_change), visit("seed", o.seed), visit("progress", o.progress);
}

struct SensitivityOptions {
  int64_t samples = 10;    // perturbations per input
  double radius = 0.02;    // d ~ U[-radius, radius] per input value
  uint64_t seed = 0;
  Progress progress = {};  // (perturbed batches explained, samples)
};

template <class Visit>
void for_each_option(SensitivityOptions& o, Visit&& visit) {
  visit("samples", o.samples), visit("radius", o.radius), visit("seed", o.seed), visit("progress", o.progress);
}

namespace detail {
inline void check_robustness_samples(int64_t samples, std::string_view metric) {
  if (samples < 1 || samples > max_option_count)
    fail(metric, " samples must be in [1, ", max_option_count, "], got ", samples);
}

// The shared loop of the robustness metrics: per sample, perturbs every item (noise(random,
// value) draws the perturbed value of one input value), explains the batch, preprocesses each
// item's explanation (prepare(span)) and keeps, per item, the largest
// score(x_i, x'_i, e_i, e'_i) over the samples that count under `change`.
template <ForwardModel M, class F, class Noise, class Prepare, class Score>
std::vector<double> max_over_perturbations(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, F& method,
                                           std::string_view metric, int64_t samples, uint64_t seed,
                                           PredictionChange change, const Progress& progress, Noise&& noise,
                                           Prepare&& prepare, Score&& score) {
  using B = BackendOf<M>;
  using Tensor = TensorOf<M>;
  const int64_t n = B::rows(inputs);
  const auto resolved = resolve_target(model, inputs, target);
  if (resolved.is_custom()) fail(metric, " needs a class target (one class per input)");
  const TargetOf<M> classes(resolved.classes);
  const auto explain = [&](const Tensor& x) {
    auto values = B::to_vector(Tensor(method(model, x, classes)));
    if (values.empty() || static_cast<int64_t>(values.size()) % n != 0)
      fail(metric, ": the method returned ", values.size(), " values for ", n, " inputs");
    for (const double v : values)
      if (!std::isfinite(v)) fail(metric, ": the method returned a non-finite value (", v, ")");
    const std::size_t per_item = values.size() / static_cast<std::size_t>(n);
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i)
      prepare(std::span<double>(values.data() + i * per_item, per_item));
    return values;
  };
  const auto original = explain(inputs);
  const std::size_t per_item = original.size() / static_cast<std::size_t>(n);
  // The model's own top class of each clean input (Quantus compares predictions, not targets).
  std::vector<int64_t> predicted;
  if (change != PredictionChange::keep) predicted = B::argmax_rows(model.forward(inputs));

  const auto x = B::to_vector(inputs);
  const std::size_t values_per_input = x.size() / static_cast<std::size_t>(n);
  std::vector<double> noisy(x.size());
  std::vector<double> worst(static_cast<std::size_t>(n), -std::numeric_limits<double>::infinity());
  std::vector<bool> changed_once(worst.size(), false);
  for (int64_t k = 0; k < samples; ++k) {  // one batch of N per sample: the method batches itself
    for (int64_t i = 0; i < n; ++i) {
      Random random(mix_seed(seed, static_cast<uint64_t>(i), static_cast<uint64_t>(k)));
      for (std::size_t v = i * values_per_input; v < (i + 1) * values_per_input; ++v) noisy[v] = noise(random, x[v]);
    }
    const Tensor perturbed_inputs = B::from_values(noisy, B::shape(inputs), inputs);
    const auto perturbed = explain(perturbed_inputs);
    if (perturbed.size() != original.size())
      fail(metric, ": the method returned ", perturbed.size(), " values for perturbed inputs, ", original.size(),
           " for the inputs");
    std::vector<int64_t> now;
    if (change != PredictionChange::keep) now = B::argmax_rows(model.forward(perturbed_inputs));
    for (std::size_t i = 0; i < worst.size(); ++i) {
      if (change != PredictionChange::keep && now[i] != predicted[i]) {
        changed_once[i] = true;
        continue;
      }
      const double s = score(std::span<const double>(x.data() + i * values_per_input, values_per_input),
                             std::span<const double>(noisy.data() + i * values_per_input, values_per_input),
                             std::span<const double>(original.data() + i * per_item, per_item),
                             std::span<const double>(perturbed.data() + i * per_item, per_item));
      worst[i] = std::max(worst[i], s);
    }
    if (progress) progress(k + 1, samples);
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t i = 0; i < worst.size(); ++i) {
    if (change == PredictionChange::nan && changed_once[i]) worst[i] = nan;
    if (worst[i] == -std::numeric_limits<double>::infinity()) worst[i] = nan;  // skip: nothing counted
  }
  return worst;
}
}  // namespace detail

// Sensitivity-max of a method's explanation for each input.
template <ForwardModel M, MethodOf<M> F>
std::vector<double> sensitivity_max(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, F&& method,
                                    const SensitivityOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  detail::check_robustness_samples(options.samples, "sensitivity_max");
  if (!(options.radius >= 0) || !std::isfinite(options.radius))
    detail::fail("sensitivity_max radius must be finite and >= 0, got ", options.radius);
  const double radius = options.radius;
  return detail::max_over_perturbations(
      model, inputs, target, method, "sensitivity_max", options.samples, options.seed, PredictionChange::keep,
      options.progress, [=](detail::Random& random, double v) { return v + (2 * random.uniform() - 1) * radius; },
      [](std::span<double>) {},
      [](std::span<const double>, std::span<const double>, std::span<const double> e, std::span<const double> e2) {
        double norm = 0, change = 0;
        for (std::size_t v = 0; v < e.size(); ++v) {
          norm += e[v] * e[v];
          change += (e2[v] - e[v]) * (e2[v] - e[v]);
        }
        return std::sqrt(change) / (norm == 0 ? 1.0 : std::sqrt(norm));
      });
}

// Local Lipschitz estimate of a method's explanation for each input (lower is more robust).
template <ForwardModel M, MethodOf<M> F>
std::vector<double> local_lipschitz_estimate(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, F&& method,
                                             const LipschitzOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  detail::check_robustness_samples(options.samples, "local_lipschitz_estimate");
  if (!std::isfinite(options.mean))
    detail::fail("local_lipschitz_estimate noise mean must be finite, got ", options.mean);
  if (!(options.stdev >= 0) || !std::isfinite(options.stdev))
    detail::fail("local_lipschitz_estimate noise stdev must be finite and >= 0, got ", options.stdev);
  return detail::max_over_perturbations(
      model, inputs, target, method, "local_lipschitz_estimate", options.samples, options.seed,
      options.prediction_change, options.progress,
      [&](detail::Random& random, double v) { return v + random.normal(options.mean, options.stdev); },
      [&](std::span<double> a) {
        if (options.normalise) detail::normalise_by_max(a);
        if (options.abs)
          for (auto& v : a) v = std::abs(v);
      },
      [](std::span<const double> x, std::span<const double> x2, std::span<const double> e, std::span<const double> e2) {
        double step = 0, change = 0;
        for (std::size_t v = 0; v < x.size(); ++v) step += (x[v] - x2[v]) * (x[v] - x2[v]);
        for (std::size_t v = 0; v < e.size(); ++v) change += (e[v] - e2[v]) * (e[v] - e2[v]);
        return std::sqrt(change) / (std::sqrt(step) + 1e-10);  // Quantus' lipschitz_constant guard
      });
}

// Relative input stability of a method's explanation for each input (lower is more stable).
template <ForwardModel M, MethodOf<M> F>
std::vector<double> relative_input_stability(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, F&& method,
                                             const StabilityOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  detail::check_robustness_samples(options.samples, "relative_input_stability");
  if (!std::isfinite(options.lower_bound) || !std::isfinite(options.upper_bound) ||
      !(options.lower_bound <= options.upper_bound))
    detail::fail("relative_input_stability noise bounds must be finite with lower_bound <= upper_bound, got [",
                 options.lower_bound, ", ", options.upper_bound, "]");
  if (!(options.eps_min > 0) || !std::isfinite(options.eps_min))
    detail::fail("relative_input_stability eps_min must be finite and > 0, got ", options.eps_min);
  const double eps = options.eps_min;
  const double low = options.lower_bound, width = options.upper_bound - options.lower_bound;
  return detail::max_over_perturbations(
      model, inputs, target, method, "relative_input_stability", options.samples, options.seed,
      options.prediction_change, options.progress,
      [=](detail::Random& random, double v) { return v + (low + width * random.uniform()); },
      [&](std::span<double> a) {
        if (options.normalise) detail::normalise_by_second_moment(a);
        if (options.abs)
          for (auto& v : a) v = std::abs(v);
      },
      [eps](std::span<const double> x, std::span<const double> x2, std::span<const double> e,
            std::span<const double> e2) {
        // Elementwise relative changes; an exact 0 in e_x or x is divided as eps (Quantus).
        double numerator = 0, denominator = 0;
        for (std::size_t v = 0; v < e.size(); ++v) {
          const double r = (e[v] - e2[v]) / (e[v] == 0 ? eps : e[v]);
          numerator += r * r;
        }
        for (std::size_t v = 0; v < x.size(); ++v) {
          const double r = (x[v] - x2[v]) / (x[v] == 0 ? eps : x[v]);
          denominator += r * r;
        }
        denominator = std::sqrt(denominator);
        if (denominator == 0) denominator = eps;
        return std::sqrt(numerator) / denominator;
      });
}

}  // namespace salient
