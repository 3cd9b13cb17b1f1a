#pragma once
// The attribution methods the command-line tools offer, by name, with one signature:
// run(model, input [1,C,H,W], target, settings) -> attribution of the input's shape.
#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/salient.hpp"

#include "common/cli.hpp"

namespace salient::cli {

struct Settings {
  int64_t steps = 50;
  IntegrationMethod ig_method = IntegrationMethod::gauss_legendre;
  BaselineKind baseline = BaselineKind::zero;
  Normalization normalization = Normalization::imagenet();
  int64_t samples = -1;  // < 0: the method's default (noise tunnel 16, LIME/KernelSHAP 1000, RISE 2000)
  double stdev = -1;  // < 0: 15% of the input's value range (SmoothGrad paper's noise level)
  int64_t batch_size = 16;
  uint64_t seed = 0;
  std::string masker = "mean";       // how perturbation methods remove pixels (make_masker)
  std::string segments = "slic:50";  // region methods: segment() spec, or "model:FILE.pt"
  std::array<int64_t, 2> window{15, 15}, strides{8, 8};  // occlusion
  std::string layer;                 // CAM layer; "" = the last spatial layer
  std::string* layer_used = nullptr;  // set to the layer a CAM method used
  int64_t* segment_count = nullptr;   // set to the number of segments a region method used
  Progress progress = {};
};

struct MethodSpec {
  std::string name;          // canonical name, used in file names
  std::vector<std::string> aliases;
  bool is_signed;            // signed maps use a diverging colormap
  std::function<torch::Tensor(TorchModel&, const torch::Tensor&, const Target&, const Settings&)> run;
  std::function<nlohmann::json(const torch::Tensor& input, const Settings&)> parameters;
};

inline int64_t samples_or(const Settings& s, int64_t fallback) { return s.samples > 0 ? s.samples : fallback; }

inline double noise_stdev(const torch::Tensor& input, const Settings& s) {
  return s.stdev >= 0 ? s.stdev : 0.15 * (input.max() - input.min()).item<double>();
}

inline torch::Tensor baseline_for(const torch::Tensor& input, const Settings& s) {
  return make_baseline(s.baseline, input, {.normalization = s.normalization, .seed = s.seed});
}

inline MethodSpec noise_method(std::string name, NoiseTunnelType type, bool is_signed) {
  return {name, {}, is_signed,
          [type](TorchModel& model, const torch::Tensor& x, const Target& target, const Settings& s) {
            auto gradient = [&](TorchModel& m, const torch::Tensor& in, const Target& t) {
              return saliency(m, in, t, {.abs = false, .batch_size = s.batch_size});
            };
            return noise_tunnel(model, x, target, gradient,
                                {.type = type, .samples = samples_or(s, 16), .stdev = noise_stdev(x, s), .seed = s.seed,
                                 .batch_size = s.batch_size, .progress = s.progress});
          },
          [](const torch::Tensor& x, const Settings& s) {
            return nlohmann::json{{"samples", samples_or(s, 16)}, {"stdev", noise_stdev(x, s)}, {"seed", s.seed},
                                  {"batch_size", s.batch_size}, {"over", "gradient"}};
          }};
}

using CamFunction = torch::Tensor (*)(TorchModel&, const torch::Tensor&, const Target&, const CamOptions&);

inline MethodSpec cam_method(std::string name, std::vector<std::string> aliases, CamFunction cam) {
  return {name, std::move(aliases), false,
          [cam](TorchModel& model, const torch::Tensor& x, const Target& target, const Settings& s) {
            return cam(model, x, target,
                       {.layer = s.layer, .batch_size = s.batch_size, .progress = s.progress,
                        .on_layer = [&s](const std::string& l) { if (s.layer_used) *s.layer_used = l; }});
          },
          [](const torch::Tensor&, const Settings& s) {
            return nlohmann::json{{"relu", true}, {"upsample", "bilinear"}, {"batch_size", s.batch_size}};
          }};
}

inline PerturbationOptions<TorchModel> evaluation_of(const Settings& s, bool probabilities = false) {
  return {.masker = make_masker(s.masker, {.normalization = s.normalization, .seed = s.seed}),
          .batch_size = s.batch_size,
          .probabilities = probabilities,
          .progress = s.progress};
}

// The segmentation of one input: superpixels by spec, or a segmentation model's regions.
inline torch::Tensor segments_of(const torch::Tensor& x, const Settings& s) {
  if (s.segments.rfind("model:", 0) == 0) {
    static std::map<std::string, TorchModel> segmenters;  // loaded once per file
    const auto file = s.segments.substr(6);
    auto it = segmenters.find(file);
    if (it == segmenters.end()) it = segmenters.emplace(file, TorchModel::load(file)).first;
    return model_segments(it->second, x);
  }
  return segment_input(s.segments, x, s.normalization);
}

// A region method: run(model, x, target, segments, settings).
template <class Run>
MethodSpec region_method(std::string name, std::vector<std::string> aliases, Run run,
                         std::function<nlohmann::json(const Settings&)> parameters) {
  return {name, std::move(aliases), true,
          [run](TorchModel& model, const torch::Tensor& x, const Target& target, const Settings& s) {
            auto segments = segments_of(x, s);
            if (s.segment_count) *s.segment_count = segments.max().item<int64_t>() + 1;
            return run(model, x, target, segments, s);
          },
          [parameters](const torch::Tensor&, const Settings& s) {
            auto json = parameters(s);
            json["masker"] = s.masker;
            json["segments"] = s.segments;
            json["batch_size"] = s.batch_size;
            return json;
          }};
}

inline const std::vector<MethodSpec>& methods() {
  static const std::vector<MethodSpec> all = {
      {"saliency", {}, true,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return saliency(m, x, t, {.abs = false, .batch_size = s.batch_size, .progress = s.progress});
       },
       [](const torch::Tensor&, const Settings&) { return nlohmann::json{{"abs", false}}; }},
      {"saliency_abs", {}, false,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return saliency(m, x, t, {.abs = true, .batch_size = s.batch_size, .progress = s.progress});
       },
       [](const torch::Tensor&, const Settings&) { return nlohmann::json{{"abs", true}}; }},
      {"input_x_gradient", {"ixg"}, true,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return input_x_gradient(m, x, t, {.batch_size = s.batch_size, .progress = s.progress});
       },
       [](const torch::Tensor&, const Settings&) { return nlohmann::json::object(); }},
      {"integrated_gradients", {"ig"}, true,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return integrated_gradients(m, x, t,
                                     {.steps = s.steps, .method = s.ig_method, .baseline = baseline_for(x, s),
                                      .batch_size = s.batch_size, .progress = s.progress});
       },
       [](const torch::Tensor&, const Settings& s) {
         return nlohmann::json{{"steps", s.steps}, {"method", std::string(to_string(s.ig_method))},
                               {"baseline", std::string(to_string(s.baseline))}, {"batch_size", s.batch_size}};
       }},
      noise_method("smoothgrad", NoiseTunnelType::smoothgrad, true),
      noise_method("smoothgrad_sq", NoiseTunnelType::smoothgrad_sq, false),
      noise_method("vargrad", NoiseTunnelType::vargrad, false),
      cam_method("gradcam", {"grad_cam"}, grad_cam),
      cam_method("gradcampp", {"gradcam++", "grad_cam_plus_plus"}, grad_cam_plus_plus),
      cam_method("xgradcam", {"xgrad_cam"}, xgrad_cam),
      cam_method("layercam", {"layer_cam"}, layer_cam),
      cam_method("scorecam", {"score_cam"}, score_cam),
      cam_method("eigencam", {"eigen_cam"}, eigen_cam),
      {"guided_backprop", {"gbp"}, true,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return guided_backprop(m, x, t, {.batch_size = s.batch_size, .progress = s.progress});
       },
       [](const torch::Tensor&, const Settings&) { return nlohmann::json{{"rules", "guided_relu"}}; }},
      {"deconvolution", {"deconvnet"}, true,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return deconvolution(m, x, t, {.batch_size = s.batch_size, .progress = s.progress});
       },
       [](const torch::Tensor&, const Settings&) { return nlohmann::json{{"rules", "deconv_relu"}}; }},
      {"guided_gradcam", {"guided_grad_cam"}, true,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return guided_grad_cam(m, x, t,
                                {.layer = s.layer, .batch_size = s.batch_size, .progress = s.progress,
                                 .on_layer = [&s](const std::string& l) { if (s.layer_used) *s.layer_used = l; }});
       },
       [](const torch::Tensor&, const Settings&) { return nlohmann::json{{"interpolation", "nearest"}}; }},
      {"occlusion", {}, true,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return occlusion(m, x, t, {.window = s.window, .strides = s.strides, .evaluation = evaluation_of(s)});
       },
       [](const torch::Tensor&, const Settings& s) {
         return nlohmann::json{{"window", s.window}, {"strides", s.strides}, {"masker", s.masker},
                               {"batch_size", s.batch_size}, {"score", "output"}};
       }},
      region_method(
          "ablation", {"feature_ablation"},
          [](TorchModel& m, const torch::Tensor& x, const Target& t, const torch::Tensor& segments, const Settings& s) {
            return feature_ablation(m, x, t, {.segments = segments, .evaluation = evaluation_of(s)});
          },
          [](const Settings&) { return nlohmann::json{{"score", "output"}}; }),
      {"rise", {}, false,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return rise(m, x, t, {.masks = samples_or(s, 2000), .seed = s.seed, .evaluation = evaluation_of(s, true)});
       },
       [](const torch::Tensor&, const Settings& s) {
         return nlohmann::json{{"masks", samples_or(s, 2000)}, {"cells", 7}, {"keep_probability", 0.5},
                               {"seed", s.seed}, {"masker", s.masker}, {"batch_size", s.batch_size},
                               {"score", "probability"}};
       }},
      region_method(
          "lime", {},
          [](TorchModel& m, const torch::Tensor& x, const Target& t, const torch::Tensor& segments, const Settings& s) {
            return lime(m, x, t, {.segments = segments, .samples = samples_or(s, 1000), .seed = s.seed, .evaluation = evaluation_of(s)});
          },
          [](const Settings& s) {
            return nlohmann::json{{"samples", samples_or(s, 1000)}, {"kernel_width", 0.25}, {"ridge", 1.0},
                                  {"seed", s.seed}, {"score", "output"}};
          }),
      region_method(
          "kernelshap", {"kernel_shap"},
          [](TorchModel& m, const torch::Tensor& x, const Target& t, const torch::Tensor& segments, const Settings& s) {
            return kernel_shap(m, x, t, {.segments = segments, .samples = samples_or(s, 1000), .seed = s.seed, .evaluation = evaluation_of(s)});
          },
          [](const Settings& s) { return nlohmann::json{{"samples", samples_or(s, 1000)}, {"seed", s.seed}, {"score", "output"}}; }),
      {"pami", {}, false,
       [](TorchModel& m, const torch::Tensor& x, const Target& t, const Settings& s) {
         return pami(m, x, t, {.normalization = s.normalization, .evaluation = evaluation_of(s, true)});
       },
       [](const torch::Tensor&, const Settings& s) {
         PamiOptions<TorchModel> defaults;
         return nlohmann::json{{"segmentations", defaults.segmentations}, {"shifts", defaults.shifts},
                               {"masker", s.masker}, {"batch_size", s.batch_size}, {"score", "probability"}};
       }},
  };
  return all;
}

inline const MethodSpec& find_method(std::string_view name) {
  for (const auto& m : methods())
    if (m.name == name || std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end()) return m;
  std::string known;
  for (const auto& m : methods()) known += (known.empty() ? "" : ", ") + m.name;
  fail("unknown method '", name, "' (expected one of: ", known, ")");
}

}  // namespace salient::cli
