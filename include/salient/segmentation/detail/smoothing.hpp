#pragma once
// Gaussian smoothing as scipy.ndimage computes it (truncate = 4, "reflect" boundary), for the
// segmenters that smooth before segmenting (SLIC, Felzenszwalb).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"

namespace salient::detail::superpixels {

// scipy.ndimage's "reflect" boundary (d c b a | a b c d | d c b a) for any offset.
inline int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// Largest smoothing accepted, in pixels (the kernel reaches 4 sigma).
inline constexpr double max_sigma = 1e4;

// A 1-D Gaussian (scipy.ndimage.gaussian_filter1d: truncate=4, weights normalised in double) as
// taps (offset, weight) for an axis of n samples under the "reflect" boundary. That boundary
// repeats every 2n samples, so a kernel longer than that is folded onto 2n offsets.
template <class T>
struct Taps {
  std::vector<int64_t> offsets;
  std::vector<T> weights;
};
template <class T>
Taps<T> gaussian_taps(double sigma, int64_t n) {
  const auto radius = static_cast<int64_t>(4.0 * sigma + 0.5);
  std::vector<double> kernel(static_cast<size_t>(2 * radius + 1));
  double total = 0;
  for (int64_t k = -radius; k <= radius; ++k) {
    const double w = std::exp(-0.5 * static_cast<double>(k * k) / (sigma * sigma));
    kernel[static_cast<size_t>(k + radius)] = w;
    total += w;
  }
  Taps<T> taps;
  if (2 * radius + 1 <= 2 * n) {
    for (int64_t k = -radius; k <= radius; ++k) {
      taps.offsets.push_back(k);
      taps.weights.push_back(static_cast<T>(kernel[static_cast<size_t>(k + radius)] / total));
    }
  } else {
    std::vector<double> folded(static_cast<size_t>(2 * n), 0.0);
    for (int64_t k = -radius; k <= radius; ++k)
      folded[static_cast<size_t>(((k % (2 * n)) + 2 * n) % (2 * n))] +=
          kernel[static_cast<size_t>(k + radius)];
    for (int64_t k = 0; k < 2 * n; ++k) {
      taps.offsets.push_back(k);
      taps.weights.push_back(static_cast<T>(folded[static_cast<size_t>(k)] / total));
    }
  }
  return taps;
}

// scipy.ndimage.gaussian_filter with truncate=4 and mode="reflect" over y, then x, of each plane
// of a planar float image (skimage.filters.gaussian with channel sigma 0). sigma <= 0: nothing.
template <class T>
void gaussian_blur(std::vector<T>& data, int64_t planes, int64_t height, int64_t width,
                   double sigma) {
  if (!(sigma > 0)) return;
  const Taps<T> vertical = gaussian_taps<T>(sigma, height);
  const Taps<T> horizontal = gaussian_taps<T>(sigma, width);
  const int64_t low = horizontal.offsets.front(), high = horizontal.offsets.back();
  std::vector<T> plane_out(static_cast<size_t>(height * width));
  std::vector<T> padded(static_cast<size_t>(width + high - low));
  std::vector<int64_t> columns(padded.size());
  for (size_t j = 0; j < columns.size(); ++j)
    columns[j] = reflect_index(static_cast<int64_t>(j) + low, width);
  for (int64_t c = 0; c < planes; ++c) {
    T* plane = data.data() + c * height * width;
    // Vertical pass row by row, so that the inner loop runs along x.
    for (int64_t y = 0; y < height; ++y) {
      T* out = plane_out.data() + y * width;
      std::fill(out, out + width, T{0});
      for (size_t t = 0; t < vertical.offsets.size(); ++t) {
        const T w = vertical.weights[t];
        const T* in = plane + reflect_index(y + vertical.offsets[t], height) * width;
        for (int64_t x = 0; x < width; ++x) out[x] += w * in[x];
      }
    }
    // Horizontal pass back into the plane, through a reflect-padded copy of each row.
    for (int64_t y = 0; y < height; ++y) {
      const T* in = plane_out.data() + y * width;
      for (size_t j = 0; j < padded.size(); ++j) padded[j] = in[columns[j]];
      T* out = plane + y * width;
      for (int64_t x = 0; x < width; ++x) {
        T sum = 0;
        const T* p = padded.data() + x - low;
        for (size_t t = 0; t < horizontal.offsets.size(); ++t)
          sum += horizontal.weights[t] * p[horizontal.offsets[t]];
        out[x] = sum;
      }
    }
  }
}

}  // namespace salient::detail::superpixels
