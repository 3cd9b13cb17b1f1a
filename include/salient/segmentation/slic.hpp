#pragma once
// SLIC superpixels with scikit-image's definitions (skimage.segmentation.slic). LibTorch-free.
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
#include "salient/io/image.hpp"
#include "salient/segmentation/label_map.hpp"

namespace salient {

// skimage.segmentation.slic's parameters (start_label does not apply: labels start at 0).
struct SlicOptions {
  int64_t n_segments = 100;      // approximate number of segments (the initial grid's target)
  double compactness = 10.0;     // colour versus space: higher gives squarer segments
  double sigma = 0.0;            // Gaussian smoothing of the Lab image, in pixels (0: none)
  int max_iterations = 10;       // k-means iterations (stops early once no pixel moves)
  bool enforce_connectivity = true;
  double min_size_factor = 0.5;  // pieces below this share of the mean segment size are merged
  double max_size_factor = 3.0;  // a connected piece is cut after this share (skimage's BFS limit)
};

namespace detail::superpixels {

// Cube root of a positive double, about three times faster than std::cbrt: an exponent-bits
// first guess (within 5%) refined by three Halley steps (each triples the correct digits).
inline double cube_root(double t) {
  uint64_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  bits = bits / 3u + 0x2a9f7893782da1ceu;
  double y;
  std::memcpy(&y, &bits, sizeof y);
  for (int step = 0; step < 3; ++step) {
    const double y3 = y * y * y;
    y = y * (y3 + 2.0 * t) / (2.0 * y3 + t);
  }
  return y;
}

// skimage.color.rgb2lab (sRGB gamma, D65 white, 2-degree observer) of a planar RGB image after
// the stretch (v - low) / range (range 0: v - low), in double as skimage computes it (float
// arithmetic here moves a few SLIC pixels across near-ties), stored as T: planes L, a, b.
template <class T>
std::vector<T> rgb_to_lab(const std::vector<float>& rgb, int64_t pixels, double low, double range) {
  std::vector<T> lab(rgb.size());
  const float* r = rgb.data();
  const float* g = r + pixels;
  const float* b = g + pixels;
  const auto linear = [&](float value) {
    const double v = range > 0 ? (value - low) / range : value - low;
    return v > 0.04045 ? std::pow((v + 0.055) / 1.055, 2.4) : v / 12.92;
  };
  const auto f = [](double t) { return t > 0.008856 ? cube_root(t) : 7.787 * t + 16.0 / 116.0; };
  for (int64_t i = 0; i < pixels; ++i) {
    const double lr = linear(r[i]), lg = linear(g[i]), lb = linear(b[i]);
    const double x = (0.412453 * lr + 0.357580 * lg + 0.180423 * lb) / 0.95047;
    const double y = 0.212671 * lr + 0.715160 * lg + 0.072169 * lb;
    const double z = (0.019334 * lr + 0.119193 * lg + 0.950227 * lb) / 1.08883;
    const double fx = f(x), fy = f(y), fz = f(z);
    lab[static_cast<size_t>(i)] = static_cast<T>(116.0 * fy - 16.0);
    lab[static_cast<size_t>(pixels + i)] = static_cast<T>(500.0 * (fx - fy));
    lab[static_cast<size_t>(2 * pixels + i)] = static_cast<T>(200.0 * (fy - fz));
  }
  return lab;
}

// skimage.util.regular_grid for a 2-D image seen as (depth 1, height, width): per axis the first
// position and the step of about n_points positions spread evenly.
struct GridAxis {
  int64_t start = 0, step = 1;
};
inline std::array<GridAxis, 3> regular_grid(const std::array<int64_t, 3>& shape, int64_t n_points) {
  std::array<GridAxis, 3> out{};
  const double n = static_cast<double>(n_points);
  double space = static_cast<double>(shape[0]) * static_cast<double>(shape[1]) *
                 static_cast<double>(shape[2]);
  if (space <= n) return out;  // every position: start 0, step 1
  std::array<size_t, 3> order{0, 1, 2};
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return shape[a] < shape[b]; });
  std::array<double, 3> sorted{}, steps{};
  for (size_t d = 0; d < 3; ++d) sorted[d] = static_cast<double>(shape[order[d]]);
  steps.fill(std::pow(space / n, 1.0 / 3.0));
  const auto any_smaller = [&] {
    for (size_t d = 0; d < 3; ++d)
      if (sorted[d] < steps[d]) return true;
    return false;
  };
  if (any_smaller()) {
    for (size_t dim = 0; dim < 3; ++dim) {
      steps[dim] = sorted[dim];
      space = 1;
      for (size_t d = dim + 1; d < 3; ++d) space *= sorted[d];
      if (dim < 2)
        for (size_t d = dim + 1; d < 3; ++d)
          steps[d] = std::pow(space / n, 1.0 / static_cast<double>(2 - dim));
      if (!any_smaller()) break;
    }
  }
  for (size_t d = 0; d < 3; ++d) {
    out[order[d]].start = static_cast<int64_t>(std::floor(steps[d] / 2));
    out[order[d]].step = std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(steps[d])));
  }
  return out;
}

// skimage's _enforce_label_connectivity_cython, label for label: the 4-connected pieces of each
// label (a search stops after max_size pixels) in raster order of their first pixel; a piece of
// min_size pixels or more gets the next label, a smaller one the label of the last already
// labelled neighbour its search met (that of the next large piece when there is none: only the
// first piece can be in that case, and the next piece always touches it). The count is the
// number of large pieces (at least 1).
inline LabelMap enforce_connectivity(const std::vector<int32_t>& labels, int64_t height,
                                     int64_t width, int64_t min_size, int64_t max_size) {
  std::vector<int32_t> piece, order, begin;
  const int32_t count =
      connected_pieces(labels.data(), height, width, std::max<int64_t>(max_size, 1), piece, order,
                       begin);
  std::vector<int32_t> final_label(static_cast<size_t>(count));
  int32_t next = 0;
  for (int32_t p = 0; p < count; ++p) {
    const int32_t first = begin[static_cast<size_t>(p)], last = begin[static_cast<size_t>(p) + 1];
    if (last - first >= min_size) {
      final_label[static_cast<size_t>(p)] = next++;
      continue;
    }
    int32_t adjacent = next;
    const auto look = [&](int64_t r) {
      const int32_t other = piece[static_cast<size_t>(r)];
      if (other < p && final_label[static_cast<size_t>(other)] != next)
        adjacent = final_label[static_cast<size_t>(other)];
    };
    for (int32_t i = first; i < last; ++i) {  // the search's order: x+1, x-1, y+1, y-1
      const int64_t q = order[static_cast<size_t>(i)];
      const int64_t y = q / width, x = q - y * width;
      if (x + 1 < width) look(q + 1);
      if (x > 0) look(q - 1);
      if (y + 1 < height) look(q + width);
      if (y > 0) look(q - width);
    }
    final_label[static_cast<size_t>(p)] = adjacent;
  }
  LabelMap out;
  out.height = height;
  out.width = width;
  out.count = std::max(next, int32_t{1});
  out.labels.resize(piece.size());
  for (size_t i = 0; i < piece.size(); ++i)
    out.labels[i] = final_label[static_cast<size_t>(piece[i])];
  return out;
}

inline void check_slic_options(const SlicOptions& o) {
  if (o.n_segments < 1) fail("slic: n_segments must be at least 1, got ", o.n_segments);
  if (!(o.compactness > 0) || !std::isfinite(o.compactness))
    fail("slic: compactness must be a positive number, got ", o.compactness);
  if (!(o.sigma >= 0) || !(o.sigma <= max_smoothing_sigma))
    fail("slic: sigma must be in [0, ", max_smoothing_sigma, "] pixels (0: no smoothing), got ", o.sigma);
  if (o.max_iterations < 1) fail("slic: max_iterations must be at least 1, got ", o.max_iterations);
  if (!(o.min_size_factor >= 0) || !std::isfinite(o.min_size_factor))
    fail("slic: min_size_factor must be >= 0, got ", o.min_size_factor);
  if (!(o.max_size_factor > 0) || !std::isfinite(o.max_size_factor))
    fail("slic: max_size_factor must be positive, got ", o.max_size_factor);
}

}  // namespace detail::superpixels

// SLIC superpixels as skimage.segmentation.slic computes them for an RGB image (convert2lab,
// no mask, SLIC, not SLIC-zero): the image stretched to [0, 1] by its minimum and maximum,
// converted to CIELAB (D65) and smoothed with `sigma` (skimage smooths after the conversion);
// seeds on skimage's regular grid of about n_segments points with step S; k-means where a pixel
// joins the seed minimising
//   |lab - lab_k|^2 / compactness^2 + |(y, x) - (y_k, x_k)|^2 / S^2
// among the seeds within +-2 grid steps (seeds start with colour 0, as in skimage, so the first
// assignment is purely spatial); then connectivity enforcement with min_size and max_size the
// factors times H*W / (number of seeds). Matches skimage 0.19-0.24 label for label on the sample
// photos, up to float-versus-double rounding in rare near-ties.
inline LabelMap slic(const Image& rgb, const SlicOptions& options = {}) {
  namespace sp = detail::superpixels;
  sp::check_rgb(rgb, "slic");
  sp::check_slic_options(options);
  const int64_t height = rgb.height, width = rgb.width, n = height * width;

  // skimage first stretches the image to [0, 1] (one minimum and maximum over all channels),
  // "to make the choice of compactness insensitive to the image scale".
  const auto [lowest, highest] = std::minmax_element(rgb.data.begin(), rgb.data.end());
  const double low = *lowest, range = static_cast<double>(*highest) - low;
  std::vector<float> lab;
  if (options.sigma > 0) {  // smoothed in double, as skimage does
    auto smoothed = sp::rgb_to_lab<double>(rgb.data, n, low, range);
    smoothed = detail::gaussian_filter(smoothed, 3, height, width, options.sigma, detail::FilterBoundary::reflect);
    lab.assign(smoothed.begin(), smoothed.end());
  } else {
    lab = sp::rgb_to_lab<float>(rgb.data, n, low, range);
  }
  const float ratio = static_cast<float>(1.0 / options.compactness);
  for (auto& v : lab) v *= ratio;
  const float* L = lab.data();
  const float* A = L + n;
  const float* B = A + n;

  // Seeds on the grid, row-major; the spatial scale S is the largest grid step.
  const auto grid = sp::regular_grid({1, height, width}, options.n_segments);
  struct Center {
    double y, x, l, a, b;
  };
  std::vector<Center> centers;
  for (int64_t y = grid[1].start; y < height; y += grid[1].step)
    for (int64_t x = grid[2].start; x < width; x += grid[2].step)
      centers.push_back({static_cast<double>(y), static_cast<double>(x), 0, 0, 0});
  const int32_t k_count = static_cast<int32_t>(centers.size());
  const double step =
      static_cast<double>(std::max({grid[0].step, grid[1].step, grid[2].step}));
  const float spatial_weight = static_cast<float>(1.0 / (step * step));
  // The search window, as _slic_cython recomputes it for the actual number of seeds.
  const auto window = sp::regular_grid({1, height, width}, k_count);
  const auto wy = static_cast<double>(2 * window[1].step);
  const auto wx = static_cast<double>(2 * window[2].step);

  std::vector<int32_t> labels(static_cast<size_t>(n), 0), previous;
  std::vector<float> distance(static_cast<size_t>(n));
  std::vector<char> alive(static_cast<size_t>(k_count), 1);
  struct Sum {
    double y, x, l, a, b;
    int64_t count;
  };
  std::vector<Sum> sums(static_cast<size_t>(k_count));
  for (int iteration = 0; iteration < options.max_iterations; ++iteration) {
    std::fill(distance.begin(), distance.end(), std::numeric_limits<float>::max());
    previous = labels;
    for (int32_t k = 0; k < k_count; ++k) {
      if (!alive[static_cast<size_t>(k)]) continue;
      const Center& c = centers[static_cast<size_t>(k)];
      // Truncating casts of skimage's window bounds.
      const int64_t y0 = static_cast<int64_t>(std::max(c.y - wy, 0.0));
      const int64_t y1 = static_cast<int64_t>(std::min(c.y + wy + 1, static_cast<double>(height)));
      const int64_t x0 = static_cast<int64_t>(std::max(c.x - wx, 0.0));
      const int64_t x1 = static_cast<int64_t>(std::min(c.x + wx + 1, static_cast<double>(width)));
      const float cy = static_cast<float>(c.y), cx = static_cast<float>(c.x);
      const float cl = static_cast<float>(c.l), ca = static_cast<float>(c.a),
                  cb = static_cast<float>(c.b);
      for (int64_t y = y0; y < y1; ++y) {
        const float dy = cy - static_cast<float>(y);
        const float dy2 = dy * dy;
        const int64_t row = y * width;
        const float* l = L + row;
        const float* a = A + row;
        const float* b = B + row;
        float* dist = distance.data() + row;
        int32_t* lab_row = labels.data() + row;
        // 32-bit indices and a bit-mask select, so that the loop vectorises (SSE2 has no
        // int64 -> float conversion, and GCC keeps a ternary on the label as a branch).
        const auto xe = static_cast<int32_t>(x1);
        for (auto x = static_cast<int32_t>(x0); x < xe; ++x) {
          const float dx = cx - static_cast<float>(x);
          const float t0 = l[x] - cl, t1 = a[x] - ca, t2 = b[x] - cb;
          const float d = (dy2 + dx * dx) * spatial_weight + (t0 * t0 + t1 * t1 + t2 * t2);
          const float old = dist[x];
          const bool better = d < old;
          const int32_t mask = -static_cast<int32_t>(better);
          dist[x] = better ? d : old;
          lab_row[x] = (k & mask) | (lab_row[x] & ~mask);
        }
      }
    }
    // No pixel moved: the centres would not move either, and skimage's further iterations
    // would repeat this assignment.
    if (iteration > 0 && labels == previous) break;
    if (iteration + 1 == options.max_iterations) break;  // the last update would go unused
    std::fill(sums.begin(), sums.end(), Sum{0, 0, 0, 0, 0, 0});
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x) {
        const int64_t i = y * width + x;
        Sum& s = sums[static_cast<size_t>(labels[static_cast<size_t>(i)])];
        s.y += static_cast<double>(y);
        s.x += static_cast<double>(x);
        s.l += L[i];
        s.a += A[i];
        s.b += B[i];
        ++s.count;
      }
    for (int32_t k = 0; k < k_count; ++k) {
      const Sum& s = sums[static_cast<size_t>(k)];
      if (s.count == 0) {  // skimage's centre becomes NaN and never wins a pixel again
        alive[static_cast<size_t>(k)] = 0;
        continue;
      }
      const double inv = 1.0 / static_cast<double>(s.count);
      centers[static_cast<size_t>(k)] = {s.y * inv, s.x * inv, s.l * inv, s.a * inv, s.b * inv};
    }
  }

  if (!options.enforce_connectivity)
    return sp::relabel_ids(labels, k_count, height, width);
  const double segment_size = static_cast<double>(n) / static_cast<double>(k_count);
  const auto min_size = static_cast<int64_t>(options.min_size_factor * segment_size);
  const auto max_size = static_cast<int64_t>(options.max_size_factor * segment_size);
  return sp::enforce_connectivity(labels, height, width, min_size, max_size);
}

}  // namespace salient
