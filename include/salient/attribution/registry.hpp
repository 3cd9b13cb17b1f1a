#pragma once
// The attribution methods of a TorchModel by name: the one table that the command-line tools
// list (--help), validate and run, that salient-sanity tests and that bindings expose.
//
// Each entry states what a caller needs to know about a method's map (signed or not,
// multiplied by the input, whether a convergence delta exists, the model capability it needs,
// its shape) and runs it with its own options struct. The options' defaults are the struct's:
// `parameters` reads them back (core/options.hpp), so a recorded run never repeats a default.
// Settings shared by every method (seed, batch size, the masker, segmentation and baseline by
// name, the callbacks) and named options ("steps" = "32") are applied to whichever options a
// method has; a method skips names it does not have.
#include <algorithm>
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

#include "salient/attribution/baselines.hpp"
#include "salient/attribution/cam.hpp"
#include "salient/attribution/gradient.hpp"
#include "salient/attribution/guided_backprop.hpp"
#include "salient/attribution/integrated_gradients.hpp"
#include "salient/attribution/noise_tunnel.hpp"
#include "salient/attribution/pami.hpp"
#include "salient/attribution/perturbation.hpp"
#include "salient/core/options.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/masking/maskers.hpp"
#include "salient/segmentation/segments.hpp"

namespace salient {

// What a method needs of the model.
enum class Capability {
  forward,   // outputs only (ForwardModel)
  gradient,  // the input gradient (Model)
  layers,    // activations and gradients at named layers (LayerModel)
  rules,     // the TorchScript executor's rule sets (LibTorch only)
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
  std::string masker;                           // perturbation methods: a make_masker name; "": the method's default
  std::string segments = "slic:50";             // region methods: a segment() spec, or "model:FILE.pt"
  std::string baseline = "zero";                // integrated gradients: a make_baseline kind
  Normalization normalization = Normalization::imagenet();  // of the model inputs
  Progress progress = {};
  std::function<void(const std::string& layer)> on_layer = {};  // layer methods: the layer used
  std::function<void(int64_t count)> on_segments = {};          // region methods: the segment count
};

// The settings a method uses beyond its options struct (they appear in its parameters).
enum class Setting : unsigned { none = 0, segments = 1, baseline = 2 };

struct MethodEntry {
  std::string name;                  // canonical: file names, JSON
  std::vector<std::string> aliases;  // also accepted by find_method
  std::string summary;               // one line: what it computes; the reference
  bool is_signed = true;             // both signs carry meaning (a diverging colour map)
  bool multiplies_input = false;     // the map is multiplied by the input (x * ...)
  bool has_delta = false;            // a convergence delta exists (integrated gradients)
  Capability needs = Capability::gradient;
  MapShape shape = MapShape::input;
  std::vector<std::string> option_names;  // the names MethodSettings::options can set
  // The options the method runs with under `settings`, as JSON (with the settings it uses).
  std::function<nlohmann::json(const MethodSettings& settings)> parameters;
  std::function<torch::Tensor(TorchModel&, const torch::Tensor&, const Target&, const MethodSettings&)> run;
  // Set when has_delta: sum(map) - (F(x) - F(baseline)) per input, for a map `run` returned.
  std::function<std::vector<double>(TorchModel&, const torch::Tensor& inputs, const Target&,
                                    const torch::Tensor& attributions, const MethodSettings&)> delta;

  // The method bound to its settings: the uniform (model, inputs, target) -> map.
  Method<TorchModel> bind(MethodSettings settings) const {
    return [run = run, settings = std::move(settings)](TorchModel& model, const torch::Tensor& inputs, const Target& target) {
      return run(model, inputs, target, settings);
    };
  }
};

namespace detail {
inline BaselineOptions baseline_options(const MethodSettings& s) { return {.normalization = s.normalization, .seed = s.seed}; }

// `options` with the shared settings and then the named options applied; a perturbation
// method's masker is the named one, else the options' own default.
template <NamedOptions O>
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
    if (!settings.masker.empty()) options.evaluation.masker = make_masker(settings.masker, baseline_options(settings));
  return options;
}

inline bool uses(Setting settings, Setting s) { return (static_cast<unsigned>(settings) & static_cast<unsigned>(s)) != 0; }

// The segmentation of one input: superpixels by spec, or a segmentation model's regions.
inline torch::Tensor segments_for(const torch::Tensor& input, const MethodSettings& s) {
  torch::Tensor segments;
  if (s.segments.rfind("model:", 0) == 0) {
    auto segmenter = TorchModel::load(s.segments.substr(6));
    segments = model_segments(segmenter, input);
  } else {
    segments = segment_input(s.segments, input, s.normalization);
  }
  if (s.on_segments) s.on_segments(segments.max().item<int64_t>() + 1);
  return segments;
}

// An entry from its facts, the options struct with the entry's presets, the settings it
// uses beyond the struct, and `call(model, inputs, target, options)`.
template <NamedOptions O, class Call>
MethodEntry entry(MethodEntry facts, O presets, Setting extra_settings, Call call) {
  facts.option_names = option_names(presets);
  facts.parameters = [presets, extra_settings](const MethodSettings& s) {
    const auto options = configured(presets, s);
    auto json = options_json(options);
    if constexpr (requires { options.evaluation.masker; }) json["masker"] = options.evaluation.masker.name();
    if (uses(extra_settings, Setting::segments)) json["segments"] = s.segments;
    if (uses(extra_settings, Setting::baseline)) json["baseline"] = s.baseline;
    return json;
  };
  facts.run = [presets, call](TorchModel& model, const torch::Tensor& inputs, const Target& target, const MethodSettings& s) {
    auto options = configured(presets, s);
    return call(model, inputs, target, options, s);
  };
  return facts;
}

template <class Cam>
MethodEntry cam_entry(std::string name, std::vector<std::string> aliases, std::string summary, Cam cam,
                      Capability needs = Capability::layers) {
  return entry({.name = std::move(name), .aliases = std::move(aliases), .summary = std::move(summary), .is_signed = false,
                .needs = needs, .shape = MapShape::one_channel},
               CamOptions{}, Setting::none, [cam](TorchModel& m, const torch::Tensor& x, const Target& t, const CamOptions& o, const MethodSettings&) {
                 return cam(m, x, t, o);
               });
}

inline MethodEntry noise_entry(std::string name, NoiseTunnelType type, bool is_signed, std::string summary) {
  return entry({.name = std::move(name), .summary = std::move(summary), .is_signed = is_signed},
               NoiseTunnelOptions{.type = type}, Setting::none,
               [](TorchModel& m, const torch::Tensor& x, const Target& t, const NoiseTunnelOptions& o, const MethodSettings&) {
                 auto gradient = [&o](TorchModel& model, const torch::Tensor& in, const Target& target) {
                   return saliency(model, in, target, {.abs = false, .batch_size = o.batch_size});
                 };
                 return noise_tunnel(m, x, t, gradient, o);
               });
}

// A region method: the options get the segmentation of each input (one input per call).
template <class O, class Call>
MethodEntry region_entry(MethodEntry facts, O presets, Call call) {
  return entry(std::move(facts), std::move(presets), Setting::segments,
               [call](TorchModel& m, const torch::Tensor& x, const Target& t, O& o, const MethodSettings& s) {
                 std::vector<torch::Tensor> parts;
                 const auto resolved = resolve_target(m, x, t);
                 for (int64_t i = 0; i < x.size(0); ++i) {
                   auto item = x.slice(0, i, i + 1);
                   o.segments = segments_for(item, s);
                   parts.push_back(call(m, item, item_target<TorchModel>(resolved, i), o));
                 }
                 return torch::cat(parts, 0);
               });
}

inline torch::Tensor ig_baseline(const torch::Tensor& inputs, const MethodSettings& s) {
  return make_baseline(parse_baseline(s.baseline), inputs, baseline_options(s));
}

// Integrated gradients' completeness error, with the baseline the settings name.
inline MethodEntry with_ig_delta(MethodEntry entry) {
  entry.delta = [](TorchModel& model, const torch::Tensor& inputs, const Target& target, const torch::Tensor& attributions,
                   const MethodSettings& settings) {
    return convergence_delta(model, attributions, inputs, target, std::optional<torch::Tensor>(ig_baseline(inputs, settings)));
  };
  return entry;
}

inline std::vector<MethodEntry> make_registry() {
  using O = MethodSettings;
  const auto none = Setting::none;
  return {
      entry({.name = "saliency", .summary = "signed input gradient dF/dx (Simonyan et al. 2014)"}, SaliencyOptions{.abs = false}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, const SaliencyOptions& o, const O&) { return saliency(m, x, t, o); }),
      entry({.name = "saliency_abs", .summary = "|dF/dx|, Captum's Saliency (Simonyan et al. 2014)", .is_signed = false},
            SaliencyOptions{.abs = true}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, const SaliencyOptions& o, const O&) { return saliency(m, x, t, o); }),
      entry({.name = "input_x_gradient", .aliases = {"ixg"}, .summary = "x * dF/dx (Shrikumar et al. 2016)", .multiplies_input = true},
            InputXGradientOptions{}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, const InputXGradientOptions& o, const O&) {
              return input_x_gradient(m, x, t, o);
            }),
      with_ig_delta(entry({.name = "integrated_gradients", .aliases = {"ig"},
             .summary = "path integral of the gradient from a baseline (Sundararajan et al. 2017)",
             .multiplies_input = true, .has_delta = true},
            IntegratedGradientsOptions<torch::Tensor>{}, Setting::baseline,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, IntegratedGradientsOptions<torch::Tensor>& o, const O& s) {
              o.baseline = ig_baseline(x, s);
              return integrated_gradients(m, x, t, o);
            })),
      noise_entry("smoothgrad", NoiseTunnelType::smoothgrad, true, "mean gradient of noisy copies (Smilkov et al. 2017)"),
      noise_entry("smoothgrad_sq", NoiseTunnelType::smoothgrad_sq, false, "mean squared gradient of noisy copies (Hooker et al. 2019)"),
      noise_entry("vargrad", NoiseTunnelType::vargrad, false, "variance of the gradient over noisy copies (Adebayo et al. 2018)"),
      cam_entry("gradcam", {"grad_cam"}, "Grad-CAM (Selvaraju et al. 2017)",
                [](auto& m, const auto& x, const auto& t, const auto& o) { return grad_cam(m, x, t, o); }),
      cam_entry("gradcampp", {"gradcam++", "grad_cam_plus_plus"}, "Grad-CAM++ (Chattopadhay et al. 2018)",
                [](auto& m, const auto& x, const auto& t, const auto& o) { return grad_cam_plus_plus(m, x, t, o); }),
      cam_entry("xgradcam", {"xgrad_cam"}, "XGrad-CAM (Fu et al. 2020)",
                [](auto& m, const auto& x, const auto& t, const auto& o) { return xgrad_cam(m, x, t, o); }),
      cam_entry("layercam", {"layer_cam"}, "Layer-CAM (Jiang et al. 2021)",
                [](auto& m, const auto& x, const auto& t, const auto& o) { return layer_cam(m, x, t, o); }),
      cam_entry("scorecam", {"score_cam"}, "Score-CAM: channels weighted by masked-input scores (Wang et al. 2020)",
                [](auto& m, const auto& x, const auto& t, const auto& o) { return score_cam(m, x, t, o); }),
      cam_entry("eigencam", {"eigen_cam"}, "Eigen-CAM: first principal component of a layer (Muhammad & Yeasin 2020)",
                [](auto& m, const auto& x, const auto& t, const auto& o) { return eigen_cam(m, x, t, o); }),
      entry({.name = "guided_backprop", .aliases = {"gbp"}, .summary = "guided backpropagation (Springenberg et al. 2015)",
             .needs = Capability::rules},
            GuidedBackpropOptions{}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, const GuidedBackpropOptions& o, const O&) {
              return guided_backprop(m, x, t, o);
            }),
      entry({.name = "deconvolution", .aliases = {"deconvnet"}, .summary = "deconvnet (Zeiler & Fergus 2014)",
             .needs = Capability::rules},
            GuidedBackpropOptions{}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, const GuidedBackpropOptions& o, const O&) {
              return deconvolution(m, x, t, o);
            }),
      entry({.name = "guided_gradcam", .aliases = {"guided_grad_cam"},
             .summary = "guided backprop times Grad-CAM (Selvaraju et al. 2017)", .needs = Capability::rules},
            GuidedGradCamOptions{}, Setting::none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, const GuidedGradCamOptions& o, const O&) {
              return guided_grad_cam(m, x, t, o);
            }),
      entry({.name = "occlusion", .summary = "score drop under a sliding window (Zeiler & Fergus 2014)",
             .needs = Capability::forward, .shape = MapShape::one_channel},
            OcclusionOptions<TorchModel>{}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, OcclusionOptions<TorchModel>& o, const O&) {
              return occlusion(m, x, t, o);
            }),
      region_entry({.name = "ablation", .aliases = {"feature_ablation"}, .summary = "score drop per removed segment (Captum's FeatureAblation)",
                    .needs = Capability::forward, .shape = MapShape::one_channel},
                   AblationOptions<TorchModel>{},
                   [](TorchModel& m, const torch::Tensor& x, const Target& t, const AblationOptions<TorchModel>& o) {
                     return feature_ablation(m, x, t, o);
                   }),
      entry({.name = "rise", .summary = "randomised input sampling (Petsiuk et al. 2018)", .is_signed = false,
             .needs = Capability::forward, .shape = MapShape::one_channel},
            RiseOptions<TorchModel>{}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, RiseOptions<TorchModel>& o, const O&) {
              return rise(m, x, t, o);
            }),
      region_entry({.name = "lime", .summary = "a weighted linear surrogate over segments (Ribeiro et al. 2016)",
                    .needs = Capability::forward, .shape = MapShape::one_channel},
                   LimeOptions<TorchModel>{},
                   [](TorchModel& m, const torch::Tensor& x, const Target& t, const LimeOptions<TorchModel>& o) { return lime(m, x, t, o); }),
      region_entry({.name = "kernelshap", .aliases = {"kernel_shap"}, .summary = "Shapley values of segments (Lundberg & Lee 2017)",
                    .needs = Capability::forward, .shape = MapShape::one_channel},
                   KernelShapOptions<TorchModel>{},
                   [](TorchModel& m, const torch::Tensor& x, const Target& t, const KernelShapOptions<TorchModel>& o) {
                     return kernel_shap(m, x, t, o);
                   }),
      entry({.name = "pami", .summary = "partition input and aggregate outputs of kept regions (Shi et al. 2023)", .is_signed = false,
             .needs = Capability::forward, .shape = MapShape::one_channel},
            PamiOptions<TorchModel>{}, none,
            [](TorchModel& m, const torch::Tensor& x, const Target& t, PamiOptions<TorchModel>& o, const O& s) {
              o.normalization = s.normalization;
              return pami(m, x, t, o);
            }),
  };
}
}  // namespace detail

// Every method, in the order tools list them.
inline const std::vector<MethodEntry>& methods() {
  static const std::vector<MethodEntry> all = detail::make_registry();
  return all;
}

// The entry for a name or alias; unknown names fail with the list of known ones.
inline const MethodEntry& find_method(std::string_view name) {
  for (const auto& m : methods())
    if (m.name == name || std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end()) return m;
  std::string known;
  for (const auto& m : methods()) known += (known.empty() ? "" : ", ") + m.name;
  detail::fail("unknown method '", name, "' (expected one of: ", known, ")");
}

// "name (alias, ...)  summary" lines for a tool's --help.
inline std::string method_list(std::string_view indent = "  ") {
  std::string text;
  for (const auto& m : methods()) {
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
