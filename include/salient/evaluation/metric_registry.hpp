#pragma once
// The evaluation metrics by name: the one table that salient-evaluate lists, validates and
// runs and that the Python module exposes (`salient.evaluate`), as the method registry is for
// the methods. Each entry scores one input's map for its class: a name, a category
// (faithfulness, robustness, randomisation, complexity, localisation), a direction, whether it
// needs an object mask or the method itself (to explain perturbed inputs or a randomised
// model again), its reference, and a named-options struct (core/options.hpp) whose fields are
// its option names and defaults.
//
// `metric_entries<TorchModel>()` is a template only so that a program of several files can
// compile it once (SALIENT_EXTERN_TORCH_REGISTRY, as the methods: cmake/torch_registry.cpp).
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/attribution/torch_registry.hpp"
#include "salient/core/options.hpp"
#include "salient/evaluation/complexity.hpp"
#include "salient/evaluation/curves.hpp"
#include "salient/evaluation/faithfulness.hpp"
#include "salient/evaluation/localisation.hpp"
#include "salient/evaluation/randomisation_metrics.hpp"
#include "salient/evaluation/removal.hpp"
#include "salient/evaluation/robustness.hpp"

namespace salient {

// What a metric sees of one input and one method.
struct MetricInput {
  TorchModel& model;
  const torch::Tensor& input;              // [1,C,H,W]
  int64_t target;                          // the class explained
  const torch::Tensor& map;                // one value per pixel [1,1,H,W]: the method's channels summed
  const Method<TorchModel>* method;        // the method (metrics with needs_method); may be null otherwise
  const std::optional<torch::Tensor>& mask;  // [H,W], 1 = object (metrics with needs_mask)
};

// A metric's options by name, as text ("k" = "500"), as --metric-option and Python give them.
using MetricOptions = std::map<std::string, std::string>;
// A metric with its options applied: the score of one input's map.
using BoundMetric = std::function<double(const MetricInput&)>;

struct MetricEntry {
  std::string name, category, definition;
  bool higher_is_better = true;
  bool needs_mask = false;
  bool needs_method = false;
  std::vector<std::string> option_names;
  // Every option's value with `options` applied, as JSON; an unknown name or bad value is an error.
  std::function<nlohmann::json(const MetricOptions& options)> parameters;
  std::function<BoundMetric(const MetricOptions& options)> bind;
};

namespace detail {

template <NamedOptions O>
O metric_options(const std::string& metric, O options, const MetricOptions& given) {
  for (const auto& [name, value] : given)
    if (!set_option(options, name, value)) {
      std::string names;
      for (const auto& n : option_names(options)) names += (names.empty() ? "" : ", ") + n;
      fail("metric '", metric, "' has no option '", name, "' (its options: ", names.empty() ? "none" : names, ")");
    }
  return options;
}

// An entry from its facts, its options struct (with this registry's defaults) and its score.
template <NamedOptions O, class Score>
MetricEntry metric(std::string name, std::string category, bool higher_is_better, std::string definition, O defaults,
                   Score score) {
  constexpr bool needs_mask = std::invocable<Score, const MetricInput&, const O&, const torch::Tensor&>;
  constexpr bool needs_method = std::invocable<Score, const MetricInput&, const O&, const Method<TorchModel>&>;
  MetricEntry entry{.name = name, .category = std::move(category), .definition = std::move(definition),
                    .higher_is_better = higher_is_better, .needs_mask = needs_mask, .needs_method = needs_method,
                    .option_names = option_names(defaults)};
  entry.parameters = [name, defaults](const MetricOptions& given) { return options_json(metric_options(name, defaults, given)); };
  entry.bind = [name, defaults, score](const MetricOptions& given) -> BoundMetric {
    return [name, score, options = metric_options(name, defaults, given)](const MetricInput& in) -> double {
      if constexpr (needs_mask) {
        if (!in.mask) fail("metric '", name, "' needs an object mask");
        return score(in, options, *in.mask);
      } else if constexpr (needs_method) {
        if (!in.method) fail("metric '", name, "' needs the method that made the map (it explains changed inputs or a randomised model again)");
        return score(in, options, *in.method);
      } else {
        return score(in, options);
      }
    };
  };
  return entry;
}

struct NoMetricOptions {};
template <class Visit>
void for_each_option(NoMetricOptions&, Visit&&) {}

struct TopKMetricOptions {
  int64_t k = 1000;
  bool concept_influence = false;
};
template <class Visit>
void for_each_option(TopKMetricOptions& o, Visit&& visit) {
  visit("k", o.k), visit("concept_influence", o.concept_influence);
}

struct WeightedMetricOptions {
  bool weighted = false;
};
template <class Visit>
void for_each_option(WeightedMetricOptions& o, Visit&& visit) {
  visit("weighted", o.weighted);
}

// The mean of a curve's scores: Quantus' AUC (numpy.trapz, dx = 1) over the steps, per step.
inline double curve_mean(const Curve& curve) {
  return curve.scores.size() < 2 ? curve.scores.at(0) : quantus_auc(curve) / static_cast<double>(curve.scores.size() - 1);
}

// The pixels of one step when `features_in_step` is 0 ("auto"): a `steps`-th of them.
inline int64_t auto_step(const MetricInput& in, int64_t given, int64_t steps) {
  const int64_t pixels = in.input.size(2) * in.input.size(3);
  return given > 0 ? given : (pixels + steps - 1) / steps;
}

}  // namespace detail

// TorchModel's metrics, in the order salient-evaluate lists them. Defaults that differ from the
// options structs' (fewer samples, "auto" steps) are the registry's: the entry says so.
template <class M>
  requires std::same_as<M, TorchModel>
const std::vector<MetricEntry>& metric_entries() {
  using detail::metric;
  using In = MetricInput;
  using Fn = Method<TorchModel>;
  const auto t = [](const In& in) { return Target(in.target); };
  static const std::vector<MetricEntry> all{
      // Faithfulness.
      metric("faithfulness_correlation", "faithfulness", true,
             "Pearson correlation of attribution sums with the score drop over random pixel subsets (Bhatt et al. 2020)",
             FaithfulnessCorrelationOptions<M>{},
             [t](const In& in, const auto& o) { return faithfulness_correlation(in.model, in.input, t(in), in.map, o).at(0); }),
      metric("pixel_flipping", "faithfulness", false,
             "mean softmax score while pixels are removed most relevant first (Bach et al. 2015); features_in_step 0: 1/100 of the pixels",
             PixelFlippingOptions<M>{.features_in_step = 0},
             [t](const In& in, auto o) {
               o.features_in_step = detail::auto_step(in, o.features_in_step, 100);
               return detail::curve_mean(pixel_flipping(in.model, in.input, t(in), in.map, o).at(0));
             }),
      metric("region_perturbation", "faithfulness", true,
             "mean score drop while 8x8 windows are removed most relevant first (Samek et al. 2016)",
             RegionPerturbationOptions<M>{},
             [t](const In& in, const auto& o) { return detail::curve_mean(region_perturbation(in.model, in.input, t(in), in.map, o).at(0)); }),
      metric("selectivity", "faithfulness", false,
             "mean score while every window is removed most relevant first (Montavon et al. 2018); patch 16 here",
             SelectivityOptions<M>{.patch_size = 16},
             [t](const In& in, const auto& o) { return detail::curve_mean(selectivity(in.model, in.input, t(in), in.map, o).at(0)); }),
      metric("monotonicity_correlation", "faithfulness", true,
             "Spearman correlation of attribution with the score's variance under random fills (Nguyen & Martinez 2020); features_in_step 0: 1/20 of the pixels",
             MonotonicityOptions<M>{.features_in_step = 0, .samples = 10},
             [t](const In& in, auto o) {
               o.features_in_step = detail::auto_step(in, o.features_in_step, 20);
               return monotonicity_correlation(in.model, in.input, t(in), in.map, o).at(0);
             }),
      metric("road", "faithfulness", false,
             "share of removal levels 1..99% (MoRF, noisy linear imputation) at which the top-1 class survives (Rong et al. 2022)",
             RoadOptions<M>{},
             [t](const In& in, const auto& o) {
               const auto curve = road(in.model, in.input, t(in), in.map, o).at(0);
               double sum = 0;
               for (double s : curve.scores) sum += s;
               return sum / static_cast<double>(curve.scores.size());
             }),
      metric("deletion", "faithfulness", false, "area under the deletion curve (Petsiuk et al. 2018)", CurveOptions<M>{},
             [t](const In& in, const auto& o) { return deletion_curves(in.model, in.input, t(in), in.map, o).at(0).area; }),
      metric("insertion", "faithfulness", true, "area under the insertion curve (Petsiuk et al. 2018)", CurveOptions<M>{},
             [t](const In& in, const auto& o) { return insertion_curves(in.model, in.input, t(in), in.map, o).at(0).area; }),
      // Robustness.
      metric("max_sensitivity", "robustness", false,
             "largest relative change of the map under U(-0.02, 0.02) noise (Yeh et al. 2019); 5 samples here",
             SensitivityOptions{.samples = 5},
             [t](const In& in, const auto& o, const Fn& f) { return sensitivity_max(in.model, in.input, t(in), f, o).at(0); }),
      metric("local_lipschitz", "robustness", false,
             "largest ||e(x) - e(x')|| / ||x - x'|| under N(0, 0.1^2) noise (Alvarez-Melis & Jaakkola 2018); 5 samples here",
             LipschitzOptions{.samples = 5},
             [t](const In& in, const auto& o, const Fn& f) { return local_lipschitz_estimate(in.model, in.input, t(in), f, o).at(0); }),
      metric("relative_input_stability", "robustness", false,
             "largest relative map change over relative input change (Agarwal et al. 2022); 5 samples here",
             StabilityOptions{.samples = 5},
             [t](const In& in, const auto& o, const Fn& f) { return relative_input_stability(in.model, in.input, t(in), f, o).at(0); }),
      // Randomisation.
      metric("random_logit", "randomisation", false, "SSIM of the maps for the target and a random other class (Sixt et al. 2020)",
             RandomLogitOptions{},
             [t](const In& in, const auto& o, const Fn& f) { return random_logit_test(in.model, in.input, t(in), f, o).scores.at(0); }),
      metric("mprt", "randomisation", false,
             "Spearman correlation of |maps| before and after randomising every layer (Adebayo et al. 2018; Quantus' MPRT, last layer only)",
             SmoothMprtOptions{.order = LayerOrder::top_down, .samples = 1, .skip_layers = true},
             [t](const In& in, const auto& o, const Fn& f) { return smooth_mprt(in.model, in.input, t(in), f, o).last().at(0); }),
      metric("smooth_mprt", "randomisation", false,
             "Spearman correlation of denoised |maps| before and after randomising every layer (Hedstroem et al. 2024); 10 samples here, last layer only",
             SmoothMprtOptions{.samples = 10, .skip_layers = true},
             [t](const In& in, const auto& o, const Fn& f) { return smooth_mprt(in.model, in.input, t(in), f, o).last().at(0); }),
      metric("efficient_mprt", "randomisation", true,
             "relative rise of the map's histogram entropy when every layer is randomised (Hedstroem et al. 2024)",
             EfficientMprtOptions{},
             [t](const In& in, const auto& o, const Fn& f) { return efficient_mprt(in.model, in.input, t(in), f, o).scores.at(0); }),
      // Complexity.
      metric("sparseness", "complexity", true, "Gini index of |map| (Chalasani et al. 2020)", ComplexityOptions{},
             [](const In& in, const auto& o) { return sparseness(in.map, o).at(0); }),
      metric("complexity", "complexity", false, "entropy of the |map| distribution (Bhatt et al. 2020)", ComplexityOptions{},
             [](const In& in, const auto& o) { return complexity(in.map, o).at(0); }),
      metric("effective_complexity", "complexity", false, "pixels with |map| above eps (Nguyen & Martinez 2020)",
             ComplexityOptions{}, [](const In& in, const auto& o) { return effective_complexity(in.map, o).at(0); }),
      // Localisation (with an object mask).
      metric("pointing_game", "localisation", true, "the map's maximum lies on the object (Zhang et al. 2018)",
             detail::NoMetricOptions{},
             [](const In& in, const auto&, const torch::Tensor& mask) { return pointing_game(in.map, mask) ? 1.0 : 0.0; }),
      metric("energy_pointing_game", "localisation", true, "share of positive attribution on the object (Wang et al. 2020)",
             detail::NoMetricOptions{},
             [](const In& in, const auto&, const torch::Tensor& mask) { return energy_pointing_game(in.map, mask); }),
      metric("relevance_rank_accuracy", "localisation", true, "share of the |object| highest pixels on the object (Arras et al. 2022)",
             detail::NoMetricOptions{},
             [](const In& in, const auto&, const torch::Tensor& mask) { return relevance_rank_accuracy(in.map, mask); }),
      metric("top_k_intersection", "localisation", true, "share of the k highest pixels on the object (Theiner et al. 2021)",
             detail::TopKMetricOptions{},
             [](const In& in, const auto& o, const torch::Tensor& mask) { return top_k_in_mask(in.map, mask, o.k, o.concept_influence); }),
      metric("attribution_localisation", "localisation", true, "share of |attribution| on the object (Kohlbrenner et al. 2020)",
             detail::WeightedMetricOptions{},
             [](const In& in, const auto& o, const torch::Tensor& mask) { return attribution_localisation(in.map, mask, o.weighted); }),
      metric("auc", "localisation", true, "ROC AUC of the map as a detector of the object's pixels (Fawcett 2006)",
             detail::NoMetricOptions{},
             [](const In& in, const auto&, const torch::Tensor& mask) { return mask_auc(in.map, mask); }),
  };
  return all;
}

#ifdef SALIENT_EXTERN_TORCH_REGISTRY
extern template const std::vector<MetricEntry>& metric_entries<TorchModel>();
#endif

// The shorthands are templates too, so that including this header compiles no metric until one
// is used (salient.hpp includes it).
template <class M = TorchModel>
const std::vector<MetricEntry>& metrics() {
  return metric_entries<M>();
}

// "a, b, c": every metric's name.
template <class M = TorchModel>
std::string metric_names() {
  std::string out;
  for (const auto& m : metrics<M>()) out += (out.empty() ? "" : ", ") + m.name;
  return out;
}

template <class M = TorchModel>
const MetricEntry& find_metric(std::string_view name) {
  for (const auto& m : metrics<M>())
    if (m.name == name) return m;
  detail::fail("unknown metric '", name, "' (expected one of: ", metric_names<M>(), ")");
}

// The in-place change count of the model's parameters: randomising and restoring them bumps it
// (detach() shares a tensor's version counter).
inline int64_t parameter_version(const TorchModel& model) {
  int64_t version = 0;
  for (const auto& [name, tensor] : model.named_parameters()) version += tensor._version();
  return version;
}

// `method`, answering a call for `input`'s own map with `map`, already made, while the model's
// parameters are those it was made with (`*version`, which the caller keeps current: every
// metric restores the parameters bit for bit). The randomisation metrics explain the original
// model again inside (one to four calls per input), which for RISE or Sobol would be most of a
// run; a randomised model is explained afresh.
inline Method<TorchModel> reusing_map(Method<TorchModel> method, torch::Tensor input, int64_t target, torch::Tensor map,
                                      const int64_t* version) {
  return [method = std::move(method), input = std::move(input), target, map = std::move(map), version](
             TorchModel& model, const torch::Tensor& x, const Target& t) {
    if (x.is_same(input) && !t.is_custom() && parameter_version(model) == *version &&
        t.classes(x.size(0), [] { return std::vector<int64_t>{-1}; }) == std::vector<int64_t>{target})
      return map.clone();
    return method(model, x, t);
  };
}

}  // namespace salient
