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
// - top-k in mask (Theiner et al. 2021, "Interpretable semantic photo geolocalization";
//   Quantus TopKIntersection): the fraction of the k highest-attributed pixels inside the region,
//   optionally divided by the region's share of the image (concept influence).
// - attribution localisation (Kohlbrenner et al. 2020, "Towards best practice in explaining
//   neural network decisions with LRP"; Quantus AttributionLocalisation): the share of the
//   attribution magnitude inside the region, optionally weighted by the region's size.
// - mask AUC (Fawcett 2006, "An introduction to ROC analysis"; Quantus AUC): the ROC AUC of the
//   map's values as scores for the region's pixels.
// Quantus normalises maps by their largest magnitude before these metrics (normalise=True,
// normalise_by_max); a positive scale changes none of them, so it is not repeated here.
//
// Maps: [H,W], [1,H,W] or [1,1,H,W]; [C,H,W] or [1,C,H,W] with C > 1 are summed over channels
// first (signed sum, so opposite channel evidence cancels; pass |attribution| for magnitudes).
// Values must be finite. Masks: [H,W] (or [1,H,W], [1,1,H,W]) of booleans or 0/1 numbers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
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

// Top-k in mask (Quantus TopKIntersection, defaults k = 1000, concept_influence = false,
// abs = false): the fraction of the k highest-valued pixels of the signed map that lie in the
// mask, in [0, 1]. concept_influence divides it by the mask's share of the image (multiplies by
// H W / |mask|), so a map that picks pixels at random scores 1 on average, whatever the
// mask's size. k must be in [1, H W] (Quantus also rejects k = H W, where every map scores the
// mask's share). Pixels tied with the k-th highest value share the places left equally, as in
// relevance_rank_accuracy; Quantus takes the last k of numpy's argsort, so on such ties its
// number depends on the sort order (without a tie at the k-th value the two agree).
inline double top_k_in_mask(const torch::Tensor& map, const torch::Tensor& mask, int64_t k = 1000,
                            bool concept_influence = false) {
  const detail::Plane plane = detail::localisation_map(map, "top_k_in_mask");
  const std::vector<uint8_t> region = detail::localisation_mask(mask, map, plane, "top_k_in_mask");
  const auto pixels = static_cast<int64_t>(plane.data.size());
  if (k < 1 || k > pixels)
    detail::fail("top_k_in_mask: k = ", k, " for a ", plane.height, "x", plane.width, " map (", pixels,
                 " pixels); expected k in [1, ", pixels, "]");
  const std::vector<double> weights = detail::top_k_weights(plane.data, k);
  double hits = 0;
  int64_t inside = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!region[i]) continue;
    hits += weights[i];
    ++inside;
  }
  const double share = hits / static_cast<double>(k);
  return concept_influence ? share * static_cast<double>(pixels) / static_cast<double>(inside) : share;
}

// Attribution localisation (Quantus AttributionLocalisation, defaults abs = true,
// weighted = false): sum of |map| inside the mask over the sum of |map| everywhere, in [0, 1]
// (channels are summed before the magnitude is taken). NaN when the map is all zero (0 / 0, as
// Quantus). Kohlbrenner et al. count positive relevance only; that ratio is
// energy_pointing_game, and the two agree on non-negative maps.
// weighted multiplies the ratio by the mask's share of the image, |mask| / (H W), as Quantus
// does (its evaluate_instance: ratio * size_bbox / size_data). Note that this is the inverse of
// the paper's size correction (mu * S_tot / S_in, which makes a uniform map score 1), and that
// Quantus' size_data counts the input's values, C H W, so for a C-channel input Quantus' weighted
// score is this one divided by C.
inline double attribution_localisation(const torch::Tensor& map, const torch::Tensor& mask,
                                       bool weighted = false) {
  const detail::Plane plane = detail::localisation_map(map, "attribution_localisation");
  const std::vector<uint8_t> region = detail::localisation_mask(mask, map, plane, "attribution_localisation");
  double in = 0, total = 0;
  int64_t inside = 0;
  for (size_t i = 0; i < plane.data.size(); ++i) {
    const double v = std::abs(plane.data[i]);
    total += v;
    if (region[i]) {
      in += v;
      ++inside;
    }
  }
  if (total == 0) return std::numeric_limits<double>::quiet_NaN();
  // in <= total up to rounding; Quantus returns NaN above 1, which only rounding could reach here.
  const double ratio = std::min(in / total, 1.0);
  return weighted ? ratio * static_cast<double>(inside) / static_cast<double>(plane.data.size()) : ratio;
}

// Mask AUC (Quantus AUC, defaults abs = false): the area under the ROC curve of the signed map's
// values as scores for the mask's pixels (sklearn roc_curve + auc, equal to roc_auc_score), in
// [0, 1]. It is the chance that a random mask pixel outscores a random pixel outside, ties
// counting one half (the Mann-Whitney statistic): 1 when every mask pixel is above every other
// pixel, 0 when below, 0.5 for a constant map. The mask must hold both kinds of pixel (Quantus
// gives NaN for an empty mask and sklearn an undefined curve for a full one).
inline double mask_auc(const torch::Tensor& map, const torch::Tensor& mask) {
  const detail::Plane plane = detail::localisation_map(map, "mask_auc");
  const std::vector<uint8_t> region = detail::localisation_mask(mask, map, plane, "mask_auc");
  const auto pixels = static_cast<int64_t>(plane.data.size());
  const int64_t positives = std::accumulate(region.begin(), region.end(), int64_t{0});
  if (positives == pixels)
    detail::fail("mask_auc: the mask of shape ", shape_string(mask), " selects all ", pixels,
                 " pixels; expected some pixels outside it (the AUC needs both kinds)");
  std::vector<size_t> order(plane.data.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return plane.data[a] < plane.data[b]; });
  // Walk groups of equal values upwards; twice the credit stays an exact integer.
  int64_t twice_credit = 0, negatives_below = 0;
  for (size_t start = 0; start < order.size();) {
    size_t end = start;
    int64_t pos = 0, neg = 0;
    while (end < order.size() && plane.data[order[end]] == plane.data[order[start]]) {
      (region[order[end]] ? pos : neg) += 1;
      ++end;
    }
    twice_credit += 2 * pos * negatives_below + pos * neg;
    negatives_below += neg;
    start = end;
  }
  const int64_t negatives = pixels - positives;
  return static_cast<double>(twice_credit) /
         (2.0 * static_cast<double>(positives) * static_cast<double>(negatives));
}

}  // namespace salient
