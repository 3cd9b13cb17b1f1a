#pragma once
// Baselines (reference inputs) for integrated gradients and other path methods, in model-
// input space. `zero` is the all-zero model input (Captum's default; the dataset mean
// colour for ImageNet-normalised models). `black` and `grey` are those pixel colours after
// the model's normalisation. `blur` is the input blurred with a Gaussian (Sturmfels,
// Lundberg, Lee 2020, "Visualizing the Impact of Feature Attribution Baselines"); since
// normalisation is affine per channel, blurring the normalised input equals normalising the
// blurred photo. `noise` is uniform [0,1] pixel noise after normalisation (seeded).
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/io/image.hpp"

namespace salient {

enum class BaselineKind { zero, black, grey, blur, noise };

inline BaselineKind parse_baseline(std::string_view name) {
  if (name == "zero") return BaselineKind::zero;
  if (name == "black") return BaselineKind::black;
  if (name == "grey" || name == "gray") return BaselineKind::grey;
  if (name == "blur") return BaselineKind::blur;
  if (name == "noise") return BaselineKind::noise;
  detail::fail("unknown baseline '", name, "' (expected zero, black, grey, blur or noise)");
}

inline std::string_view to_string(BaselineKind kind) {
  switch (kind) {
    case BaselineKind::zero: return "zero";
    case BaselineKind::black: return "black";
    case BaselineKind::grey: return "grey";
    case BaselineKind::blur: return "blur";
    case BaselineKind::noise: return "noise";
  }
  return "?";
}

struct BaselineOptions {
  Normalization normalization = Normalization::imagenet();
  double blur_sigma = 5.0;  // pixels
  uint64_t seed = 0;        // for noise
};

namespace detail {
// Per-channel constant pixel value v after normalisation, shaped [1, C, 1, 1].
inline torch::Tensor normalized_colour(const torch::Tensor& inputs, float v, const Normalization& n) {
  const int64_t channels = inputs.size(1);
  return torch::tensor(n.level(v, channels), inputs.options()).reshape({1, channels, 1, 1});
}

// Separable Gaussian blur with reflect padding, on every channel of [N, C, H, W].
inline torch::Tensor gaussian_blur(const torch::Tensor& x, double sigma) {
  if (!(sigma > 0)) fail("blur sigma must be positive, got ", sigma);
  const int64_t channels = x.size(1);
  int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3 * sigma)));
  radius = std::min({radius, x.size(2) - 1, x.size(3) - 1});
  if (radius < 1) return x.clone();
  auto offsets = torch::arange(-radius, radius + 1, x.options());
  auto kernel = torch::exp(-(offsets * offsets) / (2 * sigma * sigma));
  kernel = kernel / kernel.sum();
  namespace F = torch::nn::functional;
  auto horizontal = kernel.reshape({1, 1, 1, -1}).repeat({channels, 1, 1, 1});
  auto vertical = kernel.reshape({1, 1, -1, 1}).repeat({channels, 1, 1, 1});
  auto y = F::pad(x, F::PadFuncOptions({radius, radius, radius, radius}).mode(torch::kReflect));
  y = F::conv2d(y, horizontal, F::Conv2dFuncOptions().groups(channels));
  return F::conv2d(y, vertical, F::Conv2dFuncOptions().groups(channels));
}
}  // namespace detail

// A baseline with the inputs' shape [N, C, H, W].
inline torch::Tensor make_baseline(BaselineKind kind, const torch::Tensor& inputs, const BaselineOptions& options = {}) {
  if (inputs.dim() != 4) detail::fail("image baselines need inputs [N, C, H, W], got ", inputs.dim(), " dimensions");
  torch::NoGradGuard no_grad;
  switch (kind) {
    case BaselineKind::zero: return torch::zeros_like(inputs);
    case BaselineKind::black: return detail::normalized_colour(inputs, 0.f, options.normalization).expand_as(inputs).clone();
    case BaselineKind::grey: return detail::normalized_colour(inputs, 0.5f, options.normalization).expand_as(inputs).clone();
    case BaselineKind::blur: return detail::gaussian_blur(inputs.detach(), options.blur_sigma);
    case BaselineKind::noise: {
      auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
      auto pixels = at::rand(inputs.sizes(), generator, torch::TensorOptions().dtype(inputs.dtype())).to(inputs.device());
      auto zero = detail::normalized_colour(inputs, 0.f, options.normalization);
      auto one = detail::normalized_colour(inputs, 1.f, options.normalization);
      return zero + pixels * (one - zero);
    }
  }
  return torch::zeros_like(inputs);
}

}  // namespace salient
