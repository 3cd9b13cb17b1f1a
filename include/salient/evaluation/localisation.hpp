#pragma once
// Localisation: does an attribution map point at the object? Each measure compares a map with
// a ground-truth region (a 0/1 mask, or boxes turned into one):
// - pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop"):
//   is the map's maximum on the object, within a tolerance?
// - energy pointing game (Wang et al. 2020, Score-CAM) and relevance mass accuracy (Arras et
//   al. 2022, CLEVR-XAI; Quantus): the share of positive attribution inside the region. The two
//   papers define the same ratio; both names are offered so results can be reported as either.
// - relevance rank accuracy (Arras et al. 2022; Quantus): with K the region's pixel count, the
//   fraction of the K highest-attributed pixels inside it.
//
// Maps: [H,W], [1,H,W] or [1,1,H,W]; [C,H,W] or [1,C,H,W] with C > 1 are summed over channels
// first (signed sum, so opposite channel evidence cancels; pass |attribution| for magnitudes).
// Values must be finite. Masks: [H,W] (or [1,H,W], [1,1,H,W]) of booleans or 0/1 numbers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/evaluation/similarity.hpp"

namespace salient {

// A box in pixel coordinates: columns x0 <= x < x1, rows y0 <= y < y1 (x1, y1 exclusive, so
// the box is (x1 - x0) x (y1 - y0) pixels); e.g. {0, 0, W, H} is the whole image.
struct Box {
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

// The union of the boxes as a boolean mask [height, width]. Every box must be non-empty and lie
// inside the image.
inline torch::Tensor box_mask(const std::vector<Box>& boxes, int64_t height, int64_t width) {
  if (height < 1 || width < 1)
    detail::fail("box_mask: image size ", height, "x", width, " (height x width); expected at least 1x1");
  if (boxes.empty()) detail::fail("box_mask: no boxes given; expected at least one");
  auto mask = torch::zeros({height, width}, torch::kBool);
  auto* m = mask.data_ptr<bool>();
  for (size_t i = 0; i < boxes.size(); ++i) {
    const Box& b = boxes[i];
    if (b.x1 <= b.x0 || b.y1 <= b.y0)
      detail::fail("box_mask: box ", i, " {x0=", b.x0, ", y0=", b.y0, ", x1=", b.x1, ", y1=", b.y1,
                   "} is empty or inverted; expected x0 < x1 and y0 < y1 (x1, y1 exclusive)");
    if (b.x0 < 0 || b.y0 < 0 || b.x1 > width || b.y1 > height)
      detail::fail("box_mask: box ", i, " {x0=", b.x0, ", y0=", b.y0, ", x1=", b.x1, ", y1=", b.y1,
                   "} is outside the ", height, "x", width, " image (height x width); expected 0 <= x0, x1 <= ",
                   width, ", 0 <= y0, y1 <= ", height);
    for (int64_t y = b.y0; y < b.y1; ++y) std::fill(m + y * width + b.x0, m + y * width + b.x1, true);
  }
  return mask;
}

namespace detail {

// The map reduced to one plane [H,W] (channels summed), as row-major doubles.
inline Plane localisation_map(const torch::Tensor& map, std::string_view what) {
  if (!map.defined()) fail(what, ": the map is an undefined tensor; expected [H,W]");
  if (map.is_complex())
    fail(what, ": the map has complex dtype ", map.scalar_type(), "; expected real values");
  torch::Tensor plane;
  if (map.dim() == 2) {
    plane = map;
  } else if (map.dim() == 3) {
    plane = map.sum(0, false, torch::kDouble);
  } else if (map.dim() == 4 && map.size(0) == 1) {
    plane = map[0].sum(0, false, torch::kDouble);
  } else {
    fail(what, ": the map has shape ", shape_string(map),
         "; expected [H,W], [C,H,W] or [1,C,H,W] (channels are summed)");
  }
  Plane out{plane.size(0), plane.size(1), {}};
  out.data = similarity_values(plane, what, "the map", /*finite=*/true);
  return out;
}

// The mask as 0/1 bytes, checked against the map's height and width; never empty.
inline std::vector<uint8_t> localisation_mask(const torch::Tensor& mask, const torch::Tensor& map,
                                              const Plane& plane, std::string_view what) {
  if (!mask.defined()) fail(what, ": the mask is an undefined tensor; expected [H,W]");
  const bool shape_ok = mask.dim() >= 2 && mask.dim() <= 4 &&
                        mask.size(mask.dim() - 2) == plane.height &&
                        mask.size(mask.dim() - 1) == plane.width &&
                        (mask.dim() < 3 || mask.size(0) == 1) && (mask.dim() < 4 || mask.size(1) == 1);
  if (!shape_ok)
    fail(what, ": the mask has shape ", shape_string(mask), " but the map has shape ",
         shape_string(map), "; expected a mask [", plane.height, ",", plane.width,
         "] (or [1,H,W], [1,1,H,W]) of the map's height and width");
  const std::vector<double> values = similarity_values(mask, what, "the mask", /*finite=*/true);
  std::vector<uint8_t> out(values.size());
  size_t inside = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] != 0 && values[i] != 1)
      fail(what, ": the mask holds ", values[i], " at (y=", static_cast<int64_t>(i) / plane.width,
           ", x=", static_cast<int64_t>(i) % plane.width, "); expected booleans or 0/1 values");
    out[i] = values[i] == 1;
    inside += out[i];
  }
  if (inside == 0)
    fail(what, ": the mask of shape ", shape_string(mask),
         " selects no pixel; expected a region of at least one pixel");
  return out;
}

// Share of the positive attribution that lies inside the mask; 0 when there is none.
inline double positive_share(const torch::Tensor& map, const torch::Tensor& mask, std::string_view what) {
  const Plane plane = localisation_map(map, what);
  const std::vector<uint8_t> region = localisation_mask(mask, map, plane, what);
  double inside = 0, total = 0;
  for (size_t i = 0; i < plane.data.size(); ++i) {
    const double v = std::max(plane.data[i], 0.0);
    total += v;
    if (region[i]) inside += v;
  }
  return total > 0 ? inside / total : 0.0;
}

}  // namespace detail

// Pointing game: true if a maximum of the map lies within `tolerance` pixels (Euclidean
// distance between pixel centres) of a mask pixel; tolerance 0 asks for the maximum to be on
// the mask, Zhang et al. use 15 pixels. When several pixels share the maximum value, the game
// is a hit if any of them is (a constant map hits whenever the region is reachable).
inline bool pointing_game(const torch::Tensor& map, const torch::Tensor& mask, int64_t tolerance = 0) {
  const detail::Plane plane = detail::localisation_map(map, "pointing_game");
  const std::vector<uint8_t> region = detail::localisation_mask(mask, map, plane, "pointing_game");
  if (tolerance < 0)
    detail::fail("pointing_game: tolerance = ", tolerance, " pixels; expected >= 0");
  const int64_t h = plane.height, w = plane.width;
  // No two pixels are farther apart than h + w, so larger tolerances change nothing.
  const int64_t t = std::min(tolerance, h + w);
  // Per row, prefix counts of mask pixels: any mask pixel in a row segment in O(1).
  std::vector<int64_t> prefix(static_cast<size_t>(h * (w + 1)), 0);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      prefix[static_cast<size_t>(y * (w + 1) + x + 1)] =
          prefix[static_cast<size_t>(y * (w + 1) + x)] + region[static_cast<size_t>(y * w + x)];
  const double top = *std::max_element(plane.data.begin(), plane.data.end());
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      if (plane.data[static_cast<size_t>(y * w + x)] != top) continue;
      for (int64_t dy = -std::min(t, y); dy <= std::min(t, h - 1 - y); ++dy) {
        // Largest dx with dx^2 + dy^2 <= t^2, in exact integers.
        const int64_t rest = t * t - dy * dy;
        auto half = static_cast<int64_t>(std::sqrt(static_cast<double>(rest)));
        while (half * half > rest) --half;
        while ((half + 1) * (half + 1) <= rest) ++half;
        const int64_t lo = std::max<int64_t>(0, x - half), hi = std::min(w, x + half + 1);
        const int64_t* row = prefix.data() + (y + dy) * (w + 1);
        if (row[hi] - row[lo] > 0) return true;
      }
    }
  }
  return false;
}

// Energy-based pointing game (Score-CAM): sum of the positive attribution inside the mask over
// the sum of all positive attribution, in [0, 1]; 0 when no attribution is positive.
inline double energy_pointing_game(const torch::Tensor& map, const torch::Tensor& mask) {
  return detail::positive_share(map, mask, "energy_pointing_game");
}

// Relevance mass accuracy (Arras et al. 2022): the positive relevance inside the mask over all
// positive relevance (negative relevance is ignored), in [0, 1]; 0 when none is positive. The
// same ratio as energy_pointing_game. Quantus sums signed values instead; the two agree on
// non-negative maps.
inline double relevance_mass_accuracy(const torch::Tensor& map, const torch::Tensor& mask) {
  return detail::positive_share(map, mask, "relevance_mass_accuracy");
}

// Relevance rank accuracy (Arras et al. 2022; Quantus): with K the number of mask pixels, the
// fraction of the K highest-valued pixels of the (signed) map that lie in the mask, in [0, 1].
// Pixels tied with the K-th highest value share the places left equally (each counts with the
// chance it is picked when ties are ordered at random), so a constant map scores K / (H W)
// wherever the region is; Quantus breaks such ties by sort order.
inline double relevance_rank_accuracy(const torch::Tensor& map, const torch::Tensor& mask) {
  const detail::Plane plane = detail::localisation_map(map, "relevance_rank_accuracy");
  const std::vector<uint8_t> region = detail::localisation_mask(mask, map, plane, "relevance_rank_accuracy");
  int64_t k = 0;
  for (uint8_t r : region) k += r;
  const std::vector<double> weights = detail::top_k_weights(plane.data, k);
  double hits = 0;
  for (size_t i = 0; i < weights.size(); ++i)
    if (region[i]) hits += weights[i];
  return hits / static_cast<double>(k);
}

}  // namespace salient
