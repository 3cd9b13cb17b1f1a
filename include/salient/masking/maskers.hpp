#pragma once
// The LibTorch maskers (the Masker concept and the generic fill masker: masking/masker.hpp).
//
// - FillMasker replaces removed pixels in the input: x * m + fill * (1 - m), with the fill a
//   baseline image (attribution/baselines.hpp): `zero` (the dataset mean colour for
//   ImageNet-normalised models, Captum's default), `black`, `grey`, `blur`, uniform `noise`,
//   or any other image. Soft masks in [0, 1] blend.
// - LayerMasker (masking/masker.hpp) removes them inside the network; TorchModel's layer
//   masking is run_layer_masked below (graph/masked_rules.hpp). Masks are binarised at 0.5.
// Every perturbation method and metric takes any type with the masker interface, or the
// type-erased AnyMasker that make_masker() returns for a name.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <torch/torch.h>

#include "salient/attribution/baselines.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/graph/layers.hpp"
#include "salient/masking/imputation.hpp"
#include "salient/masking/incremental.hpp"
#include "salient/graph/masked_rules.hpp"
#include "salient/masking/masker.hpp"

namespace salient {

// Layer masking of a TorchModel (the LayerMaskingModel capability, masking/masker.hpp): the
// executor runs the model with the masked rule set, one forward pass without autograd.
inline torch::Tensor run_layer_masked(TorchModel& model, const torch::Tensor& inputs, const torch::Tensor& masks) {
  const int64_t rows = std::max(inputs.size(0), masks.size(0));
  auto x = inputs.expand({rows, inputs.size(1), inputs.size(2), inputs.size(3)});
  auto m = (masks >= 0.5).to(inputs.dtype()).expand({rows, 1, inputs.size(2), inputs.size(3)});
  const auto& program = program_of(model);
  for (const auto& op : program.body.ops)
    if (!op.blocks.empty())
      for (auto v : op.outputs)
        if (program.is_tensor[v])
          detail::fail("layer masking cannot follow a tensor through control flow ('", op.kind, "' at '", op.path, "')");
  auto state = std::make_shared<graph::MaskState>(program.value_count());
  // The removed pixels still hold the image: no rule lets them reach a kept position.
  state->set(program.body.inputs.at(0), graph::detail::simplify(m), true);
  torch::NoGradGuard no_grad;
  auto outputs = graph::run(program, graph::masked_rules(state), {x});
  auto output = outputs.at(0);
  if (output.isTensor()) output = state->clean(program.body.outputs.at(0), output.toTensor());
  return TorchModel::output_tensor(output, model.options().output_element);
}

// The generic fill masker with LibTorch's baselines (attribution/baselines.hpp).
class FillMasker : public BasicFillMasker<TorchBackend> {
 public:
  using BasicFillMasker::BasicFillMasker;
  FillMasker(BasicFillMasker masker) : BasicFillMasker(std::move(masker)) {}

  // Removed pixels become the baseline of that kind (in model-input units).
  static FillMasker baseline(BaselineKind kind, BaselineOptions options = {}) {
    return {std::string(to_string(kind)), [kind, options](const torch::Tensor& x) { return make_baseline(kind, x, options); }};
  }
};

// Any LibTorch masker, chosen at run time.
using AnyMasker = BasicAnyMasker<TorchModel>;
static_assert(LayerMaskingModel<TorchModel> && IncrementalModel<TorchModel> && Masker<FillMasker, TorchModel> && Masker<LayerMasker, TorchModel> &&
              Masker<BasicImputationMasker<TorchBackend>, TorchModel> && Masker<AnyMasker, TorchModel>);

// "layer", "imputation" (noisy linear imputation, noise 0.01, seeded by options.seed), or a fill:
// "zero" / "mean" (the dataset mean colour), "black", "grey", "blur", "noise".
inline AnyMasker make_masker(std::string_view name, const BaselineOptions& options = {}) {
  if (name == "layer") return LayerMasker{};
  if (name == "imputation") return BasicImputationMasker<TorchBackend>(0.01, options.seed);
  if (name == "mean")  // the normalisation's mean colour: 0 in model-input units
    return FillMasker("mean", [options](const torch::Tensor& x) { return make_baseline(BaselineKind::zero, x, options); });
  try {
    return FillMasker::baseline(parse_baseline(name), options);
  } catch (const error&) {
    detail::fail("unknown masker '", name, "' (expected layer, imputation, mean, zero, black, grey, blur or noise)");
  }
}

}  // namespace salient
