#pragma once
// scipy.ndimage.gaussian_filter over the height and width of planar images, number for number:
// truncate = 4, weights normalised in double, each output the centre tap then the pairs at
// offsets radius..1 summed in double, rounded to the element type after each axis (height
// first). The segmenters use it ("reflect", as skimage.filters.gaussian); Blur IG applies the
// same weights ("constant": zeros outside) as matrices, `gaussian_operator`, through its
// backend, and its tests check those against this. LibTorch-free.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace salient::detail {

enum class FilterBoundary { reflect, constant };  // scipy.ndimage's mode names

// Largest smoothing accepted by the segmenters, in pixels (the kernel reaches 4 sigma).
inline constexpr double max_smoothing_sigma = 1000;

// scipy.ndimage's "reflect" boundary (d c b a | a b c d | d c b a) for any offset.
inline int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// SciPy's weights for sigma > 0: weights[k] for the offsets +-k, k = 0..int(4 sigma + 0.5).
inline std::vector<double> gaussian_weights(double sigma) {
  const auto radius = static_cast<int64_t>(4.0 * sigma + 0.5);
  std::vector<double> weights(static_cast<std::size_t>(radius + 1));
  double total = 0;
  for (int64_t k = -radius; k <= radius; ++k) total += std::exp(-0.5 / (sigma * sigma) * static_cast<double>(k * k));
  for (int64_t k = 0; k <= radius; ++k) weights[k] = std::exp(-0.5 / (sigma * sigma) * static_cast<double>(k * k)) / total;
  return weights;
}

// The same filter along one line of `length` values under "constant" (zeros outside), as a
// row-major length x length matrix (row = output) written to `matrix`; sigma <= 0 gives the
// identity. Applied as matrix products it sums in another order than SciPy, so a result
// rounded to float can differ from SciPy's in its last bit where the double sum lies within
// ~1e-16 of a rounding boundary (1 value in 30 million over Blur IG's default path).
inline void gaussian_operator(int64_t length, double sigma, double* matrix) {
  std::fill(matrix, matrix + length * length, 0.0);
  const auto weights = sigma > 0 ? gaussian_weights(sigma) : std::vector<double>{1.0};
  const auto radius = static_cast<int64_t>(weights.size()) - 1;
  for (int64_t i = 0; i < length; ++i)
    for (int64_t j = std::max<int64_t>(0, i - radius); j <= std::min(length - 1, i + radius); ++j)
      matrix[i * length + j] = weights[static_cast<std::size_t>(std::abs(i - j))];
}

// `planes` planes of height x width values; sigma <= 0 returns the image unchanged.
template <class T>
std::vector<T> gaussian_filter(const std::vector<T>& image, int64_t planes, int64_t height, int64_t width,
                               double sigma, FilterBoundary boundary) {
  if (!(sigma > 0)) return image;
  const auto weights = gaussian_weights(sigma);
  const auto radius = static_cast<int64_t>(weights.size()) - 1;
  // One pass along lines of `length` values `stride` apart, through a padded copy of each line.
  // Under "constant", offsets past the line add exact zeros, so they are skipped. The loop
  // over outputs is innermost so that the compiler vectorises without reordering any sum.
  auto pass = [&](const std::vector<T>& in, int64_t length, int64_t stride, int64_t lines, int64_t line_stride,
                  int64_t line_group, int64_t group_stride) {
    std::vector<T> out(in.size());
    const int64_t span = boundary == FilterBoundary::constant ? std::min(radius, length - 1) : radius;
    std::vector<double> padded(static_cast<std::size_t>(length + 2 * span), 0.0), sum(static_cast<std::size_t>(length));
    double* line = padded.data() + span;
    for (int64_t g = 0; g < lines / line_group; ++g)
      for (int64_t l = 0; l < line_group; ++l) {
        const int64_t start = g * group_stride + l * line_stride;
        if (boundary == FilterBoundary::reflect)
          for (int64_t i = -span; i < length + span; ++i) line[i] = in[start + reflect_index(i, length) * stride];
        else
          for (int64_t i = 0; i < length; ++i) line[i] = in[start + i * stride];
        for (int64_t i = 0; i < length; ++i) sum[i] = line[i] * weights[0];
        for (int64_t k = span; k >= 1; --k) {
          const double w = weights[k];
          const double *left = line - k, *right = line + k;
          for (int64_t i = 0; i < length; ++i) sum[i] += (left[i] + right[i]) * w;
        }
        for (int64_t i = 0; i < length; ++i) out[start + i * stride] = static_cast<T>(sum[i]);
      }
    return out;
  };
  const int64_t plane = height * width;
  auto vertical = pass(image, height, width, planes * width, 1, width, plane);  // along the height
  return pass(vertical, width, 1, planes * height, width, height, plane);        // along the width
}

}  // namespace salient::detail
