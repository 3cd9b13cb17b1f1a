#pragma once
// Gradients through modified ReLU backward passes (graph/rules.hpp), and guided Grad-CAM.
//
// - guided_backprop: d score / d input where every ReLU/ReLU6 passes back only positive
//   gradients where its input was active. Springenberg et al. 2015; Captum's GuidedBackprop.
// - deconvolution:   ReLUs pass back relu(gradient), ignoring their input. Zeiler & Fergus
//   2014; Captum's Deconvolution.
// - guided_grad_cam: Grad-CAM (ReLU on, at the layer) interpolated to the input size, times
//   guided backprop, per channel. Selvaraju et al. 2017; Captum's GuidedGradCam, whose
//   default interpolation is nearest (pytorch-grad-cam users may prefer bilinear).
// No multiplication by the input and no abs, as in Captum. Every item in a batch gets the
// gradient of its own score.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "salient/attribution/cam.hpp"
#include "salient/attribution/guided_options.hpp"
#include "salient/graph/layers.hpp"

namespace salient {

struct RuleGradientOptions {
  graph::RuleSet rules = graph::plain_rules();  // how each op is run and differentiated
  int64_t batch_size = 16;
  Progress progress = {};
  const graph::Program* program = nullptr;      // the program to run; none: program_of(model)
  bool times_score = false;                     // the gradient times each item's score
};

// d score / d input with `options.rules` applied, in chunks of `batch_size` items.
inline torch::Tensor rule_gradient(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                   const RuleGradientOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  detail::check_batch_size(options.batch_size, "rule_gradient");
  const auto& program = options.program ? *options.program : program_of(model);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<torch::Tensor> parts;
  detail::for_each_chunk(inputs.size(0), options.batch_size, [&](int64_t begin, int64_t end) {
    auto run = layer_gradients(model, program, inputs.slice(0, begin, end), resolved.slice(begin, end), {}, options.rules, true);
    if (options.times_score) {
      std::vector<int64_t> shape(static_cast<std::size_t>(inputs.dim()), 1);
      shape[0] = -1;
      run.input_gradient = run.input_gradient * run.scores.reshape(shape);
    }
    parts.push_back(run.input_gradient);
    if (options.progress) options.progress(end, inputs.size(0));
  });
  return torch::cat(parts, 0);
}

inline torch::Tensor guided_backprop(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                     const GuidedBackpropOptions& options = {}) {
  return rule_gradient(model, inputs, target,
                       {.rules = graph::guided_relu_rules(), .batch_size = options.batch_size, .progress = options.progress});
}

inline torch::Tensor deconvolution(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                   const GuidedBackpropOptions& options = {}) {
  return rule_gradient(model, inputs, target,
                       {.rules = graph::deconv_relu_rules(), .batch_size = options.batch_size, .progress = options.progress});
}

inline torch::Tensor guided_grad_cam(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                     const GuidedGradCamOptions& options = {}) {
  detail::check_cam_inputs<TorchBackend>(inputs);
  const auto resolved = resolve_target(model, inputs, target);  // once, for both passes
  const Target fixed = resolved.is_custom() ? Target(resolved.custom) : Target(resolved.classes);
  CamOptions cam{.layer = options.layer, .layer_input = options.layer_input, .relu = true, .upsample = false,
                 .batch_size = options.batch_size, .progress = {}, .on_layer = options.on_layer};
  auto map = grad_cam(model, inputs, fixed, cam);
  namespace F = torch::nn::functional;
  auto interpolate = F::InterpolateFuncOptions().size(std::vector<int64_t>{inputs.size(2), inputs.size(3)});
  if (options.interpolation == Interpolation::nearest)
    interpolate.mode(torch::kNearest);
  else
    interpolate.mode(torch::kBilinear).align_corners(false);
  map = F::interpolate(map, interpolate);
  return map * guided_backprop(model, inputs, fixed, {options.batch_size, options.progress});
}

}  // namespace salient
