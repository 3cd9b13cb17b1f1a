#pragma once
// Maskers: how a perturbation method "removes" pixels. One image, many masks, one call:
// `masker.outputs(model, image [1,C,H,W], masks [M,1,H,W], options) -> outputs [M, ...]`,
// masks with 1 = keep, evaluated in batches of `batch_size` masked inputs.
//
// - FillMasker replaces removed pixels in the input: x * m + fill * (1 - m), with the fill a
//   baseline image (attribution/baselines.hpp): `zero` (the dataset mean colour for
//   ImageNet-normalised models, Captum's default), `black`, `grey`, `blur`, uniform `noise`,
//   or any other image. Soft masks in [0, 1] blend.
// - LayerMasker removes them inside the network (graph/masked_rules.hpp): the network sees
//   only the kept pixels, so neither the fill colour nor (as far as the architecture allows)
//   the mask's shape reaches the output. Masks are binarised at 0.5.
// Every perturbation method and metric takes any type with this interface (the `Masker`
// concept), or the type-erased AnyMasker that make_masker() returns for a name.
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

namespace salient {

struct MaskerOptions {
  int64_t batch_size = 32;  // masked inputs per forward pass
  Progress progress = {};   // (masked inputs done, total)
};

namespace detail {
// Masks as [M,1,H,W] float for an image [.., C, H, W]: accepts [M,1,H,W], [M,H,W] and [H,W].
inline torch::Tensor check_masks(const torch::Tensor& masks, const torch::Tensor& image) {
  if (image.dim() != 4) fail("masking needs an image batch [N,C,H,W], got shape ", shape_string(image));
  auto m = masks;
  if (m.dim() == 2) m = m.unsqueeze(0);
  if (m.dim() == 3) m = m.unsqueeze(1);
  const auto h = image.size(2), w = image.size(3);
  if (m.dim() != 4 || m.size(1) != 1 || m.size(2) != h || m.size(3) != w)
    fail("mask of shape ", shape_string(masks), " does not fit an image of ", h, "x", w,
         " (expected [M,1,", h, ",", w, "], [M,", h, ",", w, "] or [", h, ",", w, "])");
  if (m.size(0) < 1) fail("no masks given");
  m = m.to(image.options());
  TorchBackend::check_finite(m, "mask");
  auto lo = m.min().item<double>(), hi = m.max().item<double>();
  if (lo < 0 || hi > 1) fail("mask values must be in [0, 1] (1 = keep), found values in [", lo, ", ", hi, "]");
  return m;
}

// The image for each mask: one image for all masks, or one per mask.
inline torch::Tensor images_for(const torch::Tensor& image, int64_t masks) {
  if (image.size(0) == masks) return image;
  if (image.size(0) == 1) return image.expand({masks, image.size(1), image.size(2), image.size(3)});
  fail("masking ", image.size(0), " images with ", masks, " masks (expected one image, or one per mask)");
}

template <class Fn>
torch::Tensor masked_chunks(int64_t total, const MaskerOptions& options, Fn&& fn) {
  std::vector<torch::Tensor> parts;
  for_each_chunk(total, options.batch_size, [&](int64_t begin, int64_t end) {
    parts.push_back(fn(begin, end));
    if (options.progress) options.progress(end, total);
  });
  return torch::cat(parts, 0);
}
}  // namespace detail

// Model outputs for `inputs` [N,C,H,W] with `masks` (1 = keep; [N,1,H,W], [1,1,H,W] or
// [H,W]) applied by layer masking, in one forward pass (no autograd).
inline torch::Tensor layer_masked_forward(TorchModel& model, const torch::Tensor& inputs, const torch::Tensor& masks) {
  detail::check_inputs<TorchBackend>(inputs);
  auto m = detail::check_masks(masks, inputs);
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

class FillMasker {
 public:
  using Fill = std::function<torch::Tensor(const torch::Tensor& images)>;
  FillMasker(std::string name, Fill fill) : name_(std::move(name)), fill_(std::move(fill)) {}

  // Removed pixels become the baseline of that kind (in model-input units).
  static FillMasker baseline(BaselineKind kind, BaselineOptions options = {}) {
    return {std::string(to_string(kind)), [kind, options](const torch::Tensor& x) { return make_baseline(kind, x, options); }};
  }
  // Removed pixels come from another image (model-input units, the image's shape).
  static FillMasker image(torch::Tensor other, std::string name = "image") {
    return {std::move(name), [other](const torch::Tensor& x) {
              if (other.sizes().slice(1) != x.sizes().slice(1))
                detail::fail("fill image of shape ", shape_string(other), " does not match inputs ", shape_string(x));
              return other.to(x.options()).expand_as(x);
            }};
  }

  const std::string& name() const { return name_; }

  // The masked inputs themselves: x * m + fill * (1 - m), [M,C,H,W].
  torch::Tensor masked_inputs(const torch::Tensor& image, const torch::Tensor& masks) const {
    auto m = detail::check_masks(masks, image);
    auto x = detail::images_for(image, m.size(0));
    auto fill = fill_(image.size(0) == 1 ? image : x);
    return torch::lerp(fill.expand_as(x), x, m.expand_as(x));
  }

  torch::Tensor outputs(TorchModel& model, const torch::Tensor& image, const torch::Tensor& masks,
                        const MaskerOptions& options = {}) const {
    detail::check_inputs<TorchBackend>(image);
    auto m = detail::check_masks(masks, image);
    auto fill = fill_(image.size(0) == 1 ? image : detail::images_for(image, m.size(0)));
    return detail::masked_chunks(m.size(0), options, [&](int64_t begin, int64_t end) {
      auto x = detail::images_for(image, m.size(0)).slice(0, begin, end);
      auto f = fill.size(0) == 1 ? fill.expand_as(x) : fill.slice(0, begin, end);
      auto mm = m.slice(0, begin, end).expand_as(x);
      return model.forward(torch::lerp(f, x, mm));
    });
  }

 private:
  std::string name_;
  Fill fill_;
};

class LayerMasker {
 public:
  const std::string& name() const { return name_; }
  torch::Tensor outputs(TorchModel& model, const torch::Tensor& image, const torch::Tensor& masks,
                        const MaskerOptions& options = {}) const {
    detail::check_inputs<TorchBackend>(image);
    auto m = detail::check_masks(masks, image);
    return detail::masked_chunks(m.size(0), options, [&](int64_t begin, int64_t end) {
      return layer_masked_forward(model, detail::images_for(image, m.size(0)).slice(0, begin, end),
                                  m.slice(0, begin, end));
    });
  }

 private:
  std::string name_ = "layer";
};

template <class M>
concept Masker = requires(const M& masker, TorchModel& model, const torch::Tensor& t, const MaskerOptions& o) {
  { masker.name() } -> std::convertible_to<std::string>;
  { masker.outputs(model, t, t, o) } -> std::same_as<torch::Tensor>;
};

// Any masker behind one type (chosen at run time).
class AnyMasker {
 public:
  template <Masker M>
    requires(!std::same_as<std::remove_cvref_t<M>, AnyMasker>)
  AnyMasker(M masker) : self_(std::make_shared<Holder<M>>(std::move(masker))) {}

  std::string name() const { return self_->name(); }
  torch::Tensor outputs(TorchModel& model, const torch::Tensor& image, const torch::Tensor& masks,
                        const MaskerOptions& options = {}) const {
    return self_->outputs(model, image, masks, options);
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual std::string name() const = 0;
    virtual torch::Tensor outputs(TorchModel&, const torch::Tensor&, const torch::Tensor&, const MaskerOptions&) const = 0;
  };
  template <class M>
  struct Holder final : Concept {
    explicit Holder(M m) : masker(std::move(m)) {}
    std::string name() const override { return masker.name(); }
    torch::Tensor outputs(TorchModel& model, const torch::Tensor& image, const torch::Tensor& masks,
                          const MaskerOptions& options) const override {
      return masker.outputs(model, image, masks, options);
    }
    M masker;
  };
  std::shared_ptr<const Concept> self_;
};
static_assert(Masker<FillMasker> && Masker<LayerMasker> && Masker<AnyMasker>);

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
