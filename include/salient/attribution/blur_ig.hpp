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
// 0.5), zero beyond the border, one axis after the other, rounded to the input's float32
// after each), and the sums run in float32, both as in PAIR; it sums to about
// F(x) - F(B(x, max_sigma)). The blurred points are evaluated `batch_size` at a time.
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
  const int64_t n = shape[0], channels = shape[1], height = shape[2], width = shape[3];
  const auto size = static_cast<std::size_t>(channels * height * width);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<double> sigmas(static_cast<std::size_t>(options.steps + 1));
  for (int64_t i = 0; i <= options.steps; ++i) {
    const double s = static_cast<double>(i) * options.max_sigma / static_cast<double>(options.steps);
    sigmas[i] = options.sqrt ? std::sqrt(s) : s;
  }
  const auto values = B::to_vector(inputs);
  std::vector<float> total(values.size(), 0.0f);
  const float grad_step = static_cast<float>(options.grad_step);
  for (int64_t item = 0; item < n; ++item) {
    const std::vector<float> image(values.begin() + static_cast<std::ptrdiff_t>(item * size),
                                   values.begin() + static_cast<std::ptrdiff_t>((item + 1) * size));
    float* sum = total.data() + item * static_cast<std::ptrdiff_t>(size);
    detail::for_each_chunk(options.steps, options.batch_size, [&](int64_t first, int64_t last) {
      std::vector<double> points;
      std::vector<std::vector<float>> rates;  // dB/dsigma per point
      points.reserve(static_cast<std::size_t>(last - first) * size);
      for (int64_t i = first; i < last; ++i) {
        auto blurred = detail::gaussian_filter(image, channels, height, width, sigmas[i], detail::FilterBoundary::constant);
        auto further = detail::gaussian_filter(image, channels, height, width, sigmas[i] + options.grad_step,
                                               detail::FilterBoundary::constant);
        for (std::size_t k = 0; k < size; ++k) further[k] = (further[k] - blurred[k]) / grad_step;
        points.insert(points.end(), blurred.begin(), blurred.end());
        rates.push_back(std::move(further));
      }
      std::vector<int64_t> chunk_shape{last - first, channels, height, width};
      const auto gradient = B::to_vector(model.gradient(B::from_values(points, chunk_shape, inputs),
                                                        resolved.slice(item, item + 1).tiled(last - first)).gradient);
      for (int64_t i = first; i < last; ++i) {
        const auto step = static_cast<float>(sigmas[i + 1] - sigmas[i]);
        const auto& rate = rates[i - first];
        const double* g = gradient.data() + (i - first) * static_cast<std::ptrdiff_t>(size);
        for (std::size_t k = 0; k < size; ++k) sum[k] += step * (rate[k] * static_cast<float>(g[k]));
      }
      if (options.progress) options.progress(item * options.steps + last, n * options.steps);
    });
  }
  std::vector<double> attribution(total.size());
  for (std::size_t k = 0; k < total.size(); ++k) attribution[k] = -static_cast<double>(total[k]);
  return B::from_values(attribution, shape, inputs);
}

}  // namespace salient
