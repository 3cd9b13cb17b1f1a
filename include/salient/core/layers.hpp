#pragma once
// The layer capability: a model that lists its named layers and exposes their activations
// and the gradients of a target score at them. The layer methods (the Grad-CAM family,
// Score-CAM, Eigen-CAM, layer gradient x activation) are written once over it.
//
// A LayerModel is a Model with three functions found by argument-dependent lookup (free
// functions in the model's namespace, or hidden friends of the model type):
//
//   list_layers(model, example)                -> std::vector<LayerInfo>
//   run_layers(model, inputs, layers)          -> LayerRun<Tensor>        (forward only)
//   layer_gradients(model, inputs, target, layers) -> LayerGradients<Tensor>
//
// with `target` a ResolvedTarget and `layers` a std::vector<LayerRef>. TorchModel gets them
// from the graph executor (salient/graph/layers.hpp); the xtensor AnalyticCnn
// (salient/core/analytic_cnn.hpp) in closed form.
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "salient/core/model.hpp"

namespace salient {

// A layer's output (or, with `input`, the tensor flowing into it).
struct LayerRef {
  std::string name;
  bool input = false;
};

// One addressable layer: its name, output shape for the example input, and the other names
// of the same tensor.
struct LayerInfo {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<std::string> aliases;  // other layers with the same output tensor
  int calls = 1;                     // how often its module runs in one forward pass
};

// The model's output and the tensors at the requested layers.
template <class Tensor>
struct LayerRun {
  Tensor output;
  std::vector<Tensor> activations;
};

// d(target score)/d(layer) for every item (each its own score), with the activations.
template <class Tensor>
struct LayerGradients {
  Tensor scores;                    // [N]
  std::vector<Tensor> activations;  // detached
  std::vector<Tensor> gradients;
  Tensor input_gradient;            // defined when asked for (LibTorch rule runs)
};

template <class M>
concept LayerModel = Model<M> &&
    requires(M& model, const TensorOf<M>& x, const ResolvedTarget<TensorOf<M>>& target,
             const std::vector<LayerRef>& layers) {
      { list_layers(model, x) } -> std::same_as<std::vector<LayerInfo>>;
      { run_layers(model, x, layers) } -> std::same_as<LayerRun<TensorOf<M>>>;
      { layer_gradients(model, x, target, layers) } -> std::same_as<LayerGradients<TensorOf<M>>>;
    };

// The usual Grad-CAM layer: the last computed layer output that is 4-D with a spatial size
// above 1 (of its aliases the shortest name: "layer4", not "layer4.1.relu").
template <LayerModel M>
std::string default_cam_layer(M& model, const TensorOf<M>& example) {
  using B = BackendOf<M>;
  auto layers = list_layers(model, B::slice_rows(example, 0, 1));
  for (auto it = layers.rbegin(); it != layers.rend(); ++it)
    if (it->shape.size() == 4 && it->shape[2] * it->shape[3] > 1) {
      auto best = it->name;
      for (const auto& alias : it->aliases)
        if (alias.size() < best.size()) best = alias;
      return best;
    }
  detail::fail_unsupported("the model has no layer with a 4-D output of spatial size above 1 for an input of shape ",
                           detail::shape_text(B::shape(example)), "; name a layer");
}

}  // namespace salient
