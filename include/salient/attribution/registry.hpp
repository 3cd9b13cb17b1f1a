#pragma once
// The attribution methods by name, for any model type: the one table that the command-line
// tools list (--help), validate and run, that salient-sanity tests and that bindings expose.
// LibTorch-free: `methods<M>()` holds the methods model type M has the capabilities for (a
// batch -> scores function gets the forward-only family, a Model the gradient family, a
// LayerModel the CAMs, a RuleModel guided backprop). attribution/torch_registry.hpp adds
// LibTorch's customisation points and the TorchModel shorthands (`methods()`, ...).
//
// Each entry states what a caller needs to know about a method's map (signed or not,
// multiplied by the input, whether a convergence delta exists, the model capability it needs,
// its shape) and runs it with its own options struct. The options' defaults are the struct's:
// `parameters` reads them back (core/options.hpp), so a recorded run never repeats a default.
// Settings shared by every method (seed, batch size, the masker, segmentation and baseline by
// name, the callbacks) and named options ("steps" = "32") are applied to whichever options a
// method has; a method skips names it does not have.
//
// Names in the settings become objects through three customisation points, found by ADL on
// the model type, each with a backend-neutral version here that a backend may overload:
// `settings_masker(std::type_identity<M>, settings)` (zero/mean, black, grey, imputation, layer),
// `settings_segments(model, input, settings)` (superpixels by spec) and
// `settings_baseline(model, inputs, settings)` (zero, black, grey).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "salient/attribution/blur_ig.hpp"
#include "salient/attribution/cam.hpp"
#include "salient/attribution/gradient.hpp"
#include "salient/attribution/guided_ig.hpp"
#include "salient/attribution/guided_options.hpp"
#include "salient/attribution/integrated_gradients.hpp"
#include "salient/attribution/noise_tunnel.hpp"
#include "salient/attribution/pami.hpp"
#include "salient/attribution/perturbation.hpp"
#include "salient/attribution/sobol.hpp"
#include "salient/attribution/xrai.hpp"
#include "salient/core/layers.hpp"
#include "salient/core/options.hpp"
#include "salient/io/image.hpp"
#include "salient/masking/imputation.hpp"
#include "salient/masking/masker.hpp"
#include "salient/segmentation/superpixels.hpp"

namespace salient {

// What a method needs of the model.
enum class Capability {
  forward,   // outputs only (ForwardModel)
  gradient,  // the input gradient (Model)
  layers,    // activations and gradients at named layers (LayerModel)
  rules,     // rule-based backward passes (RuleModel: the TorchScript executor's rule sets)
};
inline std::string_view to_string(Capability capability) {
  switch (capability) {
    case Capability::forward: return "forward";
    case Capability::gradient: return "gradient";
    case Capability::layers: return "layers";
    case Capability::rules: return "rules";
  }
  return "?";
}

// Whether models of type M have `capability`.
template <class M>
constexpr bool has_capability(Capability capability) {
  switch (capability) {
    case Capability::forward: return ForwardModel<M>;
    case Capability::gradient: return Model<M>;
    case Capability::layers: return LayerModel<M>;
    case Capability::rules: return RuleModel<M>;
  }
  return false;
}

// The shape of a method's map for inputs [N,C,H,W].
enum class MapShape {
  input,        // [N,C,H,W]: per input value
  one_channel,  // [N,1,H,W]: per pixel (CAMs, perturbation methods)
};
inline std::string_view to_string(MapShape shape) { return shape == MapShape::input ? "input" : "one_channel"; }

// What a caller decides for all methods at once (a tool's common flags).
struct MethodSettings {
  std::map<std::string, std::string> options;  // by field name: {"steps", "32"}; methods skip names they lack
  int64_t batch_size = 0;                       // > 0: every method's batch_size
  uint64_t seed = 0;                            // every method's seed, and the noise masker's and baseline's
  std::string masker;                           // perturbation methods: a masker name; "": the method's default
  std::string segments = "slic:50";             // region methods: a segment() spec (LibTorch: or "model:FILE.pt")
  std::string baseline = "zero";                // integrated gradients, DeepLIFT: a baseline name; the SHAP
                                                // methods: a comma-separated set ("zero,black,grey")
  Normalization normalization = Normalization::imagenet();  // of the model inputs
  Progress progress = {};
  std::function<void(const std::string& layer)> on_layer = {};  // layer methods: the layer used
  std::function<void(int64_t count)> on_segments = {};          // region methods: the segment count
};

// What is known of a method whatever the model: one table, `method_facts()`.
struct MethodFacts {
  std::string name;                  // canonical: file names, JSON
  std::vector<std::string> aliases;  // also accepted by find_method
  std::string summary;               // one line: what it computes; the reference
  bool is_signed = true;             // both signs carry meaning (a diverging colour map)
  bool multiplies_input = false;     // the map is multiplied by the input (x * ...)
  bool has_delta = false;            // a convergence delta exists (integrated gradients)
  Capability needs = Capability::gradient;
  MapShape shape = MapShape::input;
};

// Every method, in the order tools list them.
inline const std::vector<MethodFacts>& method_facts() {
  using C = Capability;
  const auto one = MapShape::one_channel;
  static const std::vector<MethodFacts> all{
      {.name = "saliency", .summary = "signed input gradient dF/dx (Simonyan et al. 2014)"},
      {.name = "saliency_abs", .summary = "|dF/dx|, Captum's Saliency (Simonyan et al. 2014)", .is_signed = false},
      {.name = "input_x_gradient", .aliases = {"ixg"}, .summary = "x * dF/dx (Shrikumar et al. 2016)", .multiplies_input = true},
      {.name = "integrated_gradients", .aliases = {"ig"},
       .summary = "path integral of the gradient from a baseline (Sundararajan et al. 2017)", .multiplies_input = true,
       .has_delta = true},
      {.name = "guided_ig", .aliases = {"guided_integrated_gradients"},
       .summary = "IG on an adaptive path that moves low-gradient features first (Kapishnikov et al. 2021; PAIR's)",
       .multiplies_input = true, .has_delta = true},
      {.name = "blur_ig", .aliases = {"blur_integrated_gradients"},
       .summary = "IG along a path of decreasing Gaussian blur (Xu et al. 2020; PAIR's)"},
      {.name = "xrai", .summary = "IG gains of Felzenszwalb regions, greedily ranked (Kapishnikov et al. 2019; PAIR's)",
       .shape = one},
      {.name = "smoothgrad", .summary = "mean gradient of noisy copies (Smilkov et al. 2017)"},
      {.name = "smoothgrad_sq", .summary = "mean squared gradient of noisy copies (Hooker et al. 2019)", .is_signed = false},
      {.name = "vargrad", .summary = "variance of the gradient over noisy copies (Adebayo et al. 2018)", .is_signed = false},
      {.name = "gradcam", .aliases = {"grad_cam"}, .summary = "Grad-CAM (Selvaraju et al. 2017)", .is_signed = false,
       .needs = C::layers, .shape = one},
      {.name = "gradcampp", .aliases = {"gradcam++", "grad_cam_plus_plus"}, .summary = "Grad-CAM++ (Chattopadhay et al. 2018)",
       .is_signed = false, .needs = C::layers, .shape = one},
      {.name = "xgradcam", .aliases = {"xgrad_cam"}, .summary = "XGrad-CAM (Fu et al. 2020)", .is_signed = false,
       .needs = C::layers, .shape = one},
      {.name = "layercam", .aliases = {"layer_cam"}, .summary = "Layer-CAM (Jiang et al. 2021)", .is_signed = false,
       .needs = C::layers, .shape = one},
      {.name = "scorecam", .aliases = {"score_cam"}, .summary = "Score-CAM: channels weighted by masked-input scores (Wang et al. 2020)",
       .is_signed = false, .needs = C::layers, .shape = one},
      {.name = "eigencam", .aliases = {"eigen_cam"},
       .summary = "Eigen-CAM: first principal component of a layer (Muhammad & Yeasin 2020)", .is_signed = false,
       .needs = C::layers, .shape = one},
      {.name = "guided_backprop", .aliases = {"gbp"}, .summary = "guided backpropagation (Springenberg et al. 2015)",
       .needs = C::rules},
      {.name = "deconvolution", .aliases = {"deconvnet"}, .summary = "deconvnet (Zeiler & Fergus 2014)", .needs = C::rules},
      {.name = "guided_gradcam", .aliases = {"guided_grad_cam"}, .summary = "guided backprop times Grad-CAM (Selvaraju et al. 2017)",
       .needs = C::rules},
      {.name = "lrp", .summary = "layer-wise relevance propagation with a composite (Bach et al. 2015; zennit's)",
       .needs = C::rules},  // the flat and z-box first-layer rules give relevance to zero inputs too
      {.name = "deeplift", .summary = "DeepLIFT rescale rule against a baseline (Shrikumar et al. 2017)",
       .multiplies_input = true, .has_delta = true, .needs = C::rules},
      {.name = "deepliftshap", .aliases = {"deeplift_shap"},
       .summary = "DeepLIFT averaged over a set of baselines (Lundberg & Lee 2017)", .multiplies_input = true,
       .needs = C::rules},
      {.name = "gradientshap", .aliases = {"gradient_shap"},
       .summary = "expected gradient x (x - b) over baselines and path points (Lundberg & Lee 2017)",
       .multiplies_input = true, .needs = C::rules},
      {.name = "occlusion", .summary = "score drop under a sliding window (Zeiler & Fergus 2014)", .needs = C::forward,
       .shape = one},
      {.name = "ablation", .aliases = {"feature_ablation"}, .summary = "score drop per removed segment (Captum's FeatureAblation)",
       .needs = C::forward, .shape = one},
      {.name = "rise", .summary = "randomised input sampling (Petsiuk et al. 2018)", .is_signed = false, .needs = C::forward,
       .shape = one},
      {.name = "sobol", .aliases = {"sobol_attribution"},
       .summary = "total-order Sobol' indices of grid cells under QMC masks (Fel et al. 2021; Xplique's)", .is_signed = false,
       .needs = C::forward, .shape = one},
      {.name = "lime", .summary = "a weighted linear surrogate over segments (Ribeiro et al. 2016)", .needs = C::forward,
       .shape = one},
      {.name = "kernelshap", .aliases = {"kernel_shap"}, .summary = "Shapley values of segments (Lundberg & Lee 2017)",
       .needs = C::forward, .shape = one},
      {.name = "pami", .summary = "partition input and aggregate outputs of kept regions (Shi et al. 2023)", .is_signed = false,
       .needs = C::forward, .shape = one},
  };
  return all;
}

// A method of models of type M: its facts, option names, parameters and how to run it.
template <ForwardModel M>
struct BasicMethodEntry : MethodFacts {
  using Tensor = TensorOf<M>;
  std::vector<std::string> option_names;  // the names MethodSettings::options can set
  // The options the method runs with under `settings`, as JSON (with the settings it uses).
  std::function<nlohmann::json(const MethodSettings& settings)> parameters;
  std::function<Tensor(M&, const Tensor&, const TargetOf<M>&, const MethodSettings&)> run;
  // Set when has_delta: sum(map) - (F(x) - F(baseline)) per input, for a map `run` returned.
  std::function<std::vector<double>(M&, const Tensor& inputs, const TargetOf<M>&, const Tensor& attributions,
                                    const MethodSettings&)> delta;

  // The method bound to its settings: the uniform (model, inputs, target) -> map.
  Method<M> bind(MethodSettings settings) const {
    return [run = run, settings = std::move(settings)](M& model, const Tensor& inputs, const TargetOf<M>& target) {
      return run(model, inputs, target, settings);
    };
  }
};

namespace detail {
// "black" or "grey" as a constant fill in model-input units (the colour after the
// normalisation); nothing for other names.
template <TensorBackend B>
std::optional<BasicFillMasker<B>> colour_fill(std::string_view name, const Normalization& normalization) {
  if (name == "black") return BasicFillMasker<B>::constant(normalization.level(0.f, 3), "black");
  if (name == "grey" || name == "gray") return BasicFillMasker<B>::constant(normalization.level(0.5f, 3), "grey");
  return std::nullopt;
}
}  // namespace detail

// --- The customisation points' backend-neutral versions (a backend overloads them for its
// model type; the overload is found by ADL where the registry is instantiated).

// The masker `settings.masker` names: "zero" (or "mean": 0 in model input, the dataset mean
// colour of a normalised model), "black", "grey", or "layer" for a LayerMaskingModel.
template <ForwardModel M>
BasicAnyMasker<M> settings_masker(std::type_identity<M>, const MethodSettings& settings) {
  using Fill = BasicFillMasker<BackendOf<M>>;
  const auto& name = settings.masker;
  if (name == "zero") return Fill::zero();
  if (name == "mean") return Fill("mean", [](const TensorOf<M>& x) { return BackendOf<M>::zeros_like(x); });
  if (auto colour = detail::colour_fill<BackendOf<M>>(name, settings.normalization)) return *colour;
  if (name == "imputation") return BasicImputationMasker<BackendOf<M>>(0.01, settings.seed);
  if constexpr (LayerMaskingModel<M>)
    if (name == "layer") return LayerMasker{};
  detail::fail("unknown masker '", name, "' for this model (expected zero, mean, black, grey, imputation",
               LayerMaskingModel<M> ? " or layer)" : "; layer masking needs a model with the layer-masking capability)");
}

// Superpixels of one input [1,C,H,W] by the spec `settings.segments` ("slic:50", ...): a label
// map [H,W] with the input's element type.
template <ForwardModel M>
TensorOf<M> settings_segments(M&, const TensorOf<M>& input, const MethodSettings& settings) {
  using B = BackendOf<M>;
  const auto shape = B::shape(input);
  if (shape.size() != 4 || shape[0] != 1)
    detail::fail("segments are made for one input [1,C,H,W], got ", detail::shape_text(shape));
  if (settings.segments.rfind("model:", 0) == 0)
    detail::fail("segments '", settings.segments, "' need a segmentation model, which only LibTorch models load");
  Image image(shape[1], shape[2], shape[3]);
  const auto values = B::to_vector(input);
  std::transform(values.begin(), values.end(), image.data.begin(), [](double v) { return static_cast<float>(v); });
  const auto labels = segment(settings.segments, input_photo(image, settings.normalization));
  return B::from_values(std::vector<double>(labels.labels.begin(), labels.labels.end()), {shape[2], shape[3]}, input);
}

// The baseline `settings.baseline` names, one item shaped as each of `inputs` ([1, C, H, W],
// shared by all of them): "zero", "black" or "grey" (those colours after the settings'
// normalisation).
template <ForwardModel M>
TensorOf<M> settings_baseline(M&, const TensorOf<M>& inputs, const MethodSettings& settings) {
  const auto& name = settings.baseline;
  const auto first = BackendOf<M>::slice_rows(inputs, 0, 1);
  if (name == "zero") return BackendOf<M>::zeros_like(first);
  if (auto colour = detail::colour_fill<BackendOf<M>>(name, settings.normalization)) return colour->fill(first);
  detail::fail("unknown baseline '", name, "' for this model (expected zero, black or grey)");
}

// The set of baselines `settings.baseline` names, comma-separated ("zero,black,grey"), for
// inputs shaped as `inputs`: [K,C,H,W], one per name.
template <ForwardModel M>
TensorOf<M> settings_baselines(M& model, const TensorOf<M>& inputs, const MethodSettings& settings) {
  using B = BackendOf<M>;
  const auto first = B::slice_rows(inputs, 0, 1);
  std::vector<TensorOf<M>> baselines;
  std::string_view names = settings.baseline;
  while (true) {
    const auto comma = names.find(',');
    MethodSettings one = settings;
    one.baseline = std::string(names.substr(0, comma));
    baselines.push_back(settings_baseline(model, first, one));
    if (comma == std::string_view::npos) break;
    names.remove_prefix(comma + 1);
  }
  return B::concat_rows(baselines);
}

namespace detail {

// `options` with the shared settings and then the named options applied; a perturbation
// method's masker is the named one, else the options' own default.
template <ForwardModel M, NamedOptions O>
O configured(O options, const MethodSettings& settings) {
  for_each_option(options, [&](std::string_view name, auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::same_as<T, Progress>) value = settings.progress;
    else if constexpr (std::same_as<T, std::function<void(const std::string&)>>) value = settings.on_layer;
    else if constexpr (std::same_as<T, uint64_t>) { if (name == "seed") value = settings.seed; }
    else if constexpr (std::same_as<T, int64_t>) { if (name == "batch_size" && settings.batch_size > 0) value = settings.batch_size; }
  });
  for (const auto& [name, text] : settings.options) set_option(options, name, text);
  if constexpr (requires { options.evaluation.masker; })
    if (!settings.masker.empty()) options.evaluation.masker = settings_masker(std::type_identity<M>{}, settings);
  return options;
}

// The settings a method uses beyond its options struct (they appear in its parameters).
enum class Setting : unsigned { none = 0, segments = 1, baseline = 2 };

inline const MethodFacts& facts_of(std::string_view name) {
  for (const auto& f : method_facts())
    if (f.name == name) return f;
  fail("internal: no facts for method '", name, "'");
}

// An entry from its facts, the options struct with the entry's presets, the settings it
// uses beyond the struct, and `call(model, inputs, target, options, settings)`.
template <ForwardModel M, NamedOptions O, class Call>
BasicMethodEntry<M> entry(std::string_view name, O presets, Setting extra, Call call) {
  BasicMethodEntry<M> e;
  static_cast<MethodFacts&>(e) = facts_of(name);
  e.option_names = option_names(presets);
  e.parameters = [presets, extra](const MethodSettings& s) {
    const auto options = configured<M>(presets, s);
    auto json = options_json(options);
    if constexpr (requires { options.evaluation.masker; }) json["masker"] = options.evaluation.masker.name();
    if (extra == Setting::segments) json["segments"] = s.segments;
    if (extra == Setting::baseline) json["baseline"] = s.baseline;
    return json;
  };
  e.run = [presets, call](M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const MethodSettings& s) {
    auto options = configured<M>(presets, s);
    return call(model, inputs, target, options, s);
  };
  return e;
}

template <ForwardModel M, class O, class Call>
BasicMethodEntry<M> simple_entry(std::string_view name, O presets, Call call) {
  return entry<M>(name, std::move(presets), Setting::none,
                  [call](M& m, const TensorOf<M>& x, const TargetOf<M>& t, const O& o, const MethodSettings&) { return call(m, x, t, o); });
}

// A region method: the options get the segmentation of each input (one input per call).
template <ForwardModel M, class O, class Call>
BasicMethodEntry<M> region_entry(std::string_view name, O presets, Call call) {
  return entry<M>(name, std::move(presets), Setting::segments,
                  [call](M& m, const TensorOf<M>& x, const TargetOf<M>& t, O& o, const MethodSettings& s) {
                    using B = BackendOf<M>;
                    detail::check_inputs<B>(x);
                    std::vector<TensorOf<M>> parts;
                    const auto resolved = resolve_target(m, x, t);
                    for (int64_t i = 0; i < B::rows(x); ++i) {
                      auto item = B::slice_rows(x, i, i + 1);
                      o.segments = settings_segments(m, item, s);
                      if (s.on_segments) {
                        const auto labels = B::labels(*o.segments);
                        s.on_segments(labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end()) + 1);
                      }
                      parts.push_back(call(m, item, item_target<M>(resolved, i), o));
                    }
                    return B::concat_rows(parts);
                  });
}

template <Model M>
BasicMethodEntry<M> noise_entry(std::string_view name, NoiseTunnelType type) {
  return simple_entry<M>(name, NoiseTunnelOptions{.type = type}, [](M& m, const TensorOf<M>& x, const TargetOf<M>& t, const NoiseTunnelOptions& o) {
    auto gradient = [&o](M& model, const TensorOf<M>& in, const TargetOf<M>& target) {
      return saliency(model, in, target, {.abs = false, .batch_size = o.batch_size});
    };
    return noise_tunnel(m, x, t, gradient, o);
  });
}

template <LayerModel M, class Cam>
BasicMethodEntry<M> cam_entry(std::string_view name, Cam cam) {
  return simple_entry<M>(name, CamOptions{}, cam);
}

namespace detail {
// The convergence delta of a method that starts at the baseline the settings name:
// sum(map) - (F(x) - F(baseline)).
template <Model M>
auto baseline_delta() {
  return [](M& m, const TensorOf<M>& x, const TargetOf<M>& t, const TensorOf<M>& attributions, const MethodSettings& s) {
    return convergence_delta(m, attributions, x, t, std::optional<TensorOf<M>>(settings_baseline(m, x, s)));
  };
}
}  // namespace detail

template <ForwardModel M>
std::vector<BasicMethodEntry<M>> make_registry() {
  using T = TensorOf<M>;
  using Target = TargetOf<M>;
  std::vector<BasicMethodEntry<M>> all;
  if constexpr (Model<M>) {
    all.push_back(simple_entry<M>("saliency", SaliencyOptions{.abs = false},
                                  [](M& m, const T& x, const Target& t, const SaliencyOptions& o) { return saliency(m, x, t, o); }));
    all.push_back(simple_entry<M>("saliency_abs", SaliencyOptions{.abs = true},
                                  [](M& m, const T& x, const Target& t, const SaliencyOptions& o) { return saliency(m, x, t, o); }));
    all.push_back(simple_entry<M>("input_x_gradient", InputXGradientOptions{},
                                  [](M& m, const T& x, const Target& t, const InputXGradientOptions& o) { return input_x_gradient(m, x, t, o); }));
    auto ig = entry<M>("integrated_gradients", IntegratedGradientsOptions<T>{}, Setting::baseline,
                       [](M& m, const T& x, const Target& t, IntegratedGradientsOptions<T>& o, const MethodSettings& s) {
                         o.baseline = settings_baseline(m, x, s);
                         return integrated_gradients(m, x, t, o);
                       });
    ig.delta = detail::baseline_delta<M>();
    all.push_back(std::move(ig));
    auto guided = entry<M>("guided_ig", GuidedIgOptions<T>{}, Setting::baseline,
                           [](M& m, const T& x, const Target& t, GuidedIgOptions<T>& o, const MethodSettings& s) {
                             o.baseline = settings_baseline(m, x, s);
                             return guided_integrated_gradients(m, x, t, o);
                           });
    guided.delta = detail::baseline_delta<M>();
    all.push_back(std::move(guided));
    all.push_back(simple_entry<M>("blur_ig", BlurIgOptions{},
                                  [](M& m, const T& x, const Target& t, const BlurIgOptions& o) { return blur_integrated_gradients(m, x, t, o); }));
    all.push_back(simple_entry<M>("xrai", XraiOptions{},
                                  [](M& m, const T& x, const Target& t, const XraiOptions& o) { return xrai(m, x, t, o).attribution; }));
    all.push_back(noise_entry<M>("smoothgrad", NoiseTunnelType::smoothgrad));
    all.push_back(noise_entry<M>("smoothgrad_sq", NoiseTunnelType::smoothgrad_sq));
    all.push_back(noise_entry<M>("vargrad", NoiseTunnelType::vargrad));
  }
  if constexpr (LayerModel<M>) {
    all.push_back(cam_entry<M>("gradcam", [](M& m, const T& x, const Target& t, const CamOptions& o) { return grad_cam(m, x, t, o); }));
    all.push_back(cam_entry<M>("gradcampp", [](M& m, const T& x, const Target& t, const CamOptions& o) { return grad_cam_plus_plus(m, x, t, o); }));
    all.push_back(cam_entry<M>("xgradcam", [](M& m, const T& x, const Target& t, const CamOptions& o) { return xgrad_cam(m, x, t, o); }));
    all.push_back(cam_entry<M>("layercam", [](M& m, const T& x, const Target& t, const CamOptions& o) { return layer_cam(m, x, t, o); }));
    all.push_back(cam_entry<M>("scorecam", [](M& m, const T& x, const Target& t, const CamOptions& o) { return score_cam(m, x, t, o); }));
    all.push_back(cam_entry<M>("eigencam", [](M& m, const T& x, const Target& t, const CamOptions& o) { return eigen_cam(m, x, t, o); }));
  }
  if constexpr (RuleModel<M>) {
    all.push_back(simple_entry<M>("guided_backprop", GuidedBackpropOptions{},
                                  [](M& m, const T& x, const Target& t, const GuidedBackpropOptions& o) { return guided_backprop(m, x, t, o); }));
    all.push_back(simple_entry<M>("deconvolution", GuidedBackpropOptions{},
                                  [](M& m, const T& x, const Target& t, const GuidedBackpropOptions& o) { return deconvolution(m, x, t, o); }));
    all.push_back(simple_entry<M>("guided_gradcam", GuidedGradCamOptions{},
                                  [](M& m, const T& x, const Target& t, const GuidedGradCamOptions& o) { return guided_grad_cam(m, x, t, o); }));
    all.push_back(entry<M>("lrp", LrpOptions{}, Setting::none, [](M& m, const T& x, const Target& t, LrpOptions& o, const MethodSettings& s) {
      o.normalization = s.normalization;
      return lrp(m, x, t, o);
    }));
    auto deeplift_entry = entry<M>("deeplift", DeepLiftOptions{}, Setting::baseline,
                                   [](M& m, const T& x, const Target& t, DeepLiftOptions& o, const MethodSettings& s) {
                                     return deeplift(m, x, t, settings_baseline(m, x, s), o);
                                   });
    deeplift_entry.delta = detail::baseline_delta<M>();
    all.push_back(std::move(deeplift_entry));
    all.push_back(entry<M>("deepliftshap", DeepLiftOptions{}, Setting::baseline,
                           [](M& m, const T& x, const Target& t, DeepLiftOptions& o, const MethodSettings& s) {
                             return deeplift_shap(m, x, t, settings_baselines(m, x, s), o);
                           }));
    all.push_back(entry<M>("gradientshap", GradientShapOptions{}, Setting::baseline,
                           [](M& m, const T& x, const Target& t, GradientShapOptions& o, const MethodSettings& s) {
                             return gradient_shap(m, x, t, settings_baselines(m, x, s), o);
                           }));
  }
  all.push_back(simple_entry<M>("occlusion", OcclusionOptions<M>{},
                                [](M& m, const T& x, const Target& t, const OcclusionOptions<M>& o) { return occlusion(m, x, t, o); }));
  all.push_back(region_entry<M>("ablation", AblationOptions<M>{},
                                [](M& m, const T& x, const Target& t, const AblationOptions<M>& o) { return feature_ablation(m, x, t, o); }));
  all.push_back(simple_entry<M>("rise", RiseOptions<M>{}, [](M& m, const T& x, const Target& t, const RiseOptions<M>& o) { return rise(m, x, t, o); }));
  all.push_back(simple_entry<M>("sobol", SobolOptions<M>{},
                                [](M& m, const T& x, const Target& t, const SobolOptions<M>& o) { return sobol_attribution(m, x, t, o); }));
  all.push_back(region_entry<M>("lime", LimeOptions<M>{}, [](M& m, const T& x, const Target& t, const LimeOptions<M>& o) { return lime(m, x, t, o); }));
  all.push_back(region_entry<M>("kernelshap", KernelShapOptions<M>{},
                                [](M& m, const T& x, const Target& t, const KernelShapOptions<M>& o) { return kernel_shap(m, x, t, o); }));
  all.push_back(entry<M>("pami", PamiOptions<M>{}, Setting::none, [](M& m, const T& x, const Target& t, PamiOptions<M>& o, const MethodSettings& s) {
    o.normalization = s.normalization;
    return pami(m, x, t, o);
  }));
  return all;
}
}  // namespace detail

// Every method models of type M can run, in the order of method_facts(). (The capabilities
// seen are those declared where this is first instantiated: for TorchModel include
// attribution/torch_registry.hpp.)
template <ForwardModel M>
const std::vector<BasicMethodEntry<M>>& methods() {
  static const std::vector<BasicMethodEntry<M>> all = detail::make_registry<M>();
  return all;
}

// The entry for a name or alias; unknown names, and methods M lacks the capability for, fail
// with the list of the names M has.
template <ForwardModel M>
const BasicMethodEntry<M>& find_method(std::string_view name) {
  const auto named = [name](const MethodFacts& m) {
    return m.name == name || std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end();
  };
  for (const auto& m : methods<M>())
    if (named(m)) return m;
  std::string known;
  for (const auto& m : methods<M>()) known += (known.empty() ? "" : ", ") + m.name;
  for (const auto& f : method_facts())
    if (named(f))
      detail::fail("method '", f.name, "' needs a model with the '", to_string(f.needs),
                   "' capability, which this model lacks (it can run: ", known, ")");
  detail::fail("unknown method '", name, "' (expected one of: ", known, ")");
}

// "name (alias, ...)  summary" lines for a tool's --help.
template <ForwardModel M>
std::string method_list(std::string_view indent = "  ") {
  std::string text;
  for (const auto& m : methods<M>()) {
    std::string names = m.name;
    for (const auto& a : m.aliases) names += (a == m.aliases.front() ? " (" : ", ") + a;
    if (!m.aliases.empty()) names += ")";
    constexpr std::size_t width = 30;  // the summaries' column; longer names get a line of their own
    text += std::string(indent) + names;
    text += names.size() < width ? std::string(width - names.size(), ' ') : "\n" + std::string(indent) + std::string(width, ' ');
    text += m.summary + "\n";
  }
  return text;
}

}  // namespace salient
