#pragma once
// Maskers: how a perturbation method "removes" pixels. One image, many masks, one call:
// `masker.outputs(model, image [1,C,H,W], masks [M,1,H,W], options) -> outputs [M, ...]`,
// masks with 1 = keep, evaluated in batches of `batch_size` masked inputs.
//
// This header is the backend-neutral part: the Masker concept, the fill masker
// (x * m + fill * (1 - m), soft masks blend), the layer masker for any model with the
// layer-masking capability (LayerMaskingModel; its arithmetic: masking/layer_masking.hpp)
// and the type-erased BasicAnyMasker. The LibTorch fill baselines and TorchModel's layer
// masking are in masking/maskers.hpp.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/core/model.hpp"

namespace salient {

struct MaskerOptions {
  int64_t batch_size = 32;  // masked inputs per forward pass
  Progress progress = {};   // (masked inputs done, total)
};

namespace detail {
// Masks as [M,1,H,W] for an image [.., C, H, W]: accepts [M,1,H,W], [M,H,W] and [H,W].
template <TensorBackend B>
typename B::Tensor check_masks(const typename B::Tensor& masks, const typename B::Tensor& image) {
  const auto image_shape = B::shape(image);
  if (image_shape.size() != 4) fail("masking needs an image batch [N,C,H,W], got shape ", shape_text(image_shape));
  const int64_t h = image_shape[2], w = image_shape[3];
  const auto given = B::shape(masks);
  auto shape = given;
  if (shape.size() == 2) shape.insert(shape.begin(), 1);
  if (shape.size() == 3) shape.insert(shape.begin() + 1, 1);
  if (shape.size() != 4 || shape[1] != 1 || shape[2] != h || shape[3] != w)
    fail("mask of shape ", shape_text(given), " does not fit an image of ", h, "x", w, " (expected [M,1,", h, ",", w,
         "], [M,", h, ",", w, "] or [", h, ",", w, "])");
  if (shape[0] < 1) fail("no masks given");
  B::check_finite(masks, "mask");
  const auto [lo, hi] = B::value_range(masks);
  if (lo < 0 || hi > 1) fail("mask values must be in [0, 1] (1 = keep), found values in [", lo, ", ", hi, "]");
  return B::reshape(masks, shape);
}

// One image for all masks, or one per mask.
template <TensorBackend B>
void check_image_count(const typename B::Tensor& image, int64_t masks) {
  const int64_t images = B::rows(image);
  if (images != 1 && images != masks)
    fail("masking ", images, " images with ", masks, " masks (expected one image, or one per mask)");
}

// Rows [begin, end) of a per-mask tensor, or the tensor itself when it has one row for all.
template <TensorBackend B>
typename B::Tensor rows_for(const typename B::Tensor& t, int64_t begin, int64_t end) {
  return B::rows(t) == 1 ? t : B::slice_rows(t, begin, end);
}

// Outputs of `total` masked inputs, made and evaluated `batch_size` at a time by fn(begin, end).
template <TensorBackend B, class Fn>
typename B::Tensor masked_chunks(int64_t total, const MaskerOptions& options, Fn&& fn) {
  std::vector<typename B::Tensor> parts;
  for_each_chunk(total, options.batch_size, [&](int64_t begin, int64_t end) {
    parts.push_back(fn(begin, end));
    if (options.progress) options.progress(end, total);
  });
  return B::concat_rows(parts);
}
}  // namespace detail

// The incremental capability: ADL `forward_changed(model, image [1,C,H,W], inputs [k,C,H,W])`
// gives the outputs of inputs that differ from the image only inside small rectangles,
// computed from the image's kept activations, or none where it does not apply
// (masking/incremental.hpp for TorchModel).
template <class M>
concept IncrementalModel = ForwardModel<M> && requires(M& model, const TensorOf<M>& t) {
  { forward_changed(model, t, t) } -> std::same_as<std::optional<TensorOf<M>>>;
};

// Replaces removed pixels in the input by a fill made from the image(s).
template <TensorBackend B>
class BasicFillMasker {
 public:
  using Tensor = typename B::Tensor;
  using Fill = std::function<Tensor(const Tensor& images)>;
  BasicFillMasker(std::string name, Fill fill) : name_(std::move(name)), fill_(std::move(fill)) {}

  // Removed pixels become 0 in model input (Captum's default baseline).
  static BasicFillMasker zero() {
    return {"zero", [](const Tensor& x) { return B::zeros_like(x); }};
  }
  // Removed pixels become one value per channel (model-input units; channel c takes
  // values[min(c, size - 1)]).
  static BasicFillMasker constant(std::vector<float> values, std::string name) {
    if (values.empty()) detail::fail("a constant fill needs at least one channel value");
    return {std::move(name), [values](const Tensor& x) {
              const auto shape = B::shape(x);
              const int64_t rows = shape.at(0), channels = shape.at(1), pixels = shape.at(2) * shape.at(3);
              std::vector<double> fill(static_cast<std::size_t>(rows * channels * pixels));
              for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < channels; ++c)
                  std::fill_n(fill.begin() + (r * channels + c) * pixels, pixels,
                              values[std::min<std::size_t>(static_cast<std::size_t>(c), values.size() - 1)]);
              return B::from_values(fill, shape, x);
            }};
  }
  // Removed pixels come from another image (model-input units, the image's item shape).
  static BasicFillMasker image(Tensor other, std::string name = "image") {
    return {std::move(name), [other](const Tensor& x) {
              auto a = B::shape(other), b = B::shape(x);
              if (a.size() != b.size() || !std::equal(a.begin() + 1, a.end(), b.begin() + 1))
                detail::fail("fill image of shape ", detail::shape_text(a), " does not match inputs ", detail::shape_text(b));
              return other;
            }};
  }

  const std::string& name() const { return name_; }
  // What removed pixels of `images` become (their shape).
  Tensor fill(const Tensor& images) const { return fill_(images); }

  // The masked inputs themselves: x * m + fill * (1 - m), [M,C,H,W].
  Tensor masked_inputs(const Tensor& image, const Tensor& masks) const {
    auto m = detail::check_masks<B>(masks, image);
    detail::check_image_count<B>(image, B::rows(m));
    return B::blend(image, m, fill_(image));
  }

  template <ForwardModel M>
    requires std::same_as<BackendOf<M>, B>
  Tensor outputs(M& model, const Tensor& image, const Tensor& masks, const MaskerOptions& options = {}) const {
    detail::check_inputs<B>(image);
    auto m = detail::check_masks<B>(masks, image);
    const int64_t count = B::rows(m);
    detail::check_image_count<B>(image, count);
    auto fill = fill_(image);
    return detail::masked_chunks<B>(count, options, [&](int64_t begin, int64_t end) {
      auto inputs = B::blend(detail::rows_for<B>(image, begin, end), B::slice_rows(m, begin, end),
                             detail::rows_for<B>(fill, begin, end));
      if constexpr (IncrementalModel<M>)
        if (B::rows(image) == 1)
          if (auto outputs = forward_changed(model, image, inputs)) return Tensor(*outputs);
      return Tensor(model.forward(inputs));
    });
  }

 private:
  std::string name_;
  Fill fill_;
};

// The layer-masking capability: ADL `run_layer_masked(model, inputs [N,C,H,W], masks
// [N,1,H,W])` evaluates the model with removed pixels removed inside the network (either may
// have one row for all; both already checked); a position is kept where its mask is >= 0.5.
template <class M>
concept LayerMaskingModel = ForwardModel<M> && requires(M& model, const TensorOf<M>& t) {
  { run_layer_masked(model, t, t) } -> std::same_as<TensorOf<M>>;
};

// Model outputs for `inputs` [N,C,H,W] with `masks` (1 = keep; [N,1,H,W], [1,1,H,W] or [H,W],
// binarised at 0.5) applied by layer masking, in one forward pass.
template <LayerMaskingModel M>
TensorOf<M> layer_masked_forward(M& model, const TensorOf<M>& inputs, const TensorOf<M>& masks) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  auto m = detail::check_masks<B>(masks, inputs);
  if (B::rows(m) != 1 && B::rows(m) != B::rows(inputs))
    detail::fail(B::rows(inputs), " inputs but ", B::rows(m), " masks (expected one mask, or one per input)");
  return run_layer_masked(model, inputs, m);
}

// Removes pixels inside the network: the model sees only the kept pixels, so neither the
// fill colour nor (as far as the architecture allows) the mask's shape reaches the output.
class LayerMasker {
 public:
  const std::string& name() const { return name_; }

  template <LayerMaskingModel M>
  TensorOf<M> outputs(M& model, const TensorOf<M>& image, const TensorOf<M>& masks, const MaskerOptions& options = {}) const {
    using B = BackendOf<M>;
    detail::check_inputs<B>(image);
    auto m = detail::check_masks<B>(masks, image);
    const int64_t count = B::rows(m);
    detail::check_image_count<B>(image, count);
    return detail::masked_chunks<B>(count, options, [&](int64_t begin, int64_t end) {
      return TensorOf<M>(run_layer_masked(model, detail::rows_for<B>(image, begin, end), B::slice_rows(m, begin, end)));
    });
  }

 private:
  std::string name_ = "layer";
};

template <class K, class M>
concept Masker = ForwardModel<M> &&
    requires(const K& masker, M& model, const TensorOf<M>& t, const MaskerOptions& o) {
      { masker.name() } -> std::convertible_to<std::string>;
      { masker.outputs(model, t, t, o) } -> std::same_as<TensorOf<M>>;
    };

// Any masker for models of type M behind one type (chosen at run time).
template <ForwardModel M>
class BasicAnyMasker {
 public:
  using Tensor = TensorOf<M>;
  template <class K>
    requires(!std::same_as<std::remove_cvref_t<K>, BasicAnyMasker> && Masker<K, M>)
  BasicAnyMasker(K masker) : self_(std::make_shared<Holder<K>>(std::move(masker))) {}

  std::string name() const { return self_->name(); }
  Tensor outputs(M& model, const Tensor& image, const Tensor& masks, const MaskerOptions& options = {}) const {
    return self_->outputs(model, image, masks, options);
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual std::string name() const = 0;
    virtual Tensor outputs(M&, const Tensor&, const Tensor&, const MaskerOptions&) const = 0;
  };
  template <class K>
  struct Holder final : Concept {
    explicit Holder(K k) : masker(std::move(k)) {}
    std::string name() const override { return masker.name(); }
    Tensor outputs(M& model, const Tensor& image, const Tensor& masks, const MaskerOptions& options) const override {
      return masker.outputs(model, image, masks, options);
    }
    K masker;
  };
  std::shared_ptr<const Concept> self_;
};

}  // namespace salient
