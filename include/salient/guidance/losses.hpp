#pragma once
// Localisation losses for model guidance (Rao et al. 2023, "Studying how to efficiently and
// effectively guide models with explanations"): added to the classification loss, they push a
// model's attributions for the true class into annotated boxes. Each takes attributions
// A [N,h,w] (differentiable, e.g. from guided_forward) and annotation masks M [N,h,w] (1 inside
// the boxes, at the attributions' resolution) and returns the mean over the annotated images.
//
//   energy:  1 - sum(M * A+) / sum(A+), A+ = max(A, 0)  (the paper's Energy loss; when the
//            image has no positive attribution at all, 1 - sum(M * A+), as the reference code)
//   l1:      mean |A^ - M| over pixels, A^ = A+ / max(A+)  (GRADIA; Gao et al. 2022)
//   rrr:     sum((1 - M) * A^2)  ("right for the right reasons"; Ross et al. 2017)
//   ppce:    mean over pixels inside the boxes of -log(A^)  (per-pixel cross-entropy with
//            target 1; A^ clamped at 1e-30, so -log is at most 69 where torch's BCE caps it at
//            100; HAICS, Shen et al. 2021)
//
// Images without annotation do not contribute; a batch without any gives a zero loss that is
// still part of the graph (backward works and adds nothing).
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/evaluation/localisation.hpp"

namespace salient {

enum class GuidanceLoss { energy, l1, rrr, ppce };

inline GuidanceLoss parse_guidance_loss(std::string_view name) {
  if (name == "energy") return GuidanceLoss::energy;
  if (name == "l1") return GuidanceLoss::l1;
  if (name == "rrr") return GuidanceLoss::rrr;
  if (name == "ppce") return GuidanceLoss::ppce;
  detail::fail("unknown guidance loss '", name, "' (expected energy, l1, rrr or ppce)");
}

// Annotation masks at an attribution's resolution: masks [N,h,w] float and annotated [N] bool.
struct Annotations {
  torch::Tensor masks;
  torch::Tensor annotated;
};

// Boxes per image (in input pixels of an image_height x image_width input; an empty list: the
// image is not annotated) as masks at h x w. A box covers every cell it overlaps, so a box is
// never lost when the attribution is coarser than the input.
inline Annotations box_annotations(const std::vector<std::vector<Box>>& boxes, int64_t image_height,
                                   int64_t image_width, int64_t height, int64_t width) {
  if (height < 1 || width < 1) detail::fail("annotation masks need a size of at least 1x1, got ", height, "x", width);
  const int64_t n = static_cast<int64_t>(boxes.size());
  Annotations out{torch::zeros({n, height, width}), torch::zeros({n}, torch::kBool)};
  for (int64_t i = 0; i < n; ++i) {
    if (boxes[i].empty()) continue;
    box_mask(boxes[i], image_height, image_width);  // validates every box against the image
    for (const auto& b : boxes[i]) {
      const auto y0 = b.y0 * height / image_height, x0 = b.x0 * width / image_width;
      const auto y1 = (b.y1 * height + image_height - 1) / image_height, x1 = (b.x1 * width + image_width - 1) / image_width;
      out.masks[i].slice(0, y0, std::max(y1, y0 + 1)).slice(1, x0, std::max(x1, x0 + 1)).fill_(1);
    }
    out.annotated[i] = true;
  }
  return out;
}

namespace detail {
inline void check_guidance(const torch::Tensor& attributions, const Annotations& annotations) {
  if (attributions.dim() != 3)
    fail("guidance losses need attributions [N,h,w], got shape ", shape_string(attributions));
  if (!annotations.masks.defined() || annotations.masks.sizes() != attributions.sizes())
    fail("annotation masks of shape ", annotations.masks.defined() ? shape_string(annotations.masks) : "[]",
         " do not match attributions ", shape_string(attributions), " (make them with box_annotations at the "
         "attributions' size)");
  if (!annotations.annotated.defined() || annotations.annotated.dim() != 1 ||
      annotations.annotated.size(0) != attributions.size(0))
    fail("annotations mark ", annotations.annotated.defined() ? annotations.annotated.numel() : 0, " images for ",
         attributions.size(0), " attributions");
}

// A+ scaled to [0, 1] per image (the L1 and PPCE losses compare it with the mask).
inline torch::Tensor scaled_positive(const torch::Tensor& a) {
  auto positive = a.clamp_min(0);
  return positive / std::get<0>(positive.flatten(1).max(1)).clamp_min(1e-12).view({-1, 1, 1});
}
}  // namespace detail

// The loss of each image [N] (annotated or not).
inline torch::Tensor guidance_loss_per_image(GuidanceLoss kind, const torch::Tensor& attributions,
                                             const Annotations& annotations) {
  detail::check_guidance(attributions, annotations);
  const auto& a = attributions;
  auto m = annotations.masks.to(a.options());
  switch (kind) {
    case GuidanceLoss::energy: {
      auto positive = a.clamp_min(0);
      auto inside = (positive * m).sum({1, 2}), total = positive.sum({1, 2});
      auto share = torch::where(total < 1e-7, inside, inside / total.clamp_min(1e-7));
      return 1 - share;
    }
    case GuidanceLoss::l1: return (detail::scaled_positive(a) - m).abs().mean({1, 2});
    case GuidanceLoss::rrr: return ((1 - m) * a * a).sum({1, 2});
    case GuidanceLoss::ppce: {
      // Clamped before the log: log's gradient stays finite in float (1e30) where A^ is 0.
      auto log_scaled = torch::log(detail::scaled_positive(a).clamp_min(1e-30));
      return -(log_scaled * m).sum({1, 2}) / m.sum({1, 2}).clamp_min(1);
    }
  }
  detail::fail("unknown guidance loss");
}

// The mean loss over the annotated images (a graph-connected zero when none is annotated).
inline torch::Tensor guidance_loss(GuidanceLoss kind, const torch::Tensor& attributions, const Annotations& annotations) {
  auto per_image = guidance_loss_per_image(kind, attributions, annotations);
  auto annotated = annotations.annotated.to(per_image.device());
  const auto count = annotated.sum().item<int64_t>();
  if (count == 0) return (attributions * 0).sum();
  return torch::where(annotated, per_image, torch::zeros_like(per_image)).sum() / static_cast<double>(count);
}

}  // namespace salient
