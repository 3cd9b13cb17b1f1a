#pragma once
// Felzenszwalb & Huttenlocher's graph segmentation with scikit-image's definitions
// (skimage.segmentation.felzenszwalb). LibTorch-free.
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
#include "salient/core/gaussian_filter.hpp"
#include "salient/core/numpy_argsort.hpp"
#include "salient/io/image.hpp"
#include "salient/segmentation/label_map.hpp"

namespace salient {

// skimage.segmentation.felzenszwalb's parameters.
struct FelzenszwalbOptions {
  double scale = 1.0;     // the paper's k for 0..255 intensities: larger gives bigger segments
  double sigma = 0.8;     // Gaussian smoothing before the edge weights, in pixels (0: none)
  int64_t min_size = 20;  // segments smaller than this are merged afterwards
};

namespace detail::superpixels {

inline void check_felzenszwalb_options(const FelzenszwalbOptions& o) {
  if (!(o.scale >= 0) || !std::isfinite(o.scale))
    fail("felzenszwalb: scale must be >= 0, got ", o.scale);
  if (!(o.sigma >= 0) || !(o.sigma <= max_smoothing_sigma))
    fail("felzenszwalb: sigma must be in [0, ", max_smoothing_sigma, "] pixels (0: no smoothing), got ", o.sigma);
  if (o.min_size < 0) fail("felzenszwalb: min_size must be >= 0, got ", o.min_size);
}

// The edge order: numpy.argsort's. Weights are sorted fast and stably first (an LSD radix sort
// on their bits, 11 bits per pass, passes where all keys agree skipped); only where two equal
// weights could be taken in either order with different results (any equal pair when scale is
// 0, otherwise equal non-zero weights: zero-weight edges always merge) is numpy's introsort
// run, whose order of equal values is its own. Photos have no such ties about half the time.
inline std::vector<int64_t> edge_order(const std::vector<double>& weights, bool zero_ties_matter) {
  const auto n = weights.size();
  std::vector<uint64_t> keys(n), spare_keys(n);
  std::vector<int64_t> order(n), spare(n);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&keys[i], &weights[i], sizeof(double));  // non-negative: the bits sort as the values
    order[i] = static_cast<int64_t>(i);
  }
  constexpr int digit_bits = 11;
  constexpr uint64_t digit_mask = (uint64_t{1} << digit_bits) - 1;
  std::vector<size_t> counts(size_t{1} << digit_bits);
  for (int shift = 0; shift < 64; shift += digit_bits) {
    std::fill(counts.begin(), counts.end(), 0);
    for (const uint64_t k : keys) ++counts[k >> shift & digit_mask];
    if (n == 0 || counts[keys[0] >> shift & digit_mask] == n) continue;  // all keys share this digit
    size_t total = 0;
    for (auto& c : counts) total += std::exchange(c, total);
    for (size_t i = 0; i < n; ++i) {
      const size_t to = counts[keys[i] >> shift & digit_mask]++;
      spare_keys[to] = keys[i], spare[to] = order[i];
    }
    keys.swap(spare_keys), order.swap(spare);
  }
  for (size_t i = 1; i < n; ++i)
    if (keys[i] == keys[i - 1] && (keys[i] != 0 || zero_ties_matter)) return numpy_argsort(weights);
  return order;
}

}  // namespace detail::superpixels

// Felzenszwalb & Huttenlocher's graph segmentation as skimage.segmentation.felzenszwalb (0.19)
// computes it, number for number: the image in double, each channel smoothed with `sigma`
// (scipy's Gaussian, "reflect"), an 8-connected grid graph weighted by the Euclidean distance
// over the channels, edges in numpy.argsort's order of weight merging two components when
//   w < min(Int(C1) + k / |C1|, Int(C2) + k / |C2|),   k = scale / 255
// with the two thresholds rounded to float as skimage's Cython does (skimage divides scale by
// 255 so that it means what it means in the reference implementation on 0..255 intensities),
// then components below min_size merged along the sorted edges. Any number of channels
// (skimage's multichannel case); labels are numbered in raster order of first appearance.
inline LabelMap felzenszwalb(const Image& image, const FelzenszwalbOptions& options = {}) {
  namespace sp = detail::superpixels;
  detail::check_image(image, "felzenszwalb");
  if (image.channels < 1) detail::fail("felzenszwalb: the image has no channels");
  if (image.height * image.width > (int64_t{1} << 30))
    detail::fail("felzenszwalb: image of ", image.height, "x", image.width, " pixels is too large (at most 2^30 pixels)");
  for (const float v : image.data)
    if (!std::isfinite(v)) detail::fail("felzenszwalb: the image holds a non-finite value (", v, ")");
  sp::check_felzenszwalb_options(options);
  const int64_t channels = image.channels, height = image.height, width = image.width, n = height * width;
  std::vector<double> smoothed = detail::gaussian_filter(std::vector<double>(image.data.begin(), image.data.end()),
                                                         channels, height, width, options.sigma,
                                                         detail::FilterBoundary::reflect);
  // The 8-connected grid graph in skimage's edge order: all right edges (y, x)-(y, x+1), then
  // down (y, x)-(y+1, x), down-right (y, x)-(y+1, x+1) and up-right (y, x+1)-(y+1, x), each
  // in raster order of (y, x).
  std::vector<std::array<int32_t, 2>> ends;
  const int64_t offsets[4][2] = {{1, 0}, {width, 0}, {width + 1, 0}, {1, width}};
  for (int dir = 0; dir < 4; ++dir)
    for (int64_t y = 0; y + (dir > 0 ? 1 : 0) < height; ++y)
      for (int64_t x = 0; x + (dir != 1 ? 1 : 0) < width; ++x) {
        const int64_t p = y * width + x;
        ends.push_back({static_cast<int32_t>(p + offsets[dir][0]), static_cast<int32_t>(p + offsets[dir][1])});
      }
  std::vector<double> weights(ends.size());
  for (size_t e = 0; e < ends.size(); ++e) {
    double sum = 0;  // numpy's sum over the last axis: ((d0^2 + d1^2) + d2^2)
    for (int64_t c = 0; c < channels; ++c) {
      const double d = smoothed[c * n + ends[e][0]] - smoothed[c * n + ends[e][1]];
      sum = c == 0 ? d * d : sum + d * d;
    }
    weights[e] = std::sqrt(sum);
  }
  sp::release(smoothed);
  const std::vector<int64_t> order = sp::edge_order(weights, options.scale == 0);

  const double k = options.scale / 255.0;
  sp::DisjointSets sets(static_cast<int32_t>(n));
  std::vector<int32_t> size(static_cast<size_t>(n), 1);
  std::vector<double> internal(static_cast<size_t>(n), 0.0);  // Int(C): the largest merged weight
  // Union by size keeps the trees shallow; which pixel is the root does not change the partition.
  const auto join = [&](int32_t a, int32_t b) {
    if (size[a] < size[b]) std::swap(a, b);
    sets.parent[b] = a;
    size[a] += size[b];
    return a;
  };
  for (const int64_t e : order) {
    const int32_t a = sets.find(ends[e][0]), b = sets.find(ends[e][1]);
    if (a == b) continue;
    const auto ta = static_cast<float>(internal[a] + k / size[a]);
    const auto tb = static_cast<float>(internal[b] + k / size[b]);
    if (weights[e] < std::min(ta, tb)) internal[join(a, b)] = weights[e];
  }
  if (options.min_size > 1)
    for (const int64_t e : order) {
      const int32_t a = sets.find(ends[e][0]), b = sets.find(ends[e][1]);
      if (a != b && (size[a] < options.min_size || size[b] < options.min_size)) join(a, b);
    }
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = sets.find(static_cast<int32_t>(i));
  return sp::relabel_ids(ids, static_cast<int32_t>(n), height, width);
}

}  // namespace salient
