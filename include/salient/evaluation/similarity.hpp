#pragma once
// How alike are two attribution maps? The measures of "Sanity checks for saliency maps"
// (Adebayo et al. 2018) and Quantus: Spearman and Pearson correlation, SSIM, the correlation of
// HOG features, and top-k intersection.
//
// Every function copies its tensors once into contiguous double buffers (any real dtype, any
// device) and works there, so a 224x224 map takes milliseconds. Definitions follow SciPy 1.10
// and scikit-image 0.19.3, computed in double precision: the results equal theirs on float64
// arrays up to rounding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/evaluation/statistics.hpp"

namespace salient {

namespace detail {

// The tensor's values, flattened row-major, as doubles. Rejects undefined, complex and empty
// tensors and NaN (which has no rank and no correlation); `finite` rejects infinities too.
inline std::vector<double> similarity_values(const torch::Tensor& t, std::string_view what,
                                             std::string_view role, bool finite) {
  if (!t.defined()) fail(what, ": ", role, " is an undefined tensor; expected a map");
  if (t.is_complex())
    fail(what, ": ", role, " has complex dtype ", t.scalar_type(), "; expected real values");
  if (t.numel() == 0)
    fail(what, ": ", role, " of shape ", shape_string(t), " is empty; expected at least one value");
  std::vector<double> values(static_cast<size_t>(t.numel()));
  // One copy straight into the buffer, converting dtype and device on the way.
  torch::from_blob(values.data(), {t.numel()}, torch::kDouble).copy_(t.detach().reshape({-1}));
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i]))
      fail(what, ": ", role, " holds NaN at flat index ", i, "; expected numbers");
    if (finite && std::isinf(values[i]))
      fail(what, ": ", role, " holds ", values[i], " at flat index ", i,
           "; expected finite values");
  }
  return values;
}

inline std::pair<std::vector<double>, std::vector<double>> similarity_pair(
    const torch::Tensor& a, const torch::Tensor& b, std::string_view what, bool finite) {
  std::vector<double> x = similarity_values(a, what, "the first map", finite);
  std::vector<double> y = similarity_values(b, what, "the second map", finite);
  if (x.size() != y.size())
    fail(what, ": the maps have ", x.size(), " values (shape ", shape_string(a), ") and ",
         y.size(), " values (shape ", shape_string(b), "); expected the same number");
  return {std::move(x), std::move(y)};
}

// The k largest values as a soft set: weight 1 above the k-th largest value, 0 below it, and
// (places left) / (values tied) for the values equal to it (the chance each is picked when ties
// are ordered at random). The weights sum to k; top-k measures built on them do not depend on
// pixel order (a constant map favours no region).
inline std::vector<double> top_k_weights(const std::vector<double>& values, int64_t k) {
  std::vector<double> sorted = values;
  const auto kth = sorted.begin() + (k - 1);
  std::nth_element(sorted.begin(), kth, sorted.end(), std::greater<>());
  const double threshold = *kth;
  int64_t above = 0, tied = 0;
  for (double v : values) {
    above += v > threshold;
    tied += v == threshold;
  }
  const double tie_weight = static_cast<double>(k - above) / static_cast<double>(tied);
  std::vector<double> weights(values.size(), 0.0);
  for (size_t i = 0; i < values.size(); ++i)
    weights[i] = values[i] > threshold ? 1.0 : values[i] == threshold ? tie_weight : 0.0;
  return weights;
}

// A 2-D map [H,W] (also [1,H,W] or [1,1,H,W]) as height, width and row-major doubles.
struct Plane {
  int64_t height = 0, width = 0;
  std::vector<double> data;
};

inline Plane similarity_plane(const torch::Tensor& t, std::string_view what, std::string_view role) {
  if (!t.defined()) fail(what, ": ", role, " is an undefined tensor; expected a map [H,W]");
  const bool ok = t.dim() == 2 || (t.dim() == 3 && t.size(0) == 1) ||
                  (t.dim() == 4 && t.size(0) == 1 && t.size(1) == 1);
  if (!ok)
    fail(what, ": ", role, " has shape ", shape_string(t),
         "; expected a 2-D map [H,W] (or [1,H,W], [1,1,H,W]); reduce channels first");
  Plane plane{t.size(t.dim() - 2), t.size(t.dim() - 1), {}};
  plane.data = similarity_values(t, what, role, /*finite=*/true);
  return plane;
}

}  // namespace detail

// Pearson correlation of two tensors with the same number of values (both flattened). A
// constant side gives 0 (SciPy: NaN). Values must be finite.
inline double pearson(const torch::Tensor& a, const torch::Tensor& b) {
  const auto [x, y] = detail::similarity_pair(a, b, "pearson", /*finite=*/true);
  return detail::pearson_of(x, y);
}

// Spearman rank correlation of two tensors with the same number of values (both flattened):
// the Pearson correlation of their ranks, ties sharing their average rank, as
// scipy.stats.spearmanr. A constant side gives 0 (SciPy: NaN). Infinities rank like any value;
// NaN is an error.
inline double spearman(const torch::Tensor& a, const torch::Tensor& b) {
  const auto [x, y] = detail::similarity_pair(a, b, "spearman", /*finite=*/false);
  return detail::spearman_of(x, y);
}

struct SsimOptions {
  // Side of the uniform window (odd, >= 3). Ignored with gaussian_weights, whose window is
  // 2 * int(3.5 * sigma + 0.5) + 1 (11 for sigma 1.5), as in scikit-image.
  int64_t window = 7;
  bool gaussian_weights = false;  // Gaussian window, population covariance (Wang et al. 2004)
  double sigma = 1.5;             // the Gaussian's standard deviation in pixels
  double data_range = 0;          // 0: max(a, b) - min(a, b) over both maps
  double k1 = 0.01, k2 = 0.03;    // stabilising constants C1 = (k1 R)^2, C2 = (k2 R)^2; > 0
};

// Mean structural similarity of two 2-D maps [H,W] (or [1,H,W], [1,1,H,W]) of the same size,
// equal to skimage.metrics.structural_similarity(a, b, data_range=R, win_size=7) and, with
// gaussian_weights, to (..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False).
// Local means and (co)variances come from the window (uniform: sample covariance, scaled by
// N / (N - 1)); the SSIM image is averaged after cropping (window - 1) / 2 pixels at every
// border. ssim(x, x) is exactly 1; so is ssim of two equal constant maps, whose data range is 0.
inline double ssim(const torch::Tensor& a, const torch::Tensor& b, SsimOptions options = {}) {
  const detail::Plane x = detail::similarity_plane(a, "ssim", "the first map");
  const detail::Plane y = detail::similarity_plane(b, "ssim", "the second map");
  if (x.height != y.height || x.width != y.width)
    detail::fail("ssim: the maps have shapes ", shape_string(a), " and ", shape_string(b),
                 "; expected the same height and width");
  if (!(options.k1 > 0 && options.k2 > 0 && std::isfinite(options.k1) && std::isfinite(options.k2)))
    detail::fail("ssim: k1 = ", options.k1, " and k2 = ", options.k2, "; expected both finite and > 0");
  if (!(options.data_range >= 0 && std::isfinite(options.data_range)))
    detail::fail("ssim: data_range = ", options.data_range,
                 "; expected a finite value > 0, or 0 for the maps' own range");

  std::vector<double> weights;
  bool sample_covariance = true;
  if (options.gaussian_weights) {
    if (!(options.sigma > 0 && options.sigma < 1e6))
      detail::fail("ssim: sigma = ", options.sigma, "; expected a value in (0, 1e6)");
    const auto radius = static_cast<int64_t>(3.5 * options.sigma + 0.5);  // SciPy's truncate 3.5
    for (int64_t i = -radius; i <= radius; ++i)
      weights.push_back(std::exp(-0.5 / (options.sigma * options.sigma) * static_cast<double>(i * i)));
    double total = 0;
    for (double w : weights) total += w;
    for (double& w : weights) w /= total;
    sample_covariance = false;
  } else {
    if (options.window < 3 || options.window % 2 == 0)
      detail::fail("ssim: window = ", options.window, "; expected an odd size >= 3");
    weights.assign(static_cast<size_t>(options.window), 1.0 / static_cast<double>(options.window));
  }
  const auto window = static_cast<int64_t>(weights.size());
  if (x.height < window || x.width < window)
    detail::fail("ssim: maps of ", x.height, "x", x.width, " are smaller than the ", window, "x",
                 window, " window", options.gaussian_weights ? " (from sigma)" : "",
                 "; expected at least ", window, " pixels each way");

  double range = options.data_range;
  if (range == 0) {
    const auto [xmin, xmax] = std::minmax_element(x.data.begin(), x.data.end());
    const auto [ymin, ymax] = std::minmax_element(y.data.begin(), y.data.end());
    range = std::max(*xmax, *ymax) - std::min(*xmin, *ymin);
    if (range == 0) return 1.0;  // two equal constant maps
    if (!std::isfinite(range))
      detail::fail("ssim: the maps' range ", range, " overflows; pass data_range");
  }

  // Only the cropped interior is averaged, and the crop equals the window's radius, so every
  // window used lies inside the image: scikit-image's 'reflect' padding never matters.
  // Separable filtering, streamed: each image row is filtered along x into a ring of the last
  // `window` rows (x, y, x^2, y^2, xy), and each output row combines the ring down y.
  const int64_t h = x.height, w = x.width, out_w = w - window + 1;
  const auto ring_size = static_cast<size_t>(window * 5 * out_w);
  std::vector<double> ring(ring_size);
  std::vector<double> sums(static_cast<size_t>(5 * out_w));
  const auto count = static_cast<double>(window * window);
  const double cov_norm = sample_covariance ? count / (count - 1) : 1.0;
  const double c1 = (options.k1 * range) * (options.k1 * range);
  const double c2 = (options.k2 * range) * (options.k2 * range);
  double total = 0;
  for (int64_t r = 0; r < h; ++r) {
    double* slot = ring.data() + (r % window) * 5 * out_w;
    std::fill(slot, slot + 5 * out_w, 0.0);
    const double* xr = x.data.data() + r * w;
    const double* yr = y.data.data() + r * w;
    for (int64_t k = 0; k < window; ++k) {
      const double wk = weights[static_cast<size_t>(k)];
      for (int64_t i = 0; i < out_w; ++i) {
        const double xv = xr[i + k], yv = yr[i + k];
        slot[i] += wk * xv;
        slot[out_w + i] += wk * yv;
        slot[2 * out_w + i] += wk * (xv * xv);
        slot[3 * out_w + i] += wk * (yv * yv);
        slot[4 * out_w + i] += wk * (xv * yv);
      }
    }
    if (r < window - 1) continue;
    // Output row r - window + 1: rows r - window + 1 .. r of the ring, weights in order.
    std::fill(sums.begin(), sums.end(), 0.0);
    double* acc = sums.data();
    for (int64_t k = 0; k < window; ++k) {
      const double wk = weights[static_cast<size_t>(k)];
      const double* row = ring.data() + ((r - window + 1 + k) % window) * 5 * out_w;
      for (int64_t i = 0; i < 5 * out_w; ++i) acc[i] += wk * row[i];
    }
    const double* m = sums.data();
    for (int64_t i = 0; i < out_w; ++i) {
      const double ux = m[i], uy = m[out_w + i];
      const double uxx = m[2 * out_w + i], uyy = m[3 * out_w + i], uxy = m[4 * out_w + i];
      const double vx = cov_norm * (uxx - ux * ux);
      const double vy = cov_norm * (uyy - uy * uy);
      const double vxy = cov_norm * (uxy - ux * uy);
      const double a1 = 2 * ux * uy + c1, a2 = 2 * vxy + c2;
      const double b1 = ux * ux + uy * uy + c1, b2 = vx + vy + c2;
      total += (a1 * a2) / (b1 * b2);
    }
  }
  return total / static_cast<double>((h - window + 1) * out_w);
}

struct HogOptions {
  int64_t orientations = 9;  // bins over [0, 180) degrees
  int64_t cell = 8;          // pixels per cell, each way
  int64_t block = 3;         // cells per block, each way
};

namespace detail {

// skimage.feature.hog(map, orientations, (cell, cell), (block, block), block_norm='L2-Hys'),
// as doubles. scikit-image sums each cell in float32; this sums in double (differences ~1e-7).
inline std::vector<double> hog_features(const Plane& map, const HogOptions& options) {
  if (options.orientations < 1 || options.cell < 1 || options.block < 1)
    fail("hog: orientations = ", options.orientations, ", cell = ", options.cell,
         ", block = ", options.block, "; expected each >= 1");
  const int64_t h = map.height, w = map.width;
  const int64_t cells_y = h / options.cell, cells_x = w / options.cell;
  if (cells_y < options.block || cells_x < options.block)
    fail("hog: a ", h, "x", w, " map holds ", cells_y, "x", cells_x, " cells of ", options.cell,
         "x", options.cell, " pixels, fewer than one block of ", options.block, "x",
         options.block, " cells; expected at least ", options.block * options.cell,
         " pixels each way");
  const int64_t bins = options.orientations;
  const double per_bin = 180.0 / static_cast<double>(bins);
  std::vector<double> histogram(static_cast<size_t>(cells_y * cells_x * bins), 0.0);
  const double* m = map.data.data();
  // Only pixels inside whole cells count (the rest of the map is ignored, as in skimage).
  for (int64_t r = 0; r < cells_y * options.cell; ++r) {
    for (int64_t c = 0; c < cells_x * options.cell; ++c) {
      // Central differences; the outermost rows / columns get a zero gradient.
      const double g_row = (r == 0 || r == h - 1) ? 0.0 : m[(r + 1) * w + c] - m[(r - 1) * w + c];
      const double g_col = (c == 0 || c == w - 1) ? 0.0 : m[r * w + c + 1] - m[r * w + c - 1];
      const double magnitude = std::hypot(g_row, g_col);
      if (magnitude == 0) continue;
      // Unsigned orientation in degrees: NumPy's remainder of atan2 by 180, whose result can
      // round to exactly 180 for tiny negative angles; such a pixel falls in no bin, as there.
      double angle = std::fmod(std::atan2(g_row, g_col) * (180.0 / std::numbers::pi), 180.0);
      if (angle < 0) angle += 180.0;
      auto bin = static_cast<int64_t>(angle / per_bin);
      bin = std::clamp<int64_t>(bin, 0, bins - 1);
      // Bin i holds [per_bin * i, per_bin * (i + 1)), bounds computed as skimage does.
      if (bin > 0 && angle < per_bin * static_cast<double>(bin)) --bin;
      if (bin < bins - 1 && angle >= per_bin * static_cast<double>(bin + 1)) ++bin;
      if (!(angle >= per_bin * static_cast<double>(bin) &&
            angle < per_bin * static_cast<double>(bin + 1)))
        continue;
      histogram[static_cast<size_t>(((r / options.cell) * cells_x + c / options.cell) * bins + bin)] +=
          magnitude;
    }
  }
  const auto area = static_cast<double>(options.cell * options.cell);
  for (double& v : histogram) v /= area;

  // L2-Hys per block of block x block cells (overlapping, stride one cell): L2-normalise,
  // clip at 0.2, L2-normalise again, eps = 1e-5. Features run block row, block column, then
  // the block's cell row, cell column and bin.
  constexpr double eps2 = 1e-5 * 1e-5;
  const int64_t blocks_y = cells_y - options.block + 1, blocks_x = cells_x - options.block + 1;
  const int64_t block_size = options.block * options.block * bins;
  std::vector<double> features;
  features.reserve(static_cast<size_t>(blocks_y * blocks_x * block_size));
  std::vector<double> block(static_cast<size_t>(block_size));
  for (int64_t by = 0; by < blocks_y; ++by) {
    for (int64_t bx = 0; bx < blocks_x; ++bx) {
      size_t j = 0;
      for (int64_t cy = by; cy < by + options.block; ++cy)
        for (int64_t cx = bx; cx < bx + options.block; ++cx)
          for (int64_t o = 0; o < bins; ++o)
            block[j++] = histogram[static_cast<size_t>((cy * cells_x + cx) * bins + o)];
      double sum = 0;
      for (double v : block) sum += v * v;
      double norm = std::sqrt(sum + eps2);
      sum = 0;
      for (double& v : block) {
        v = std::min(v / norm, 0.2);
        sum += v * v;
      }
      norm = std::sqrt(sum + eps2);
      for (double v : block) features.push_back(v / norm);
    }
  }
  return features;
}

}  // namespace detail

// Histogram-of-oriented-gradients features of a 2-D map [H,W] (or [1,H,W], [1,1,H,W]) as one
// vector, equal to skimage.feature.hog(map, orientations, pixels_per_cell=(cell, cell),
// cells_per_block=(block, block), block_norm='L2-Hys', feature_vector=True): gradients by
// central differences (zero on the border rows and columns), unsigned orientations in
// [0, 180), magnitude histograms per cell divided by the cell's area, overlapping blocks
// normalised by L2-Hys. Pixels beyond the last whole cell are ignored. The result is a CPU
// tensor, double for a double map and float otherwise; values must be finite.
inline torch::Tensor hog(const torch::Tensor& map, HogOptions options = {}) {
  const detail::Plane plane = detail::similarity_plane(map, "hog", "the map");
  std::vector<double> features = detail::hog_features(plane, options);
  auto out = torch::tensor(features, torch::kDouble);
  return map.scalar_type() == torch::kDouble ? out : out.to(torch::kFloat);
}

// Pearson correlation of the two maps' HOG vectors (the sanity-checks paper's "HOG
// similarity"); 0 when either vector is constant, e.g. for a map without gradients.
inline double hog_similarity(const torch::Tensor& a, const torch::Tensor& b, HogOptions options = {}) {
  const detail::Plane x = detail::similarity_plane(a, "hog_similarity", "the first map");
  const detail::Plane y = detail::similarity_plane(b, "hog_similarity", "the second map");
  if (x.height != y.height || x.width != y.width)
    detail::fail("hog_similarity: the maps have shapes ", shape_string(a), " and ",
                 shape_string(b), "; expected the same height and width");
  return detail::pearson_of(detail::hog_features(x, options), detail::hog_features(y, options));
}

// The fraction of the k largest values of `a` whose positions are among the k largest of `b`
// (both flattened, same number of values), k in [1, numel]: |top_k(a) & top_k(b)| / k.
// Values tied with the k-th largest share the places left equally (soft sets, intersected by
// the smaller weight per position), so no pixel order is preferred and equal maps give 1;
// against a map without such ties this is the expected overlap over random tie orders.
// Infinities rank like any value; NaN is an error.
inline double top_k_intersection(const torch::Tensor& a, const torch::Tensor& b, int64_t k) {
  const auto [x, y] = detail::similarity_pair(a, b, "top_k_intersection", /*finite=*/false);
  const auto n = static_cast<int64_t>(x.size());
  if (k < 1 || k > n)
    detail::fail("top_k_intersection: k = ", k, " for maps of ", n, " values; expected k in [1, ",
                 n, "]");
  const std::vector<double> wx = detail::top_k_weights(x, k), wy = detail::top_k_weights(y, k);
  double shared = 0;
  for (size_t i = 0; i < wx.size(); ++i) shared += std::min(wx[i], wy[i]);
  return shared / static_cast<double>(k);
}

}  // namespace salient
