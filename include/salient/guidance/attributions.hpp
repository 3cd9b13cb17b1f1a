#pragma once
// Differentiable attributions for training (model guidance): one forward pass gives the logits
// for the classification loss and the attributions of the target classes, with the autograd
// graph kept (create_graph) so that a loss on the attributions trains the model's parameters
// (double backpropagation).
//
// The "guidance depth" is where the attributions live: the input (layer ""), a middle layer, or
// the last convolutional layer (any layer name of salient::list_layers). Maps are [N,h,w]:
//   input_x_gradient:     sum over channels of a * d score / d a   (a: the input or the layer)
//   gradient:             sum over channels of d score / d a
//   integrated_gradients: sum over channels of (x - 0) * mean_k d score / d x at x * (k + 0.5) / steps
//                         (midpoint rule, zero baseline; input only)
//   grad_cam:             relu(sum_k mean_hw(d score / d A_k) * A_k) at the layer (default: the
//                         last spatial layer)
// Scores are the raw logits of the target classes (as Captum), or their log-softmax
// probabilities (`score = GuidedScore::log_probability`): a logit's attribution does not see
// evidence the model uses *against the other classes* (a shortcut can hide there, with all of
// the target logit's positive attribution inside the box); the log-probability's does. The model runs as it does for
// attribution: TorchScript graphs were frozen in eval mode when loaded, so batch norm uses its
// running statistics and dropout is off during guided training.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/graph/layers.hpp"

namespace salient {

enum class GuidedMethod { input_x_gradient, gradient, integrated_gradients, grad_cam };

inline GuidedMethod parse_guided_method(std::string_view name) {
  if (name == "ixg" || name == "input_x_gradient") return GuidedMethod::input_x_gradient;
  if (name == "gradient" || name == "saliency") return GuidedMethod::gradient;
  if (name == "ig" || name == "integrated_gradients") return GuidedMethod::integrated_gradients;
  if (name == "gradcam" || name == "grad_cam") return GuidedMethod::grad_cam;
  detail::fail("unknown guided attribution '", name, "' (expected ixg, gradient, ig or gradcam)");
}

enum class GuidedScore { logit, log_probability };

struct GuidedAttributionOptions {
  GuidedMethod method = GuidedMethod::input_x_gradient;
  GuidedScore score = GuidedScore::logit;
  std::string layer;          // "": the input (grad_cam: the last spatial layer)
  int64_t steps = 4;          // integrated gradients
  bool create_graph = true;   // false: attributions for evaluation only (no second backward)
};

struct GuidedForward {
  torch::Tensor logits;        // [N, classes], with autograd (for the classification loss)
  torch::Tensor attributions;  // [N, h, w], differentiable w.r.t. the parameters
};

namespace detail {
// The target's score of each row: its logit or log-probability (class targets), or a custom
// target applied to the logits or log-probabilities.
inline torch::Tensor target_logits(const torch::Tensor& logits, const ResolvedTarget<torch::Tensor>& target,
                                   GuidedScore score = GuidedScore::logit) {
  if (logits.dim() != 2) fail("guided attributions need logits [N, classes], got ", shape_string(logits));
  const auto& scored = score == GuidedScore::logit ? logits : torch::log_softmax(logits, 1);
  return TorchBackend::select(scored, target);
}
}  // namespace detail

// Logits and differentiable attributions of `target` (a class for all, one per input, top-1,
// or a custom score of the logits).
inline GuidedForward guided_forward(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                    const GuidedAttributionOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  if (inputs.dim() != 4) detail::fail("guided attributions need images [N,C,H,W], got shape ", shape_string(inputs));
  const auto resolved = resolve_target(model, inputs, target);
  torch::AutoGradMode grad(true);
  const bool at_input = options.layer.empty() && options.method != GuidedMethod::grad_cam;
  auto grad_of = [&](const torch::Tensor& scores, const torch::Tensor& wrt) {
    return torch::autograd::grad({scores.sum()}, {wrt}, {}, /*retain_graph=*/true, options.create_graph,
                                 /*allow_unused=*/true)[0];
  };
  if (options.method == GuidedMethod::integrated_gradients) {
    if (!at_input) detail::fail("guided integrated gradients are computed at the input only (layer '", options.layer, "' given)");
    if (options.steps < 1) detail::fail("integrated gradients need at least 1 step, got ", options.steps);
    auto x = inputs.detach();
    std::vector<torch::Tensor> scaled;
    for (int64_t k = 0; k < options.steps; ++k)
      scaled.push_back(x * ((static_cast<double>(k) + 0.5) / static_cast<double>(options.steps)));
    auto path = torch::cat(scaled).requires_grad_(true);
    auto g = grad_of(detail::target_logits(model(path), resolved.tiled(options.steps), options.score), path);
    if (!g.defined()) g = torch::zeros_like(path);
    auto mean_gradient = g.view({options.steps, x.size(0), x.size(1), x.size(2), x.size(3)}).mean(0);
    auto logits = model(x);
    detail::target_logits(logits, resolved);  // checks the target
    return {logits, (x * mean_gradient).sum(1)};
  }
  torch::Tensor logits, activation;
  if (at_input) {
    activation = inputs.detach().requires_grad_(true);
    logits = model(activation);
  } else {
    const auto layer = options.layer.empty() ? default_cam_layer(model, inputs) : options.layer;
    auto run = run_layers(model, inputs.detach(), {{layer}});
    logits = run.output;
    activation = run.activations[0];
    if (activation.dim() != 4)
      detail::fail("layer '", layer, "' has output shape ", shape_string(activation), "; guided attributions need a 4-D layer");
  }
  auto g = grad_of(detail::target_logits(logits, resolved, options.score), activation);
  if (!g.defined()) g = torch::zeros_like(activation);
  switch (options.method) {
    case GuidedMethod::input_x_gradient: return {logits, (activation * g).sum(1)};
    case GuidedMethod::gradient: return {logits, g.sum(1)};
    case GuidedMethod::grad_cam: return {logits, torch::relu((g.mean({2, 3}, true) * activation).sum(1))};
    case GuidedMethod::integrated_gradients: break;
  }
  detail::fail("unknown guided attribution method");
}

}  // namespace salient
