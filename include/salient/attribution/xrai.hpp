#pragma once
// XRAI (Kapishnikov, Bolukbasi, Viégas, Terry 2019, "XRAI: Better Attributions Through
// Regions"), as PAIR's saliency library (v0.2.1, XRAI with algorithm "full") computes it:
//
// 1. Attribution: integrated gradients from two baselines, black = min(x) and white = max(x)
//    (over the whole item), each with PAIR's path: `steps` points alpha_k = k / (steps - 1),
//    the summed gradient times (x - baseline) / steps; the two averaged, then the maximum over
//    the channels gives one value per pixel.
// 2. Segments: the item min-max scaled to [-1, 1] (one minimum and maximum over all
//    channels), Felzenszwalb segmentation (skimage's, see segmentation/felzenszwalb.hpp) at
//    each of `scales` with `sigma` and `min_segment_size`; every segment of every scale is a
//    mask, dilated by a disk of `dilation_radius` pixels (skimage.morphology.disk).
// 3. Regions: starting from nothing, repeatedly take the mask whose pixels not yet taken have
//    the highest mean attribution (the gain), dropping masks that would add fewer than
//    `min_pixel_diff` pixels, while the area taken is at most `area_threshold`; ties go to the
//    mask listed first (scale order, then label order). A pixel's XRAI value is the gain of
//    the region that took it; pixels no mask took form one last region valued by their mean.
//    Regions are ranked by gain (stable), the leftover last.
//
// PAIR resamples the image to 224x224 for the segmentation and the labels back (cubic spline,
// then nearest): salient segments at the input's own size, which is the same for 224x224
// inputs (PAIR's resampling is then the identity) and avoids a resampling for the others.
// `xrai_regions` runs steps 2-3 on any per-pixel attribution (PAIR's `base_attribution`).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "salient/core/model.hpp"
#include "salient/core/options.hpp"
#include "salient/segmentation/felzenszwalb.hpp"

namespace salient {

// PAIR's XRAIParameters and segmentation constants.
struct XraiOptions {
  int64_t steps = 100;                                          // IG path points per baseline
  std::vector<double> scales = {50, 100, 150, 250, 500, 1200};  // Felzenszwalb scales
  double sigma = 0.8;                                           // Felzenszwalb smoothing, pixels
  int64_t min_segment_size = 150;                               // Felzenszwalb min_size, pixels
  int64_t dilation_radius = 5;                                  // disk dilating each segment (0: none)
  double area_threshold = 1.0;                                  // stop once more than this share is taken
  int64_t min_pixel_diff = 50;                                  // a mask must add at least this many pixels
  int64_t batch_size = 16;                                      // path points per model call
  Progress progress = {};                                       // in path points
};

template <class Visit>
void for_each_option(XraiOptions& o, Visit&& visit) {
  visit("steps", o.steps), visit("scales", o.scales), visit("sigma", o.sigma);
  visit("min_segment_size", o.min_segment_size), visit("dilation_radius", o.dilation_radius);
  visit("area_threshold", o.area_threshold), visit("min_pixel_diff", o.min_pixel_diff);
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}

struct XraiRegion {
  std::vector<int32_t> pixels;  // y * width + x, ascending: the pixels this region took
  double gain = 0;              // their mean attribution
};

// One item's regions: they partition the image.
struct XraiRegions {
  int64_t height = 0, width = 0;
  std::vector<double> attribution;  // per pixel: the gain of the region that took it (PAIR's map)
  std::vector<int32_t> ranks;       // per pixel: 1 for the best region, 2 for the next, ...
  std::vector<XraiRegion> regions;  // by gain, best first (PAIR's order); then the leftover, if any
  bool leftover = false;            // the last region holds the pixels no mask took
};

template <class Tensor>
struct XraiResult {
  Tensor attribution;                // [N, 1, H, W]: XRAI's per-pixel gains
  std::vector<XraiRegions> regions;  // per item
};

namespace detail {
inline void check_xrai_options(const XraiOptions& o) {
  if (o.steps < 2 || o.steps > 100'000) fail("XRAI steps must be in [2, 100000], got ", o.steps);
  if (o.scales.empty() || o.scales.size() > 64) fail("XRAI needs 1 to 64 segmentation scales, got ", o.scales.size());
  for (const double s : o.scales)
    if (!(s > 0) || !std::isfinite(s)) fail("XRAI scales must be positive, got ", s);
  if (o.min_segment_size < 0 || o.min_segment_size > max_option_count)
    fail("XRAI min_segment_size must be in [0, ", max_option_count, "], got ", o.min_segment_size);
  if (o.dilation_radius < 0 || o.dilation_radius > 1000)
    fail("XRAI dilation_radius must be in [0, 1000] pixels, got ", o.dilation_radius);
  if (!(o.area_threshold >= 0 && o.area_threshold <= 1))
    fail("XRAI area_threshold must be in [0, 1], got ", o.area_threshold);
  if (o.min_pixel_diff < 1 || o.min_pixel_diff > max_option_count)
    fail("XRAI min_pixel_diff must be in [1, ", max_option_count, "], got ", o.min_pixel_diff);
  check_batch_size(o.batch_size, "XRAI");
}

// Every segment of every scale as its dilated pixel list (ascending), scale by scale, labels
// in order.
inline std::vector<std::vector<int32_t>> xrai_masks(const Image& image, const XraiOptions& options) {
  const int64_t height = image.height, width = image.width, n = height * width;
  // PAIR's _normalize_image in float32: (x - min) / (max - min) * 2 - 1.
  Image scaled = image;
  const auto [low, high] = std::minmax_element(image.data.begin(), image.data.end());
  const float lowest = *low, range = *high - *low;
  for (auto& v : scaled.data) v = range > 0 ? (v - lowest) / range * 2.0f + -1.0f : 0.0f;
  std::vector<std::array<int32_t, 2>> disk;  // skimage.morphology.disk: x^2 + y^2 <= r^2
  const int64_t r = options.dilation_radius;
  for (int64_t dy = -r; dy <= r; ++dy)
    for (int64_t dx = -r; dx <= r; ++dx)
      if (dx * dx + dy * dy <= r * r) disk.push_back({static_cast<int32_t>(dy), static_cast<int32_t>(dx)});
  std::vector<std::vector<int32_t>> masks;
  std::vector<uint8_t> marked(static_cast<std::size_t>(n), 0);
  for (const double scale : options.scales) {
    const LabelMap map = felzenszwalb(scaled, {.scale = scale, .sigma = options.sigma, .min_size = options.min_segment_size});
    std::vector<std::vector<int32_t>> members(static_cast<std::size_t>(map.count));
    for (int64_t p = 0; p < n; ++p) members[map.labels[p]].push_back(static_cast<int32_t>(p));
    for (auto& segment : members) {
      // Dilation (a maximum filter with the disk; skimage's "reflect" border adds nothing
      // the disk does not already reach). Only edge pixels of the segment can reach outside it.
      std::vector<int32_t> dilated;
      const auto label = map.labels[segment.front()];
      for (const int32_t p : segment) {
        const int64_t y = p / width, x = p % width;
        const bool interior = y > 0 && y + 1 < height && x > 0 && x + 1 < width && map.labels[p - 1] == label &&
                              map.labels[p + 1] == label && map.labels[p - width] == label && map.labels[p + width] == label;
        if (interior) {
          if (!marked[p]) marked[p] = 1, dilated.push_back(p);
          continue;
        }
        for (const auto& [dy, dx] : disk) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
          const auto q = static_cast<int32_t>(yy * width + xx);
          if (!marked[q]) marked[q] = 1, dilated.push_back(q);
        }
      }
      for (const int32_t q : dilated) marked[q] = 0;
      std::sort(dilated.begin(), dilated.end());
      masks.push_back(std::move(dilated));
    }
  }
  return masks;
}
}  // namespace detail

// XRAI's segments and greedy region ranking (steps 2-3 above) for one item: `attribution` holds
// height x width values (row-major), `image` is the model input the segments come from.
inline XraiRegions xrai_regions(const std::vector<double>& attribution, const Image& image, const XraiOptions& options = {}) {
  detail::check_xrai_options(options);
  detail::check_image(image, "XRAI");
  const int64_t height = image.height, width = image.width, n = height * width;
  if (static_cast<int64_t>(attribution.size()) != n)
    detail::fail("XRAI: the attribution has ", attribution.size(), " values for a ", height, "x", width, " image");
  for (const double a : attribution)
    if (!std::isfinite(a)) detail::fail("XRAI: the attribution holds a non-finite value (", a, ")");
  const auto masks = detail::xrai_masks(image, options);

  // Which masks hold each pixel, so that taking a region updates only the masks it touches.
  std::vector<int32_t> start(static_cast<std::size_t>(n + 1), 0), holders;
  for (const auto& mask : masks)
    for (const int32_t p : mask) ++start[p + 1];
  for (int64_t p = 0; p < n; ++p) start[p + 1] += start[p];
  holders.resize(static_cast<std::size_t>(start[n]));
  {
    std::vector<int32_t> fill(start.begin(), start.end() - 1);
    for (std::size_t m = 0; m < masks.size(); ++m)
      for (const int32_t p : masks[m]) holders[fill[p]++] = static_cast<int32_t>(m);
  }
  std::vector<uint8_t> taken(static_cast<std::size_t>(n), 0), alive(masks.size(), 1), stale(masks.size(), 1);
  std::vector<int64_t> free_count(masks.size(), 0);
  std::vector<double> free_sum(masks.size(), 0.0);
  XraiRegions out;
  out.height = height, out.width = width;
  out.attribution.assign(static_cast<std::size_t>(n), 0.0);
  int64_t taken_count = 0;
  while (static_cast<double>(taken_count) / static_cast<double>(n) <= options.area_threshold) {
    int64_t best = -1;
    double best_gain = -std::numeric_limits<double>::infinity();
    for (std::size_t m = 0; m < masks.size(); ++m) {
      if (!alive[m]) continue;
      if (stale[m]) {  // summed afresh in pixel order, so a gain never carries rounding from earlier rounds
        free_count[m] = 0, free_sum[m] = 0;
        for (const int32_t p : masks[m])
          if (!taken[p]) ++free_count[m], free_sum[m] += attribution[p];
        stale[m] = 0;
      }
      if (free_count[m] < options.min_pixel_diff) {
        alive[m] = 0;
        continue;
      }
      const double gain = free_sum[m] / static_cast<double>(free_count[m]);
      if (gain > best_gain) best_gain = gain, best = static_cast<int64_t>(m);
    }
    if (best < 0) break;
    XraiRegion region{.pixels = {}, .gain = best_gain};
    for (const int32_t p : masks[best]) {
      if (taken[p]) continue;
      taken[p] = 1;
      region.pixels.push_back(p);
      out.attribution[p] = best_gain;
      for (int32_t h = start[p]; h < start[p + 1]; ++h) stale[holders[h]] = 1;
    }
    taken_count += static_cast<int64_t>(region.pixels.size());
    alive[best] = 0;
    out.regions.push_back(std::move(region));
  }
  std::stable_sort(out.regions.begin(), out.regions.end(), [](const XraiRegion& a, const XraiRegion& b) { return a.gain > b.gain; });
  if (taken_count < n) {
    XraiRegion rest;
    double sum = 0;
    for (int64_t p = 0; p < n; ++p)
      if (!taken[p]) rest.pixels.push_back(static_cast<int32_t>(p)), sum += attribution[p];
    rest.gain = sum / static_cast<double>(rest.pixels.size());
    for (const int32_t p : rest.pixels) out.attribution[p] = rest.gain;
    out.regions.push_back(std::move(rest));
    out.leftover = true;
  }
  out.ranks.assign(static_cast<std::size_t>(n), 0);
  for (std::size_t r = 0; r < out.regions.size(); ++r)
    for (const int32_t p : out.regions[r].pixels) out.ranks[p] = static_cast<int32_t>(r + 1);
  return out;
}

// XRAI of each item: IG from the black and white baselines (step 1), then `xrai_regions`.
template <Model M>
XraiResult<TensorOf<M>> xrai(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const XraiOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  detail::check_xrai_options(options);
  const auto shape = B::shape(inputs);
  if (shape.size() != 4) detail::fail("XRAI needs images [N, C, H, W], got ", detail::shape_text(shape));
  const int64_t n = shape[0], channels = shape[1], height = shape[2], width = shape[3], plane = height * width;
  const auto size = static_cast<std::size_t>(channels * plane);
  const auto resolved = resolve_target(model, inputs, target);
  const auto values = B::to_vector(inputs);
  // numpy.linspace(0, 1, steps), PAIR's path points; each point is formed in float as PAIR does.
  std::vector<float> alphas(static_cast<std::size_t>(options.steps));
  for (int64_t k = 0; k < options.steps; ++k)
    alphas[k] = static_cast<float>(k == options.steps - 1 ? 1.0 : static_cast<double>(k) * (1.0 / static_cast<double>(options.steps - 1)));
  XraiResult<TensorOf<M>> result;
  std::vector<double> maps;
  maps.reserve(static_cast<std::size_t>(n * plane));
  for (int64_t item = 0; item < n; ++item) {
    const std::vector<float> x(values.begin() + static_cast<std::ptrdiff_t>(item * size),
                               values.begin() + static_cast<std::ptrdiff_t>((item + 1) * size));
    const auto [low, high] = std::minmax_element(x.begin(), x.end());
    std::vector<double> mean_ig(size, 0.0);
    int64_t done = 0;
    for (const float baseline : {*low, *high}) {
      std::vector<float> difference(size);
      for (std::size_t i = 0; i < size; ++i) difference[i] = x[i] - baseline;
      std::vector<double> gradient_sum(size, 0.0);
      detail::for_each_chunk(options.steps, options.batch_size, [&](int64_t first, int64_t last) {
        std::vector<double> points;
        points.reserve(static_cast<std::size_t>(last - first) * size);
        for (int64_t k = first; k < last; ++k)
          for (std::size_t i = 0; i < size; ++i) points.push_back(baseline + alphas[k] * difference[i]);
        const std::vector<int64_t> chunk_shape{last - first, channels, height, width};
        const auto gradient = B::to_vector(model.gradient(B::from_values(points, chunk_shape, inputs),
                                                          resolved.slice(item, item + 1).tiled(last - first)).gradient);
        for (int64_t k = 0; k < last - first; ++k)
          for (std::size_t i = 0; i < size; ++i) gradient_sum[i] += gradient[k * size + i];
        done += last - first;
        if (options.progress) options.progress(item * 2 * options.steps + done, n * 2 * options.steps);
      });
      for (std::size_t i = 0; i < size; ++i)
        mean_ig[i] += 0.5 * gradient_sum[i] * difference[i] / static_cast<double>(options.steps);
    }
    std::vector<double> per_pixel(mean_ig.begin(), mean_ig.begin() + plane);  // max over channels
    for (int64_t c = 1; c < channels; ++c)
      for (int64_t p = 0; p < plane; ++p) per_pixel[p] = std::max(per_pixel[p], mean_ig[c * plane + p]);
    Image image(channels, height, width);
    image.data = x;
    result.regions.push_back(xrai_regions(per_pixel, image, options));
    maps.insert(maps.end(), result.regions.back().attribution.begin(), result.regions.back().attribution.end());
  }
  result.attribution = B::from_values(maps, {n, 1, height, width}, inputs);
  return result;
}

}  // namespace salient
