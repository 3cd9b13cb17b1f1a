#pragma once
// The rule-based gradient methods (guided backpropagation, deconvolution, guided Grad-CAM):
// their options and the capability a model needs to run them, LibTorch-free. A RuleModel
// provides the three methods itself (found by ADL), because they change how the network's
// own backward pass treats each ReLU; TorchModel's are in attribution/guided_backprop.hpp
// (the graph executor's rule sets).
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "salient/core/error.hpp"
#include "salient/core/model.hpp"
#include "salient/attribution/relevance_options.hpp"

namespace salient {

struct GuidedBackpropOptions {
  int64_t batch_size = 16;
  Progress progress = {};
};

enum class Interpolation { nearest, bilinear };

inline std::string_view to_string(Interpolation interpolation) {
  return interpolation == Interpolation::nearest ? "nearest" : "bilinear";
}
inline void from_string(std::string_view name, Interpolation& interpolation) {
  if (name == "nearest") interpolation = Interpolation::nearest;
  else if (name == "bilinear") interpolation = Interpolation::bilinear;
  else detail::fail("unknown interpolation '", name, "' (expected nearest or bilinear)");
}

struct GuidedGradCamOptions {
  std::string layer;                                  // "" = default_cam_layer()
  bool layer_input = false;
  Interpolation interpolation = Interpolation::nearest;  // Captum's default
  int64_t batch_size = 16;
  Progress progress = {};
  std::function<void(const std::string& layer)> on_layer = {};
};

template <class Visit>
void for_each_option(GuidedBackpropOptions& o, Visit&& visit) {
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}
template <class Visit>
void for_each_option(GuidedGradCamOptions& o, Visit&& visit) {
  visit("layer", o.layer), visit("layer_input", o.layer_input), visit("interpolation", o.interpolation);
  visit("batch_size", o.batch_size), visit("progress", o.progress), visit("on_layer", o.on_layer);
}

// A model that runs the rule-based methods: ADL guided_backprop, deconvolution,
// guided_grad_cam, and the relevance methods lrp, deeplift, deeplift_shap and gradient_shap
// (attribution/relevance_options.hpp), with the uniform calling convention (the reference
// methods take their baseline(s) after the target).
template <class M>
concept RuleModel = Model<M> &&
    requires(M& model, const TensorOf<M>& x, const TargetOf<M>& target, const GuidedBackpropOptions& guided,
             const GuidedGradCamOptions& cam) {
      { guided_backprop(model, x, target, guided) } -> std::same_as<TensorOf<M>>;
      { deconvolution(model, x, target, guided) } -> std::same_as<TensorOf<M>>;
      { guided_grad_cam(model, x, target, cam) } -> std::same_as<TensorOf<M>>;
    } &&
    requires(M& model, const TensorOf<M>& x, const TargetOf<M>& target, const LrpOptions& lrp_options,
             const DeepLiftOptions& deeplift_options, const GradientShapOptions& shap_options) {
      { lrp(model, x, target, lrp_options) } -> std::same_as<TensorOf<M>>;
      { deeplift(model, x, target, x, deeplift_options) } -> std::same_as<TensorOf<M>>;
      { deeplift_shap(model, x, target, x, deeplift_options) } -> std::same_as<TensorOf<M>>;
      { gradient_shap(model, x, target, x, shap_options) } -> std::same_as<TensorOf<M>>;
    };

}  // namespace salient
