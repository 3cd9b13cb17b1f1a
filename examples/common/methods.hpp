#pragma once
// The attribution methods the command-line tools offer, by name, with one signature:
// run(model, input [1,C,H,W], target, settings) -> attribution of the input's shape.
#include <algorithm>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "salient/salient.hpp"

namespace salient::cli {

struct Settings {
  int64_t steps = 50;
  IntegrationMethod ig_method = IntegrationMethod::gauss_legendre;
  BaselineKind baseline = BaselineKind::zero;
  Normalization normalization = Normalization::imagenet();
  int64_t samples = 16;
  double stdev = -1;  // < 0: 15% of the input's value range (SmoothGrad paper's noise level)
  int64_t batch_size = 16;
  uint64_t seed = 0;
  std::string layer;                 // CAM layer; "" = the last spatial layer
  std::string* layer_used = nullptr;  // set to the layer a CAM method used
  Progress progress = {};
};

struct MethodSpec {
  std::string name;          // canonical name, used in file names
  std::vector<std::string> aliases;
  bool is_signed;            // signed maps use a diverging colormap
  std::function<torch::Tensor(TorchModel&, const torch::Tensor&, const Target&, const Settings&)> run;
  std::function<nlohmann::json(const torch::Tensor& input, const Settings&)> parameters;
};

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
                                {.type = type, .samples = s.samples, .stdev = noise_stdev(x, s), .seed = s.seed,
                                 .batch_size = s.batch_size, .progress = s.progress});
          },
          [](const torch::Tensor& x, const Settings& s) {
            return nlohmann::json{{"samples", s.samples}, {"stdev", noise_stdev(x, s)}, {"seed", s.seed},
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
  };
  return all;
}

inline const MethodSpec& find_method(std::string_view name) {
  for (const auto& m : methods())
    if (m.name == name || std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end()) return m;
  std::string known;
  for (const auto& m : methods()) known += (known.empty() ? "" : ", ") + m.name;
  detail::fail("unknown method '", name, "' (expected one of: ", known, ")");
}

}  // namespace salient::cli
