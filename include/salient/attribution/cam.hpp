#pragma once
// Class activation maps at a layer of a TorchScript (or Sequential-style) model.
//
// With A = the layer's activation [N,C,h,w] and G = d score / d A (score: the target's raw
// output, no softmax), each method forms a map sum_c w_c A_c or a pixel-wise variant:
// - grad_cam:  w_c = mean_hw G_c. Selvaraju et al. 2017. Equals Captum's LayerGradCam
//              (relu_attributions = CamOptions::relu, no upsampling when upsample = false).
// - grad_cam_plus_plus: a = G^2 / (2 G^2 + (sum_hw A_c) G^3 + 1e-6) where G != 0, else 0;
//              w_c = sum_hw relu(G_c) a_c. Chattopadhay et al. 2018, eq. 19, as
//              pytorch-grad-cam's GradCAMPlusPlus.
// - xgrad_cam: w_c = sum_hw G_c A_c / (sum_hw A_c + 1e-7). Fu et al. 2020 (pytorch-grad-cam).
// - layer_cam: map = sum_c relu(G_c) * A_c per pixel. Jiang et al. 2021.
// - score_cam: no gradient. Each channel, bilinearly upsampled to the input size
//              (align_corners = true) and min-max scaled to [0,1] (+1e-8), masks the input;
//              s_c = the target's raw score of the masked input; w = softmax_c(s).
//              Wang et al. 2020, as pytorch-grad-cam's ScoreCAM. The C masked inputs of an
//              image run in batches of `batch_size`.
// - eigen_cam: no gradient, no target. The projection of the centred activations
//              (positions x channels) on their first right singular vector. Muhammad &
//              Yeasin 2020 (pytorch-grad-cam's get_2d_projection); the SVD's sign is fixed so
//              that the map correlates positively with the channel-mean activation.
// Post-processing (CamOptions): ReLU of the map (default on, as pytorch-grad-cam; Captum's
// default is off), and bilinear upsampling to the input's H x W (align_corners = false).
// Maps are not min-max scaled (heatmap rendering does that); result [N,1,H,W] or [N,1,h,w].
//
// Without a layer, CAMs use default_cam_layer(): the last layer whose output is 4-D with a
// spatial size above 1; `on_layer` is told which layer was used.
#include <cstdint>
#include <functional>
#include <string>

#include "salient/core/torch_backend.hpp"
#include "salient/graph/layers.hpp"

namespace salient {

struct CamOptions {
  std::string layer;                // "" = default_cam_layer()
  bool layer_input = false;         // attribute to the layer's input (Captum's attribute_to_layer_input)
  bool relu = true;                 // ReLU on the map
  bool upsample = true;             // bilinear to the input's spatial size
  int64_t batch_size = 16;          // inputs per forward/backward (Score-CAM: masked inputs per forward)
  Progress progress = {};
  std::function<void(const std::string& layer)> on_layer = {};
};

enum class CamKind { grad_cam, grad_cam_plus_plus, xgrad_cam, layer_cam };

namespace detail {

inline void check_cam_inputs(const torch::Tensor& inputs) {
  if (inputs.dim() != 4) fail("CAM methods need image batches [N,C,H,W], got shape ", shape_string(inputs));
  check_inputs<TorchBackend>(inputs);
}

inline std::string cam_layer(TorchModel& model, const torch::Tensor& inputs, const CamOptions& options) {
  auto layer = options.layer.empty() ? default_cam_layer(model, inputs) : options.layer;
  program_of(model).layer(layer);  // unknown names fail here, before any work
  if (options.on_layer) options.on_layer(layer);
  return layer;
}

inline torch::Tensor check_activation(const torch::Tensor& a, const std::string& layer) {
  if (a.dim() != 4)
    fail("layer '", layer, "' has output shape ", shape_string(a), "; CAM methods need a 4-D [N,C,h,w] layer");
  return a;
}

// The map from activations and gradients, before ReLU and upsampling: [N,1,h,w].
inline torch::Tensor cam_from_gradients(CamKind kind, const torch::Tensor& a, const torch::Tensor& g) {
  const std::vector<int64_t> hw{2, 3};
  switch (kind) {
    case CamKind::grad_cam:
      return (g.mean(hw, /*keepdim=*/true) * a).sum(1, /*keepdim=*/true);
    case CamKind::grad_cam_plus_plus: {
      auto g2 = g * g;
      auto g3 = g2 * g;
      auto alpha = g2 / (2 * g2 + a.sum(hw, true) * g3 + 1e-6);
      alpha = torch::where(g != 0, alpha, torch::zeros_like(alpha));
      return ((g.clamp_min(0) * alpha).sum(hw, true) * a).sum(1, true);
    }
    case CamKind::xgrad_cam:
      return ((g * a / (a.sum(hw, true) + 1e-7)).sum(hw, true) * a).sum(1, true);
    case CamKind::layer_cam:
      return (g.clamp_min(0) * a).sum(1, true);
  }
  fail("unknown CAM kind");
}

inline torch::Tensor finish_cam(torch::Tensor map, const torch::Tensor& inputs, const CamOptions& options) {
  if (options.relu) map = map.clamp_min(0);
  if (options.upsample && map.sizes().slice(2) != inputs.sizes().slice(2))
    map = torch::nn::functional::interpolate(
        map, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<int64_t>{inputs.size(2), inputs.size(3)})
                 .mode(torch::kBilinear)
                 .align_corners(false));
  return map;
}

// Activation-only work in chunks: fn(begin, end) -> [n,1,h,w] maps.
template <class Fn>
torch::Tensor cam_chunks(const torch::Tensor& inputs, int64_t batch_size, const Progress& progress, Fn&& fn) {
  std::vector<torch::Tensor> parts;
  const int64_t n = inputs.size(0);
  for_each_chunk(n, batch_size, [&](int64_t begin, int64_t end) {
    parts.push_back(fn(begin, end));
    if (progress) progress(end, n);
  });
  return torch::cat(parts, 0);
}
}  // namespace detail

// Grad-CAM, Grad-CAM++, XGrad-CAM or Layer-CAM (see the header comment).
inline torch::Tensor gradient_cam(CamKind kind, TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                  const CamOptions& options = {}) {
  detail::check_cam_inputs(inputs);
  const auto layer = detail::cam_layer(model, inputs, options);
  const auto resolved = resolve_target(model, inputs, target);
  auto map = detail::cam_chunks(inputs, options.batch_size, options.progress, [&](int64_t begin, int64_t end) {
    auto result = detail::layer_gradients(model, inputs.slice(0, begin, end), resolved.slice(begin, end),
                                  {{layer, options.layer_input}});
    auto a = detail::check_activation(result.activations[0], layer);
    return detail::cam_from_gradients(kind, a, result.gradients[0]);
  });
  return detail::finish_cam(map, inputs, options);
}

inline torch::Tensor grad_cam(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                              const CamOptions& options = {}) {
  return gradient_cam(CamKind::grad_cam, model, inputs, target, options);
}
inline torch::Tensor grad_cam_plus_plus(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                        const CamOptions& options = {}) {
  return gradient_cam(CamKind::grad_cam_plus_plus, model, inputs, target, options);
}
inline torch::Tensor xgrad_cam(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                               const CamOptions& options = {}) {
  return gradient_cam(CamKind::xgrad_cam, model, inputs, target, options);
}
inline torch::Tensor layer_cam(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                               const CamOptions& options = {}) {
  return gradient_cam(CamKind::layer_cam, model, inputs, target, options);
}

// Score-CAM: C forward passes per image (C = the layer's channels), batched.
inline torch::Tensor score_cam(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                               const CamOptions& options = {}) {
  detail::check_cam_inputs(inputs);
  const auto layer = detail::cam_layer(model, inputs, options);
  const auto resolved = resolve_target(model, inputs, target);
  torch::NoGradGuard no_grad;
  const int64_t n = inputs.size(0);
  std::vector<torch::Tensor> maps;
  int64_t done = 0, total = -1;
  for (int64_t i = 0; i < n; ++i) {
    auto item = inputs.slice(0, i, i + 1);
    auto a = detail::check_activation(run_layers(model, item, {{layer, options.layer_input}}).activations[0], layer);
    const int64_t channels = a.size(1);
    if (total < 0) total = n * channels;
    auto up = torch::nn::functional::interpolate(
        a, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{inputs.size(2), inputs.size(3)})
               .mode(torch::kBilinear)
               .align_corners(true))[0];  // [C,H,W]
    auto flat = up.reshape({channels, -1});
    auto lo = std::get<0>(flat.min(1)).view({channels, 1, 1});
    auto hi = std::get<0>(flat.max(1)).view({channels, 1, 1});
    auto masks = ((up - lo) / (hi - lo + 1e-8)).unsqueeze(1);  // [C,1,H,W]
    auto item_target = resolved.slice(i, i + 1);
    std::vector<torch::Tensor> scores;
    detail::for_each_chunk(channels, options.batch_size, [&](int64_t begin, int64_t end) {
      auto batch = item * masks.slice(0, begin, end);
      auto chunk_target = item_target.is_custom() ? item_target : item_target.tiled(end - begin);
      scores.push_back(TorchBackend::select(model.forward(batch), chunk_target));
      done += end - begin;
      if (options.progress) options.progress(done, total);
    });
    auto weights = torch::softmax(torch::cat(scores).to(a.dtype()), 0).view({1, channels, 1, 1});
    maps.push_back((weights * a).sum(1, true));
  }
  return detail::finish_cam(torch::cat(maps, 0), inputs, options);
}

// Eigen-CAM: the first principal component of the layer's activations (no target needed;
// the target argument is accepted for the common calling convention and ignored).
inline torch::Tensor eigen_cam(TorchModel& model, const torch::Tensor& inputs, const Target& /*target*/,
                               const CamOptions& options = {}) {
  detail::check_cam_inputs(inputs);
  const auto layer = detail::cam_layer(model, inputs, options);
  torch::NoGradGuard no_grad;
  auto map = detail::cam_chunks(inputs, options.batch_size, options.progress, [&](int64_t begin, int64_t end) {
    auto a = detail::check_activation(
        run_layers(model, inputs.slice(0, begin, end), {{layer, options.layer_input}}).activations[0], layer);
    std::vector<torch::Tensor> maps;
    for (int64_t i = 0; i < a.size(0); ++i) {
      auto positions = a[i].reshape({a.size(1), -1}).t().to(torch::kDouble);  // [hw, C]
      auto centred = positions - positions.mean(0, true);
      auto vh = std::get<2>(torch::linalg::svd(centred, /*full_matrices=*/false, c10::nullopt));
      auto projection = centred.matmul(vh[0]);
      if (projection.dot(positions.mean(1)).item<double>() < 0) projection = -projection;
      maps.push_back(projection.to(a.dtype()).view({1, 1, a.size(2), a.size(3)}));
    }
    return torch::cat(maps, 0);
  });
  return detail::finish_cam(map, inputs, options);
}

// Layer gradient x activation: A * d score / d A at the layer (Captum's
// LayerGradientXActivation), in the layer's shape.
struct LayerAttributionOptions {
  std::string layer;          // "" = default_cam_layer() (the last 4-D spatial layer)
  bool layer_input = false;
  int64_t batch_size = 16;
  Progress progress = {};
  std::function<void(const std::string& layer)> on_layer = {};  // told which layer was used
};

inline torch::Tensor layer_gradient_x_activation(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                                 const LayerAttributionOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  const auto layer = options.layer.empty() ? default_cam_layer(model, inputs) : options.layer;
  program_of(model).layer(layer);  // unknown names fail here, before any work
  if (options.on_layer) options.on_layer(layer);
  const auto resolved = resolve_target(model, inputs, target);
  return detail::cam_chunks(inputs, options.batch_size, options.progress, [&](int64_t begin, int64_t end) {
    auto result = detail::layer_gradients(model, inputs.slice(0, begin, end), resolved.slice(begin, end),
                                  {{layer, options.layer_input}});
    return result.activations[0] * result.gradients[0];
  });
}

}  // namespace salient
