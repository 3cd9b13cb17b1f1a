#pragma once
// Superpixels without OpenCV or LibTorch: regular grids, SLIC and Felzenszwalb's graph
// segmentation with scikit-image's definitions (skimage.segmentation.slic / felzenszwalb), the
// connected regions of a label map, and segment(spec) for the command-line spellings
// "slic:50", "felzenszwalb:100" and "grid:16".
//
// Every function returns a LabelMap whose labels are 0..count-1, each used at least once,
// numbered in the order of their first pixel in raster order.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/io/image.hpp"

namespace salient {

// A segmentation: labels[y * width + x] in 0..count-1, every label used.
struct LabelMap {
  int64_t height = 0, width = 0, count = 0;
  std::vector<int64_t> labels;
};

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

// skimage.segmentation.felzenszwalb's parameters.
struct FelzenszwalbOptions {
  double scale = 1.0;     // the paper's k for 0..255 intensities: larger gives bigger segments
  double sigma = 0.8;     // Gaussian smoothing before the edge weights, in pixels (0: none)
  int64_t min_size = 20;  // segments smaller than this are merged afterwards
};

namespace detail::superpixels {

// Image checks shared by the segmenters: an RGB image with finite values, small enough for
// 32-bit pixel indices.
inline void check_rgb(const Image& image, std::string_view what) {
  check_image(image, what);
  if (image.channels != 3)
    fail(what, ": expected an RGB image (3 channels), got ", image.channels, " channel",
         image.channels == 1 ? "" : "s", " (", image.channels, "x", image.height, "x", image.width,
         ")");
  if (image.height * image.width > std::numeric_limits<int32_t>::max())
    fail(what, ": image of ", image.height, "x", image.width, " pixels is too large (at most ",
         std::numeric_limits<int32_t>::max(), " pixels)");
  for (const float v : image.data)
    if (!std::isfinite(v)) fail(what, ": the image holds a non-finite value (", v, ")");
}

inline void check_label_map(const LabelMap& map, std::string_view what) {
  if (map.height < 0 || map.width < 0)
    fail(what, ": label map shape ", map.height, "x", map.width, " has a negative size");
  if (map.width != 0 && map.height > std::numeric_limits<int32_t>::max() / map.width)
    fail(what, ": label map of ", map.height, "x", map.width, " pixels is too large (at most ",
         std::numeric_limits<int32_t>::max(), " pixels)");
  if (map.labels.size() != static_cast<size_t>(map.height * map.width))
    fail(what, ": label map holds ", map.labels.size(), " labels but its shape ", map.height, "x",
         map.width, " needs ", map.height * map.width);
}

// ids[i] in [0, id_count) -> a LabelMap numbered by first appearance.
inline LabelMap relabel_ids(const std::vector<int32_t>& ids, int32_t id_count, int64_t height,
                            int64_t width) {
  LabelMap out;
  out.height = height;
  out.width = width;
  out.labels.resize(ids.size());
  std::vector<int32_t> map(static_cast<size_t>(id_count), -1);
  int32_t next = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t& m = map[static_cast<size_t>(ids[i])];
    if (m < 0) m = next++;
    out.labels[i] = m;
  }
  out.count = next;
  return out;
}

// Union-find over 0..n-1 (find with path halving; the caller links roots).
struct DisjointSets {
  std::vector<int32_t> parent;
  explicit DisjointSets(int32_t n) : parent(static_cast<size_t>(n)) {
    for (int32_t i = 0; i < n; ++i) parent[static_cast<size_t>(i)] = i;
  }
  int32_t find(int32_t i) {
    while (parent[static_cast<size_t>(i)] != i) {  // path halving
      int32_t& p = parent[static_cast<size_t>(i)];
      p = parent[static_cast<size_t>(p)];
      i = p;
    }
    return i;
  }
};

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

// 4-connected pieces of equal label by breadth-first search from each unvisited pixel in raster
// order (neighbours x+1, x-1, y+1, y-1, as skimage's _enforce_label_connectivity_cython). A
// search stops after max_size pixels; the rest of that region starts new pieces. Fills
// piece[pixel], and the pixels of piece p as order[begin[p] .. begin[p+1]). Returns the count.
template <class Label>
int32_t connected_pieces(const Label* labels, int64_t height, int64_t width, int64_t max_size,
                         std::vector<int32_t>& piece, std::vector<int32_t>& order,
                         std::vector<int32_t>& begin) {
  const int64_t n = height * width;
  piece.assign(static_cast<size_t>(n), -1);
  order.resize(static_cast<size_t>(n));
  begin.clear();
  int32_t count = 0;
  size_t tail = 0;
  for (int64_t start = 0; start < n; ++start) {
    if (piece[static_cast<size_t>(start)] >= 0) continue;
    const Label label = labels[start];
    const size_t first = tail;
    begin.push_back(static_cast<int32_t>(first));
    piece[static_cast<size_t>(start)] = count;
    order[tail++] = static_cast<int32_t>(start);
    size_t head = first;
    const auto visit = [&](int64_t q) {
      if (piece[static_cast<size_t>(q)] < 0 && labels[q] == label) {
        piece[static_cast<size_t>(q)] = count;
        order[tail++] = static_cast<int32_t>(q);
      }
      return static_cast<int64_t>(tail - first) < max_size;
    };
    while (head < tail && static_cast<int64_t>(tail - first) < max_size) {
      const int64_t p = order[head++];
      const int64_t y = p / width, x = p - y * width;
      if (x + 1 < width && !visit(p + 1)) break;
      if (x > 0 && !visit(p - 1)) break;
      if (y + 1 < height && !visit(p + width)) break;
      if (y > 0 && !visit(p - width)) break;
    }
    ++count;
  }
  begin.push_back(static_cast<int32_t>(tail));
  return count;
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

// Frees a vector's memory (assigning {} keeps the capacity).
template <class T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

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

inline void check_slic_options(const SlicOptions& o) {
  if (o.n_segments < 1) fail("slic: n_segments must be at least 1, got ", o.n_segments);
  if (!(o.compactness > 0) || !std::isfinite(o.compactness))
    fail("slic: compactness must be a positive number, got ", o.compactness);
  if (!(o.sigma >= 0) || !(o.sigma <= max_sigma))
    fail("slic: sigma must be in [0, ", max_sigma, "] pixels (0: no smoothing), got ", o.sigma);
  if (o.max_iterations < 1) fail("slic: max_iterations must be at least 1, got ", o.max_iterations);
  if (!(o.min_size_factor >= 0) || !std::isfinite(o.min_size_factor))
    fail("slic: min_size_factor must be >= 0, got ", o.min_size_factor);
  if (!(o.max_size_factor > 0) || !std::isfinite(o.max_size_factor))
    fail("slic: max_size_factor must be positive, got ", o.max_size_factor);
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

// Labels renumbered 0..K-1 in order of first appearance (any int64 values in, every label used
// out).
inline LabelMap relabel_consecutive(const LabelMap& map) {
  detail::superpixels::check_label_map(map, "relabel_consecutive");
  LabelMap out;
  out.height = map.height;
  out.width = map.width;
  out.labels.resize(map.labels.size());
  std::unordered_map<int64_t, int64_t> ids;
  int64_t next = 0;
  for (size_t i = 0; i < map.labels.size(); ++i) {
    const auto [it, inserted] = ids.try_emplace(map.labels[i], next);
    if (inserted) ++next;
    out.labels[i] = it->second;
  }
  out.count = next;
  return out;
}

// Square cells of `cell` pixels (the last row and column of cells may be smaller), numbered
// row by row.
inline LabelMap grid_segments(int64_t height, int64_t width, int64_t cell) {
  if (height < 1 || width < 1)
    detail::fail("grid_segments: image size ", height, "x", width, " must be at least 1x1");
  if (height > std::numeric_limits<int32_t>::max() / width)
    detail::fail("grid_segments: image of ", height, "x", width, " pixels is too large");
  if (cell < 1) detail::fail("grid_segments: cell size must be at least 1 pixel, got ", cell);
  const int64_t columns = (width + cell - 1) / cell, rows = (height + cell - 1) / cell;
  LabelMap map;
  map.height = height;
  map.width = width;
  map.count = rows * columns;
  map.labels.resize(static_cast<size_t>(height * width));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      map.labels[static_cast<size_t>(y * width + x)] = (y / cell) * columns + x / cell;
  return map;
}

// 4-connected regions of equal label, each its own label (a segmentation model's argmax
// classes become regions). Input labels may be any int64 values.
inline LabelMap connected_components(const LabelMap& map) {
  detail::superpixels::check_label_map(map, "connected_components");
  std::vector<int32_t> piece, order, begin;
  const int32_t count = detail::superpixels::connected_pieces(
      map.labels.data(), map.height, map.width, std::numeric_limits<int64_t>::max(), piece, order,
      begin);
  LabelMap out;
  out.height = map.height;
  out.width = map.width;
  out.count = count;
  out.labels.assign(piece.begin(), piece.end());
  return out;
}

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
    sp::gaussian_blur(smoothed, 3, height, width, options.sigma);
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

// The photo with segment borders painted in `color`: a pixel is painted when its right or lower
// neighbour has another label (one-pixel lines).
inline Image mark_boundaries(const Image& rgb, const LabelMap& map,
                             const std::array<float, 3>& color = {1.f, 1.f, 0.f}) {
  detail::check_image(rgb, "mark_boundaries");
  detail::superpixels::check_label_map(map, "mark_boundaries");
  if (rgb.channels != 3 || rgb.height != map.height || rgb.width != map.width)
    detail::fail("mark_boundaries: image ", rgb.channels, "x", rgb.height, "x", rgb.width,
                 " does not match the ", map.height, "x", map.width,
                 " label map (expected an RGB image of the same size)");
  Image out = rgb;
  const int64_t h = map.height, w = map.width, n = h * w;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t i = y * w + x;
      const int64_t l = map.labels[static_cast<size_t>(i)];
      const bool edge = (x + 1 < w && map.labels[static_cast<size_t>(i + 1)] != l) ||
                        (y + 1 < h && map.labels[static_cast<size_t>(i + w)] != l);
      if (edge)
        for (size_t c = 0; c < 3; ++c)
          out.data[c * static_cast<size_t>(n) + static_cast<size_t>(i)] = color[c];
    }
  return out;
}

namespace detail::superpixels {

inline constexpr std::string_view spec_forms =
    "slic:N[:COMPACTNESS], felzenszwalb:SCALE[:SIGMA:MIN_SIZE] or grid:CELL";

template <class T>
T parse_spec_number(std::string_view spec, std::string_view text, std::string_view what) {
  T value{};
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (text.empty() || ec != std::errc() || end != last)
    fail("bad segmentation spec '", spec, "': ", what, " '", text, "' is not ",
         std::is_integral_v<T> ? "an integer" : "a number", " (expected ", spec_forms, ")");
  if constexpr (std::is_floating_point_v<T>)
    if (!std::isfinite(value))
      fail("bad segmentation spec '", spec, "': ", what, " '", text, "' is not finite (expected ",
           spec_forms, ")");
  return value;
}

}  // namespace detail::superpixels

// A segmentation by command-line spec:
//   slic:N[:COMPACTNESS]                   slic() with n_segments N (compactness 10)
//   felzenszwalb:SCALE[:SIGMA:MIN_SIZE]    felzenszwalb() (sigma 0.8, min_size 20)
//   grid:CELL                              grid_segments() with square cells of CELL pixels
//                                          (any channel count: only the size is used)
inline LabelMap segment(std::string_view spec, const Image& rgb) {
  namespace sp = detail::superpixels;
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon == std::string_view::npos ? colon : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  const auto bad = [&](auto&&... reason) {
    detail::fail("bad segmentation spec '", spec, "': ", reason..., " (expected ", sp::spec_forms,
                 ")");
  };
  const std::string_view name = parts[0];
  const size_t args = parts.size() - 1;
  // Option errors are reported with the spec they came from.
  const auto checked = [&](auto&& check) {
    try {
      check();
    } catch (const error& e) {
      bad(e.what());
    }
  };
  if (name == "slic") {
    if (args < 1 || args > 2) bad("slic takes 1 or 2 values, got ", args);
    SlicOptions options;
    options.n_segments = sp::parse_spec_number<int64_t>(spec, parts[1], "segment count");
    if (args == 2)
      options.compactness = sp::parse_spec_number<double>(spec, parts[2], "compactness");
    checked([&] { sp::check_slic_options(options); });
    return slic(rgb, options);
  }
  if (name == "felzenszwalb") {
    if (args != 1 && args != 3) bad("felzenszwalb takes 1 or 3 values, got ", args);
    FelzenszwalbOptions options;
    options.scale = sp::parse_spec_number<double>(spec, parts[1], "scale");
    if (args == 3) {
      options.sigma = sp::parse_spec_number<double>(spec, parts[2], "sigma");
      options.min_size = sp::parse_spec_number<int64_t>(spec, parts[3], "min_size");
    }
    checked([&] { sp::check_felzenszwalb_options(options); });
    return felzenszwalb(rgb, options);
  }
  if (name == "grid") {
    if (args != 1) bad("grid takes 1 value, got ", args);
    const auto cell = sp::parse_spec_number<int64_t>(spec, parts[1], "cell size");
    if (cell < 1) bad("grid cell size must be at least 1 pixel, got ", cell);
    detail::check_image(rgb, "segment");
    return grid_segments(rgb.height, rgb.width, cell);
  }
  bad("unknown method '", name, "'");
  return {};  // not reached
}

}  // namespace salient
