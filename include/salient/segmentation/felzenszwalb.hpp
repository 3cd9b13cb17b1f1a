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
#include "salient/io/image.hpp"
#include "salient/segmentation/detail/smoothing.hpp"
#include "salient/segmentation/label_map.hpp"

namespace salient {

// skimage.segmentation.felzenszwalb's parameters.
struct FelzenszwalbOptions {
  double scale = 1.0;     // the paper's k for 0..255 intensities: larger gives bigger segments
  double sigma = 0.8;     // Gaussian smoothing before the edge weights, in pixels (0: none)
  int64_t min_size = 20;  // segments smaller than this are merged afterwards
};

namespace detail::superpixels {

inline uint32_t float_key(float w) {
  uint32_t key;
  std::memcpy(&key, &w, sizeof key);
  return key;
}
inline float key_float(uint32_t key) {
  float w;
  std::memcpy(&w, &key, sizeof w);
  return w;
}

inline void check_felzenszwalb_options(const FelzenszwalbOptions& o) {
  if (!(o.scale >= 0) || !std::isfinite(o.scale))
    fail("felzenszwalb: scale must be >= 0, got ", o.scale);
  if (!(o.sigma >= 0) || !(o.sigma <= max_sigma))
    fail("felzenszwalb: sigma must be in [0, ", max_sigma, "] pixels (0: no smoothing), got ",
         o.sigma);
  if (o.min_size < 0) fail("felzenszwalb: min_size must be >= 0, got ", o.min_size);
}

}  // namespace detail::superpixels

// Felzenszwalb & Huttenlocher's graph segmentation as skimage.segmentation.felzenszwalb computes
// it: the RGB image in [0, 1] smoothed per channel with `sigma`, an 8-connected grid graph
// weighted by the Euclidean RGB distance, edges in increasing weight merging two components when
//   w < min(Int(C1) + k / |C1|, Int(C2) + k / |C2|),   k = scale / 255
// (skimage divides scale by 255 so that it means what it means in the reference implementation
// on 0..255 intensities), then components below min_size merged along the sorted edges.
inline LabelMap felzenszwalb(const Image& rgb, const FelzenszwalbOptions& options = {}) {
  namespace sp = detail::superpixels;
  sp::check_rgb(rgb, "felzenszwalb");
  sp::check_felzenszwalb_options(options);
  const int64_t height = rgb.height, width = rgb.width, n = height * width;
  if (n > (int64_t{1} << 30))
    detail::fail("felzenszwalb: image of ", height, "x", width,
                 " pixels is too large (at most 2^30 pixels)");
  std::vector<float> smoothed;
  const float* R = rgb.data.data();
  if (options.sigma > 0) {
    smoothed = rgb.data;
    sp::gaussian_blur(smoothed, 3, height, width, options.sigma);
    R = smoothed.data();
  }
  const float* G = R + n;
  const float* B = G + n;
  // The 8-connected grid graph in skimage's edge order: all right edges (y, x)-(y, x+1), then
  // down (y, x)-(y+1, x), down-right (y, x)-(y+1, x+1) and up-right (y, x+1)-(y+1, x), each
  // in raster order of (y, x). Edge (dir, p) is coded dir * n + p, so codes follow that order.
  const int64_t offsets[4][2] = {{1, 0}, {width, 0}, {width + 1, 0}, {1, width}};
  const auto weight_key = [&](int64_t p, int dir) {
    const int64_t a = p + offsets[dir][0], b = p + offsets[dir][1];
    const float dr = R[a] - R[b], dg = G[a] - G[b], db = B[a] - B[b];
    return sp::float_key(std::sqrt(dr * dr + dg * dg + db * db));
  };
  const auto for_each_edge = [&](auto&& f) {
    for (int dir = 0; dir < 4; ++dir)
      for (int64_t y = 0; y + (dir > 0 ? 1 : 0) < height; ++y)
        for (int64_t x = 0; x + (dir != 1 ? 1 : 0) < width; ++x) f(y * width + x, dir);
  };
  // Sorted by weight, ties in edge order, as (weight bits << 32 | code): a counting pass and a
  // scatter into buckets of weight (8192 per octave from 2^-17 to 2; smaller weights share the
  // first bucket, larger ones the last), then each bucket sorted on its own. The scatter keeps
  // edge order, so a bucket of equal weights is already sorted.
  constexpr uint32_t low_key = 110u << 23, bucket_shift = 10, buckets = (18u << 23) >> bucket_shift;
  const auto bucket_of = [&](uint32_t key) {
    return std::min<uint32_t>((key < low_key ? 0 : key - low_key) >> bucket_shift, buckets - 1);
  };
  std::vector<uint32_t> starts(buckets + 1, 0);
  for_each_edge([&](int64_t p, int dir) { ++starts[bucket_of(weight_key(p, dir)) + 1]; });
  for (size_t b = 1; b < starts.size(); ++b) starts[b] += starts[b - 1];
  std::vector<uint64_t> edges(starts.back());
  for_each_edge([&](int64_t p, int dir) {  // starts[b] ends as the end of bucket b
    const uint32_t key = weight_key(p, dir);
    edges[starts[bucket_of(key)]++] = uint64_t{key} << 32 | static_cast<uint64_t>(dir * n + p);
  });
  for (size_t b = 0; b < buckets; ++b) {
    const auto first = edges.begin() + (b == 0 ? 0 : starts[b - 1]);
    const auto last = edges.begin() + starts[b];
    if (last - first < 2 || std::is_sorted(first, last)) continue;
    if (last - first <= 16) {  // insertion sort
      for (auto it = first + 1; it != last; ++it)
        for (auto j = it; j != first && *(j - 1) > *j; --j) std::iter_swap(j - 1, j);
    } else {
      std::sort(first, last);
    }
  }
  // Freed early: with a smaller peak, glibc keeps the pages for the next call instead of
  // returning them and faulting them in again (which cost more than the segmentation here).
  sp::release(starts);
  sp::release(smoothed);
  const auto ends = [&](uint64_t e) {
    const auto code = static_cast<int64_t>(e & 0xffffffffu);
    const int64_t dir = (code >= n) + (code >= 2 * n) + (code >= 3 * n), p = code - dir * n;
    return std::pair<int32_t, int32_t>(static_cast<int32_t>(p + offsets[dir][0]),
                                       static_cast<int32_t>(p + offsets[dir][1]));
  };

  const double k = options.scale / 255.0;
  sp::DisjointSets sets(static_cast<int32_t>(n));
  std::vector<int32_t> size(static_cast<size_t>(n), 1);
  std::vector<float> internal(static_cast<size_t>(n), 0.f);  // Int(C): the largest merged weight
  // Union by size keeps the trees shallow; which pixel is the root does not change the partition.
  const auto join = [&](int32_t a, int32_t b) {
    if (size[static_cast<size_t>(a)] < size[static_cast<size_t>(b)]) std::swap(a, b);
    sets.parent[static_cast<size_t>(b)] = a;
    return a;
  };
  for (const uint64_t e : edges) {
    const auto [p, q] = ends(e);
    const int32_t a = sets.find(p), b = sets.find(q);
    if (a == b) continue;
    const float w = sp::key_float(static_cast<uint32_t>(e >> 32));
    const double ta = internal[static_cast<size_t>(a)] + k / size[static_cast<size_t>(a)];
    const double tb = internal[static_cast<size_t>(b)] + k / size[static_cast<size_t>(b)];
    if (w < std::min(ta, tb)) {
      const int32_t root = join(a, b);
      size[static_cast<size_t>(root)] = size[static_cast<size_t>(a)] + size[static_cast<size_t>(b)];
      internal[static_cast<size_t>(root)] = w;
    }
  }
  if (options.min_size > 1)
    for (const uint64_t e : edges) {
      const auto [p, q] = ends(e);
      const int32_t a = sets.find(p), b = sets.find(q);
      if (a == b) continue;
      if (size[static_cast<size_t>(a)] < options.min_size ||
          size[static_cast<size_t>(b)] < options.min_size) {
        const int32_t root = join(a, b);
        size[static_cast<size_t>(root)] =
            size[static_cast<size_t>(a)] + size[static_cast<size_t>(b)];
      }
    }
  sp::release(edges);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = sets.find(static_cast<int32_t>(i));
  return sp::relabel_ids(ids, static_cast<int32_t>(n), height, width);
}

}  // namespace salient
