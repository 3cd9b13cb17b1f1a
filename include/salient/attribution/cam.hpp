#pragma once
// Class activation maps at a layer of any LayerModel (core/layers.hpp): a TorchScript or
// Sequential-style TorchModel through the graph executor, or an analytic xtensor model.
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
//
// The model runs in the backend (autograd, the executor); the map arithmetic on the
// activations and gradients is written once, in double precision on the host.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "salient/attribution/detail/perturbation_engine.hpp"
#include "salient/core/layers.hpp"
#include "salient/core/resample.hpp"
#include "salient/masking/masker.hpp"

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

template <class Visit>
void for_each_option(CamOptions& o, Visit&& visit) {
  visit("layer", o.layer), visit("layer_input", o.layer_input), visit("relu", o.relu), visit("upsample", o.upsample);
  visit("batch_size", o.batch_size), visit("progress", o.progress), visit("on_layer", o.on_layer);
}

enum class CamKind { grad_cam, grad_cam_plus_plus, xgrad_cam, layer_cam };

namespace detail {

template <TensorBackend B>
void check_cam_inputs(const typename B::Tensor& inputs) {
  const auto shape = B::shape(inputs);
  if (shape.size() != 4) fail("CAM methods need image batches [N,C,H,W], got shape ", shape_text(shape));
  check_inputs<B>(inputs);
}

// The layer to use: the requested one, or the default CAM layer; reported to `on_layer`.
template <LayerModel M>
std::string chosen_layer(M& model, const TensorOf<M>& inputs, const std::string& requested,
                         const std::function<void(const std::string&)>& on_layer) {
  auto layer = requested.empty() ? default_cam_layer(model, inputs) : requested;
  if (on_layer) on_layer(layer);
  return layer;
}

// A 4-D activation [n, c, h, w] on the host.
struct Activation {
  int64_t n = 0, c = 0, h = 0, w = 0;
  std::vector<double> values;
  const double* plane(int64_t item, int64_t channel) const { return values.data() + (item * c + channel) * h * w; }
};

template <TensorBackend B>
Activation host_activation(const typename B::Tensor& a, const std::string& layer) {
  const auto shape = B::shape(a);
  if (shape.size() != 4)
    fail("layer '", layer, "' has output shape ", shape_text(shape), "; CAM methods need a 4-D [N,C,h,w] layer");
  return {shape[0], shape[1], shape[2], shape[3], B::to_vector(a)};
}

// The maps [n, 1, h, w] from activations and their gradients, before ReLU and upsampling.
inline std::vector<double> cam_from_gradients(CamKind kind, const Activation& a, const std::vector<double>& gradients) {
  const int64_t hw = a.h * a.w;
  std::vector<double> maps(static_cast<std::size_t>(a.n * hw), 0.0);
  for (int64_t i = 0; i < a.n; ++i)
    for (int64_t c = 0; c < a.c; ++c) {
      const double* act = a.plane(i, c);
      const double* g = gradients.data() + (act - a.values.data());
      double* map = maps.data() + i * hw;
      if (kind == CamKind::layer_cam) {
        for (int64_t p = 0; p < hw; ++p) map[p] += std::max(g[p], 0.0) * act[p];
        continue;
      }
      double weight = 0, activation_sum = 0;
      for (int64_t p = 0; p < hw; ++p) activation_sum += act[p];
      for (int64_t p = 0; p < hw; ++p) {
        if (kind == CamKind::grad_cam) {
          weight += g[p];
        } else if (kind == CamKind::grad_cam_plus_plus) {
          const double g2 = g[p] * g[p];
          const double alpha = g[p] == 0 ? 0.0 : g2 / (2 * g2 + activation_sum * g2 * g[p] + 1e-6);
          weight += std::max(g[p], 0.0) * alpha;
        } else {  // xgrad_cam
          weight += g[p] * act[p] / (activation_sum + 1e-7);
        }
      }
      if (kind == CamKind::grad_cam) weight /= static_cast<double>(hw);
      for (int64_t p = 0; p < hw; ++p) map[p] += weight * act[p];
    }
  return maps;
}

// ReLU and bilinear upsampling (align_corners = false) of maps [n, 1, h, w], as tensors
// like the inputs.
template <TensorBackend B>
typename B::Tensor finish_cam(std::vector<double> maps, int64_t n, int64_t h, int64_t w,
                              const typename B::Tensor& inputs, const CamOptions& options) {
  if (options.relu)
    for (auto& v : maps) v = std::max(v, 0.0);
  const auto shape = B::shape(inputs);
  if (options.upsample && (h != shape[2] || w != shape[3])) {
    maps = resize_bilinear(maps, n, h, w, shape[2], shape[3], /*align_corners=*/false);
    h = shape[2], w = shape[3];
  }
  return B::from_values(maps, {n, 1, h, w}, inputs);
}

// Maps made chunk by chunk: fn(begin, end) appends [end - begin, 1, h, w] and sets h, w.
struct CamMaps {
  std::vector<double> values;
  int64_t h = 0, w = 0;
};
}  // namespace detail

// Grad-CAM, Grad-CAM++, XGrad-CAM or Layer-CAM (see the header comment).
template <LayerModel M>
TensorOf<M> gradient_cam(CamKind kind, M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                         const CamOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_cam_inputs<B>(inputs);
  const std::vector<LayerRef> layers{{detail::chosen_layer(model, inputs, options.layer, options.on_layer), options.layer_input}};
  const auto resolved = resolve_target(model, inputs, target);
  const int64_t n = B::rows(inputs);
  detail::CamMaps maps;
  detail::for_each_chunk(n, options.batch_size, [&](int64_t begin, int64_t end) {
    auto result = layer_gradients(model, B::slice_rows(inputs, begin, end), resolved.slice(begin, end), layers);
    const auto a = detail::host_activation<B>(result.activations[0], layers[0].name);
    const auto part = detail::cam_from_gradients(kind, a, B::to_vector(result.gradients[0]));
    maps.values.insert(maps.values.end(), part.begin(), part.end());
    maps.h = a.h, maps.w = a.w;
    if (options.progress) options.progress(end, n);
  });
  return detail::finish_cam<B>(std::move(maps.values), n, maps.h, maps.w, inputs, options);
}

template <LayerModel M>
TensorOf<M> grad_cam(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const CamOptions& options = {}) {
  return gradient_cam(CamKind::grad_cam, model, inputs, target, options);
}
template <LayerModel M>
TensorOf<M> grad_cam_plus_plus(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                               const CamOptions& options = {}) {
  return gradient_cam(CamKind::grad_cam_plus_plus, model, inputs, target, options);
}
template <LayerModel M>
TensorOf<M> xgrad_cam(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const CamOptions& options = {}) {
  return gradient_cam(CamKind::xgrad_cam, model, inputs, target, options);
}
template <LayerModel M>
TensorOf<M> layer_cam(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const CamOptions& options = {}) {
  return gradient_cam(CamKind::layer_cam, model, inputs, target, options);
}

// Score-CAM: C forward passes per image (C = the layer's channels), through the chunk loop of
// the perturbation family (the masked inputs of `batch_size` channels at a time).
template <LayerModel M>
TensorOf<M> score_cam(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const CamOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_cam_inputs<B>(inputs);
  const std::vector<LayerRef> layers{{detail::chosen_layer(model, inputs, options.layer, options.on_layer), options.layer_input}};
  const auto resolved = resolve_target(model, inputs, target);
  const auto shape = B::shape(inputs);
  const int64_t n = shape[0], height = shape[2], width = shape[3];
  const PerturbationOptions<M> evaluation{.masker = BasicFillMasker<B>::zero(), .batch_size = options.batch_size,
                                          .progress = options.progress};
  std::optional<detail::EvaluationCounter> counter;  // n * channels evaluations, known after the first item
  detail::CamMaps maps;
  for (int64_t i = 0; i < n; ++i) {
    const auto item = B::slice_rows(inputs, i, i + 1);
    const auto a = detail::host_activation<B>(run_layers(model, item, layers).activations[0], layers[0].name);
    const int64_t hw = a.h * a.w;
    if (!counter) counter.emplace(evaluation.progress, n * a.c);
    // Channels [begin, end) upsampled (align_corners = true) and min-max scaled: the masks.
    auto channel_masks = [&](int64_t begin, int64_t end) {
      const std::vector<double> planes(a.plane(0, begin), a.plane(0, end - 1) + hw);
      auto masks = detail::resize_bilinear(planes, end - begin, a.h, a.w, height, width, /*align_corners=*/true);
      const int64_t size = height * width;
      for (int64_t k = 0; k < end - begin; ++k) {
        const auto first = masks.begin() + k * size, last = first + size;
        const auto [lo, hi] = std::minmax_element(first, last);
        const double low = *lo, range = *hi - *lo + 1e-8;
        std::for_each(first, last, [&](double& v) { v = (v - low) / range; });
      }
      return detail::mask_tensor<B>(masks, height, width, inputs);
    };
    const auto scores = detail::masked_scores(model, item, resolved.slice(i, i + 1), a.c, channel_masks, evaluation, *counter);
    // weights = softmax over channels of the scores; map = sum_c weight_c * A_c.
    const double top = *std::max_element(scores.begin(), scores.end());
    double total = 0;
    std::vector<double> weights(scores.size());
    for (std::size_t c = 0; c < scores.size(); ++c) total += weights[c] = std::exp(scores[c] - top);
    std::vector<double> map(static_cast<std::size_t>(hw), 0.0);
    for (int64_t c = 0; c < a.c; ++c)
      for (int64_t p = 0; p < hw; ++p) map[p] += weights[c] / total * a.plane(0, c)[p];
    maps.values.insert(maps.values.end(), map.begin(), map.end());
    maps.h = a.h, maps.w = a.w;
  }
  return detail::finish_cam<B>(std::move(maps.values), n, maps.h, maps.w, inputs, options);
}

// Eigen-CAM: the first principal component of the layer's activations (no target needed;
// the target argument is accepted for the common calling convention and ignored).
template <LayerModel M>
TensorOf<M> eigen_cam(M& model, const TensorOf<M>& inputs, const TargetOf<M>& /*target*/, const CamOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_cam_inputs<B>(inputs);
  const std::vector<LayerRef> layers{{detail::chosen_layer(model, inputs, options.layer, options.on_layer), options.layer_input}};
  const int64_t n = B::rows(inputs);
  detail::CamMaps maps;
  detail::for_each_chunk(n, options.batch_size, [&](int64_t begin, int64_t end) {
    const auto a = detail::host_activation<B>(run_layers(model, B::slice_rows(inputs, begin, end), layers).activations[0],
                                              layers[0].name);
    const int64_t hw = a.h * a.w;
    for (int64_t i = 0; i < a.n; ++i) {
      Eigen::MatrixXd positions(hw, a.c);  // [hw, C]
      for (int64_t c = 0; c < a.c; ++c) positions.col(c) = Eigen::Map<const Eigen::VectorXd>(a.plane(i, c), hw);
      const Eigen::MatrixXd centred = positions.rowwise() - positions.colwise().mean();
      const Eigen::BDCSVD<Eigen::MatrixXd> svd(centred, Eigen::ComputeThinV);
      Eigen::VectorXd projection = centred * svd.matrixV().col(0);
      if (projection.dot(positions.rowwise().mean()) < 0) projection = -projection;
      maps.values.insert(maps.values.end(), projection.data(), projection.data() + hw);
    }
    maps.h = a.h, maps.w = a.w;
    if (options.progress) options.progress(end, n);
  });
  return detail::finish_cam<B>(std::move(maps.values), n, maps.h, maps.w, inputs, options);
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

template <class Visit>
void for_each_option(LayerAttributionOptions& o, Visit&& visit) {
  visit("layer", o.layer), visit("layer_input", o.layer_input);
  visit("batch_size", o.batch_size), visit("progress", o.progress), visit("on_layer", o.on_layer);
}

template <LayerModel M>
TensorOf<M> layer_gradient_x_activation(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                        const LayerAttributionOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  const std::vector<LayerRef> layers{{detail::chosen_layer(model, inputs, options.layer, options.on_layer), options.layer_input}};
  const auto resolved = resolve_target(model, inputs, target);
  const int64_t n = B::rows(inputs);
  std::vector<TensorOf<M>> parts;
  detail::for_each_chunk(n, options.batch_size, [&](int64_t begin, int64_t end) {
    auto result = layer_gradients(model, B::slice_rows(inputs, begin, end), resolved.slice(begin, end), layers);
    parts.push_back(TensorOf<M>(result.activations[0] * result.gradients[0]));
    if (options.progress) options.progress(end, n);
  });
  return B::concat_rows(parts);
}

}  // namespace salient
