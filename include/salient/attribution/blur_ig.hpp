#pragma once
// Blur integrated gradients (Xu, Venugopalan, Sundararajan 2020, "Attribution in Scale and
// Space"), as PAIR's saliency library computes it (`BlurIG.GetMask`, whose defaults these
// are).
//
// The path runs from the input blurred with a Gaussian of `max_sigma` (pixels) back to the
// input: sigma_i = i * max_sigma / steps (or sqrt(i * max_sigma / steps) with `sqrt`),
// i = 0..steps. The attribution is
//
//   -sum_i (sigma_{i+1} - sigma_i) * dB/dsigma(x, sigma_i) * dF/dx (B(x, sigma_i))
//
// with dB/dsigma the finite difference (B(x, sigma_i + grad_step) - B(x, sigma_i)) /
// grad_step. B is SciPy's gaussian_filter over the two spatial axes (radius int(4 sigma +
// 0.5), zero beyond the border, one axis after the other, rounded to the input's element type
// after each), and the sums run in the input's element type, both as in PAIR; it sums to about
// F(x) - F(B(x, max_sigma)). The blurred points are evaluated `batch_size` at a time.
//
// The blurs run in the model's backend as double-precision matrix products (two per blur,
// through the backend's separable_filter, which on the CPU skips the operators' zero bands),
// not as SciPy's per-pixel loops: ~2.5 ms per blur of a 224x224 photo here instead of up to
// 13 ms, on any device, and equal to SciPy's float32 result except for rare last-bit
// differences (the double sums run in another order; see detail::gaussian_operator).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "salient/core/gaussian_filter.hpp"
#include "salient/core/model.hpp"

namespace salient {

struct BlurIgOptions {
  double max_sigma = 50;     // the blur at the path's start, in pixels
  int64_t steps = 100;       // points on the path
  double grad_step = 0.01;   // the finite difference's sigma step
  bool sqrt = false;         // sigmas spaced as square roots
  int64_t batch_size = 16;   // path points per model call
  Progress progress = {};    // in path points
};

template <class Visit>
void for_each_option(BlurIgOptions& o, Visit&& visit) {
  visit("max_sigma", o.max_sigma), visit("steps", o.steps), visit("grad_step", o.grad_step), visit("sqrt", o.sqrt);
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}

template <Model M>
TensorOf<M> blur_integrated_gradients(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                      const BlurIgOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  if (options.steps < 1 || options.steps > 100'000) detail::fail("Blur IG steps must be in [1, 100000], got ", options.steps);
  if (!(options.max_sigma > 0 && options.max_sigma <= 1000))
    detail::fail("Blur IG max_sigma must be in (0, 1000] pixels, got ", options.max_sigma);
  if (!(options.grad_step > 0 && options.grad_step <= 10))
    detail::fail("Blur IG grad_step must be in (0, 10], got ", options.grad_step);
  detail::check_batch_size(options.batch_size, "Blur IG");
  const auto shape = B::shape(inputs);
  if (shape.size() != 4) detail::fail("Blur IG needs images [N, C, H, W], got ", detail::shape_text(shape));
  const int64_t n = shape[0], height = shape[2], width = shape[3];
  if (height < 1 || width < 1 || height > 8192 || width > 8192)  // the blur operators are H x H and W x W doubles
    detail::fail("Blur IG needs images of 1 to 8192 pixels per side, got ", height, "x", width);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<double> sigmas(static_cast<std::size_t>(options.steps + 1));
  for (int64_t i = 0; i <= options.steps; ++i) {
    const double s = static_cast<double>(i) * options.max_sigma / static_cast<double>(options.steps);
    sigmas[i] = options.sqrt ? std::sqrt(s) : s;
  }
  // Blurs of the path points first..last-1, `extra` pixels further: separable_filter calls of
  // at most ~64 MiB of operators each (one call for a 224x224 chunk of 16).
  const int64_t group = std::max<int64_t>(1, (int64_t{64} << 20) / (8 * (height * height + width * width)));
  auto blur = [&](const typename B::Tensor& image, int64_t first, int64_t last, double extra) {
    std::vector<typename B::Tensor> parts;
    for (int64_t begin = first; begin < last; begin += group) {
      const int64_t end = std::min(last, begin + group);
      auto operators = [&](int64_t length) {
        std::vector<double> matrices(static_cast<std::size_t>((end - begin) * length * length));
        for (int64_t i = begin; i < end; ++i)
          detail::gaussian_operator(length, sigmas[i] + extra, matrices.data() + (i - begin) * length * length);
        return matrices;
      };
      const auto vertical = operators(height), horizontal = width == height ? std::vector<double>{} : operators(width);
      parts.push_back(B::separable_filter(image, vertical, width == height ? vertical : horizontal));  // square: one set
    }
    return B::concat_rows(parts);
  };
  std::vector<typename B::Tensor> sums;
  for (int64_t item = 0; item < n; ++item) {
    const auto image = B::slice_rows(inputs, item, item + 1);
    auto sum = B::zeros_like(image);
    detail::for_each_chunk(options.steps, options.batch_size, [&](int64_t first, int64_t last) {
      const int64_t count = last - first;
      const auto points = blur(image, first, last, 0.0);
      const auto gradient = model.gradient(points, resolved.slice(item, item + 1).tiled(count)).gradient;
      const typename B::Tensor rates = (blur(image, first, last, options.grad_step) - points) / options.grad_step;
      const typename B::Tensor terms = rates * gradient;
      std::vector<double> steps(static_cast<std::size_t>(count));
      for (int64_t i = first; i < last; ++i) steps[i - first] = sigmas[i + 1] - sigmas[i];
      B::add_weighted_blocks(sum, terms, steps);
      if (options.progress) options.progress(item * options.steps + last, n * options.steps);
    });
    sums.push_back(sum * -1.0);
  }
  return B::concat_rows(sums);
}

}  // namespace salient
