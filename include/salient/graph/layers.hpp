#pragma once
// Named layers of a TorchModel: listing them, their activations and gradients, and runs of
// the model under a rule set (graph/rules.hpp).
//
// A layer is a call of a submodule, named by its module path ("layer4", "features.18",
// "layer1.0.relu"); a module called more than once (torchvision's BasicBlock reuses its
// ReLU) is named by its last call, and each call k also as "<path>@k". Several names can
// refer to the same tensor ("layer4", "layer4.1" and "layer4.1.relu" all end with the same
// ReLU); list_layers reports these aliases.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "salient/core/layers.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/graph/executor.hpp"
#include "salient/graph/sequential.hpp"
#include "salient/graph/torchscript.hpp"

namespace salient {

// The executor's program for `model`, made on first use and shared by copies of the model.
inline const graph::Program& program_of(TorchModel& model) {
  return model.derived<graph::Program>([&] {
    if (model.module()) return graph::from_torchscript(*model.module());
    if (model.nn_module()) return graph::from_sequential(model.nn_module());
    detail::fail_unsupported("layers and rule sets need a TorchScript module or a torch::nn::Sequential-style module; "
                             "this model was made from a C++ function");
  });
}

namespace detail {
inline graph::ValueId layer_value(const graph::Program& program, const LayerRef& ref) {
  const auto& layer = program.layer(ref.name);
  if (!ref.input) return layer.output;
  if (layer.inputs.size() != 1)
    fail_unsupported("layer '", ref.name, "' has ", layer.inputs.size(), " tensor inputs; its input is not one tensor "
         "(use its output, or the output of the layer before it)");
  return layer.inputs.front();
}
}  // namespace detail

// The model's output and the tensors at `layers`, computed under `rules`. Autograd records
// the run when grad mode is on; a captured tensor that does not require grad (nothing
// before it does) is made a leaf that does, so its gradient can always be taken.
// `program`: the model's program (program_of) or one made from it (graph::canonical_program).
inline LayerRun<torch::Tensor> run_layers(TorchModel& model, const graph::Program& program, const torch::Tensor& inputs,
                                          const std::vector<LayerRef>& layers, const graph::RuleSet& rules) {
  graph::Watch watch;
  for (const auto& layer : layers) watch.values.push_back(detail::layer_value(program, layer));
  LayerRun<torch::Tensor> run;
  run.activations.resize(layers.size());
  const bool grad = torch::GradMode::is_enabled();
  watch.on_value = [&](graph::ValueId v, graph::Value& value) {
    if (!value.isTensor()) return;
    if (grad && !value.toTensor().requires_grad()) value = value.toTensor().detach().requires_grad_(true);
    for (std::size_t i = 0; i < watch.values.size(); ++i)
      if (watch.values[i] == v) run.activations[i] = value.toTensor();
  };
  auto outputs = graph::run(program, rules, {inputs}, &watch);
  if (outputs.size() != 1) detail::fail(program.source, " returned ", outputs.size(), " values, expected one");
  run.output = TorchModel::output_tensor(outputs.front(), model.options().output_element);
  // Several threads may run one model: the flag is read and set atomically (checking twice is harmless).
  if (program.check_against_forward && !std::atomic_ref<bool>(program.checked).load()) {
    torch::NoGradGuard no_grad;
    auto expected = model.forward(inputs);
    if (!expected.sizes().equals(run.output.sizes()) || !torch::allclose(expected, run.output.detach(), 1e-4, 1e-5))
      detail::fail_unsupported(program.source, ": running its children in registration order does not reproduce its "
                   "forward; wrap the model in a torch::nn::Sequential");
    std::atomic_ref<bool>(program.checked).store(true);
  }
  for (std::size_t i = 0; i < layers.size(); ++i)
    if (!run.activations[i].defined())
      detail::fail("layer '", layers[i].name, "' was not computed for an input of shape ", shape_string(inputs));
  return run;
}
inline LayerRun<torch::Tensor> run_layers(TorchModel& model, const torch::Tensor& inputs, const std::vector<LayerRef>& layers,
                                          const graph::RuleSet& rules = graph::plain_rules()) {
  return run_layers(model, program_of(model), inputs, layers, rules);
}

// d(target score)/d(layer) for every item (each its own score), with the activations; under
// `rules` (plain: ordinary gradients). `input_gradient` adds d score / d input.
// This form takes a target already bound to the batch (the methods resolve top-1 once, then
// chunk); the one below resolves any Target.
inline LayerGradients<torch::Tensor> layer_gradients(TorchModel& model, const graph::Program& program,
                                                     const torch::Tensor& inputs, const ResolvedTarget<torch::Tensor>& target,
                                                     const std::vector<LayerRef>& layers, const graph::RuleSet& rules,
                                                     bool input_gradient) {
  torch::AutoGradMode enable_grad(true);
  auto x = inputs.detach().requires_grad_(input_gradient);
  auto run = run_layers(model, program, x, layers, rules);
  auto scores = TorchBackend::select(run.output, target);
  std::vector<torch::Tensor> wrt = run.activations;
  if (input_gradient) wrt.push_back(x);
  auto grads = torch::autograd::grad({scores}, wrt, {torch::ones_like(scores)}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  LayerGradients<torch::Tensor> out;
  out.scores = scores.detach();
  for (std::size_t i = 0; i < layers.size(); ++i) {
    out.activations.push_back(run.activations[i].detach());
    out.gradients.push_back(grads[i].defined() ? grads[i] : torch::zeros_like(run.activations[i]));
  }
  if (input_gradient) out.input_gradient = grads.back().defined() ? grads.back() : torch::zeros_like(x);
  return out;
}
inline LayerGradients<torch::Tensor> layer_gradients(TorchModel& model, const torch::Tensor& inputs,
                                                     const ResolvedTarget<torch::Tensor>& target,
                                                     const std::vector<LayerRef>& layers,
                                                     const graph::RuleSet& rules = graph::plain_rules(),
                                                     bool input_gradient = false) {
  return layer_gradients(model, program_of(model), inputs, target, layers, rules, input_gradient);
}

inline LayerGradients<torch::Tensor> layer_gradients(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                      const std::vector<LayerRef>& layers, const graph::RuleSet& rules = graph::plain_rules(),
                                      bool input_gradient = false) {
  detail::check_inputs<TorchBackend>(inputs);
  return layer_gradients(model, inputs, resolve_target(model, inputs, target), layers, rules, input_gradient);
}

// Every addressable layer with its output shape on `example`, in the order outputs are computed.
inline std::vector<LayerInfo> list_layers(TorchModel& model, const torch::Tensor& example) {
  const auto& program = program_of(model);
  graph::Watch watch;
  for (const auto& layer : program.layers) watch.values.push_back(layer.output);
  std::vector<std::vector<int64_t>> shapes(program.value_count());
  std::vector<graph::ValueId> order;
  watch.on_value = [&](graph::ValueId v, graph::Value& value) {
    if (value.isTensor() && shapes[v].empty()) {
      shapes[v] = value.toTensor().sizes().vec();
      order.push_back(v);
    }
  };
  {
    torch::NoGradGuard no_grad;
    graph::run(program, graph::plain_rules(), {example}, &watch);
  }
  std::vector<LayerInfo> layers;
  for (auto v : order)
    for (const auto& layer : program.layers) {
      if (layer.output != v) continue;
      LayerInfo info{layer.name, shapes[v], {}, layer.calls};
      for (const auto& alias : program.aliases(layer))
        if (alias != layer.name) info.aliases.push_back(alias);
      layers.push_back(std::move(info));
    }
  return layers;
}

static_assert(LayerModel<TorchModel>);

}  // namespace salient
