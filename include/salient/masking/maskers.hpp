#pragma once
// The LibTorch maskers (the Masker concept and the generic fill masker: masking/masker.hpp).
//
// - FillMasker replaces removed pixels in the input: x * m + fill * (1 - m), with the fill a
//   baseline image (attribution/baselines.hpp): `zero` (the dataset mean colour for
//   ImageNet-normalised models, Captum's default), `black`, `grey`, `blur`, uniform `noise`,
//   or any other image. Soft masks in [0, 1] blend.
// - LayerMasker removes them inside the network (graph/masked_rules.hpp): the network sees
//   only the kept pixels, so neither the fill colour nor (as far as the architecture allows)
//   the mask's shape reaches the output. Masks are binarised at 0.5.
// Every perturbation method and metric takes any type with the masker interface, or the
// type-erased AnyMasker that make_masker() returns for a name.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <torch/torch.h>

#include "salient/attribution/baselines.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/graph/layers.hpp"
#include "salient/graph/masked_rules.hpp"
#include "salient/masking/masker.hpp"

namespace salient {

// Model outputs for `inputs` [N,C,H,W] with `masks` (1 = keep; [N,1,H,W], [1,1,H,W] or
// [H,W]) applied by layer masking, in one forward pass (no autograd).
inline torch::Tensor layer_masked_forward(TorchModel& model, const torch::Tensor& inputs, const torch::Tensor& masks) {
  detail::check_inputs<TorchBackend>(inputs);
  auto m = detail::check_masks<TorchBackend>(masks, inputs);
  if (m.size(0) == 1 && inputs.size(0) > 1)
    m = m.expand({inputs.size(0), 1, inputs.size(2), inputs.size(3)});
  else if (m.size(0) != inputs.size(0))
    detail::fail(inputs.size(0), " inputs but ", m.size(0), " masks (expected one mask, or one per input)");
  m = (m >= 0.5).to(inputs.dtype());
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
  auto outputs = graph::run(program, graph::masked_rules(state), {inputs});
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

class LayerMasker {
 public:
  const std::string& name() const { return name_; }
  torch::Tensor outputs(TorchModel& model, const torch::Tensor& image, const torch::Tensor& masks,
                        const MaskerOptions& options = {}) const {
    detail::check_inputs<TorchBackend>(image);
    auto m = detail::check_masks<TorchBackend>(masks, image);
    detail::check_image_count<TorchBackend>(image, m.size(0));
    return detail::masked_chunks<TorchBackend>(m.size(0), options, [&](int64_t begin, int64_t end) {
      auto x = detail::rows_for<TorchBackend>(image, begin, end);
      return layer_masked_forward(model, x.expand({end - begin, x.size(1), x.size(2), x.size(3)}), m.slice(0, begin, end));
    });
  }

 private:
  std::string name_ = "layer";
};

// Any LibTorch masker, chosen at run time.
using AnyMasker = BasicAnyMasker<TorchModel>;
static_assert(Masker<FillMasker, TorchModel> && Masker<LayerMasker, TorchModel> && Masker<AnyMasker, TorchModel>);

// "layer", or a fill: "zero" / "mean" (the dataset mean colour), "black", "grey", "blur", "noise".
inline AnyMasker make_masker(std::string_view name, const BaselineOptions& options = {}) {
  if (name == "layer") return LayerMasker{};
  if (name == "mean")  // the normalisation's mean colour: 0 in model-input units
    return FillMasker("mean", [options](const torch::Tensor& x) { return make_baseline(BaselineKind::zero, x, options); });
  try {
    return FillMasker::baseline(parse_baseline(name), options);
  } catch (const error&) {
    detail::fail("unknown masker '", name, "' (expected layer, mean, zero, black, grey, blur or noise)");
  }
}

}  // namespace salient
