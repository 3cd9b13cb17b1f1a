#pragma once
// PAMI (Shi et al. 2023, "PAMI: partition input and aggregate outputs for model
// interpretation"; ../shared/PAPERS.md paper 3): keep one region of the image, remove the
// rest through a masker (the paper's substrates: black, white, blur; layer masking works
// too), and take the target's probability as that region's contribution. This is done for
// every region of several partitions, and each pixel gets the mean contribution of the
// regions that held it.
//
// Partitions: every segmentation spec (superpixels at several scales) on every shifted copy
// of the photo. A shifted copy moves the image by (dy, dx) pixels (edges repeated), is
// segmented, and its labels are mapped back onto the unshifted image, so one segmenter
// gives several partitions whose boundaries fall elsewhere; the model always sees the
// unshifted image.
//
// Two-stage variant: the first map is itself segmented (its values quantised into `levels`
// quantile bands, each connected band a region), those regions are scored the same way, and
// the result is the mean of the two maps (our reading of the paper's refinement step: the
// second partition follows the first map's contours instead of colour edges).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "salient/attribution/perturbation.hpp"
#include "salient/masking/maskers.hpp"
#include "salient/segmentation/segments.hpp"

namespace salient {

struct PamiOptions {
  std::vector<std::string> segmentations = {"slic:25", "slic:50", "slic:100", "felzenszwalb:100", "felzenszwalb:250"};
  std::vector<std::array<int64_t, 2>> shifts = {{0, 0}, {6, 6}};  // (dy, dx) of the segmented copies
  Normalization normalization = Normalization::imagenet();        // to recover the photo from the model input
  bool two_stage = false;
  int64_t levels = 8;  // quantile bands of the first map (two-stage)
  PerturbationOptions<TorchModel> evaluation = {.masker = FillMasker::baseline(BaselineKind::black), .probabilities = true};
};

namespace detail {

// The photo moved by (dy, dx), edges repeated.
inline Image shifted(const Image& photo, int64_t dy, int64_t dx) {
  Image out(photo.channels, photo.height, photo.width);
  for (int64_t c = 0; c < photo.channels; ++c)
    for (int64_t y = 0; y < photo.height; ++y)
      for (int64_t x = 0; x < photo.width; ++x) {
        const int64_t sy = std::clamp<int64_t>(y - dy, 0, photo.height - 1), sx = std::clamp<int64_t>(x - dx, 0, photo.width - 1);
        out.data[(c * photo.height + y) * photo.width + x] = photo.data[(c * photo.height + sy) * photo.width + sx];
      }
  return out;
}

// Labels of the shifted copy mapped back: pixel (y, x) takes the label at (y + dy, x + dx).
inline torch::Tensor unshift(const torch::Tensor& labels, int64_t dy, int64_t dx) {
  const int64_t h = labels.size(0), w = labels.size(1);
  auto rows = (torch::arange(h) + dy).clamp(0, h - 1), cols = (torch::arange(w) + dx).clamp(0, w - 1);
  return labels.index_select(0, rows).index_select(1, cols);
}

// Each region kept alone: its score painted on its pixels, [H,W] double.
inline torch::Tensor region_scores(TorchModel& model, const torch::Tensor& image, const ResolvedTarget<torch::Tensor>& target,
                                   const torch::Tensor& labels, const PerturbationOptions<TorchModel>& evaluation,
                                   EvaluationCounter& counter) {
  const int64_t h = image.size(2), w = image.size(3);
  const auto segments = segments_of<TorchBackend>(labels, image, 0);
  auto scores = masked_scores(
      model, image, target, segments.count,
      [&](int64_t begin, int64_t end) {
        Eigen::MatrixXd z = Eigen::MatrixXd::Zero(end - begin, segments.count);
        for (int64_t k = begin; k < end; ++k) z(k - begin, k) = 1;
        return mask_tensor<TorchBackend>(coalition_masks(z, segments), h, w, image);
      },
      evaluation, counter);
  return torch::tensor(paint(scores, segments), torch::kDouble).view({h, w});
}

// Quantile bands of a map [H,W], each connected band its own label.
inline torch::Tensor band_regions(const torch::Tensor& map, int64_t levels) {
  auto flat = map.reshape({-1}).to(torch::kDouble);
  auto quantiles = torch::quantile(flat, torch::linspace(0, 1, levels + 1, torch::kDouble).slice(0, 1, levels));
  auto bands = torch::bucketize(flat, quantiles).view(map.sizes());
  return to_tensor(connected_components(to_label_map(bands)));
}

}  // namespace detail

inline torch::Tensor pami(TorchModel& model, const torch::Tensor& inputs, const Target& target, const PamiOptions& options = {}) {
  const auto& evaluation = options.evaluation;
  detail::check_perturbation_inputs(inputs, evaluation);
  if (options.segmentations.empty()) detail::fail("PAMI needs at least one segmentation");
  if (options.shifts.empty()) detail::fail("PAMI needs at least one shift (0,0 for none)");
  if (options.levels < 2) detail::fail("PAMI needs at least 2 levels for its second stage, got ", options.levels);
  const int64_t n = inputs.size(0), h = inputs.size(2), w = inputs.size(3);
  for (const auto& shift : options.shifts)
    if (std::abs(shift[0]) >= h || std::abs(shift[1]) >= w)
      detail::fail("PAMI shift (", shift[0], ", ", shift[1], ") is not smaller than the image of ", h, "x", w);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<torch::Tensor> maps;
  for (int64_t i = 0; i < n; ++i) {
    auto image = inputs.slice(0, i, i + 1);
    const auto item_target = resolved.slice(i, i + 1);
    const auto photo = input_photo(image, options.normalization);
    // Segment first, so the progress total is known.
    std::vector<torch::Tensor> partitions;
    int64_t regions = 0;
    for (const auto& spec : options.segmentations)
      for (const auto& [dy, dx] : options.shifts) {
        auto labels = detail::unshift(to_tensor(segment(spec, detail::shifted(photo, dy, dx))), dy, dx);
        regions += detail::segments_of<TorchBackend>(labels, image, 0).count;
        partitions.push_back(labels);
      }
    detail::EvaluationCounter counter(evaluation.progress, regions * (options.two_stage ? 2 : 1));
    auto map = torch::zeros({h, w}, torch::kDouble);
    for (const auto& labels : partitions) map += detail::region_scores(model, image, item_target, labels, evaluation, counter);
    map /= static_cast<double>(partitions.size());
    if (options.two_stage)
      map = (map + detail::region_scores(model, image, item_target, detail::band_regions(map, options.levels), evaluation,
                                         counter)) /
            2;
    maps.push_back(map.view({1, 1, h, w}));
  }
  return torch::cat(maps).to(inputs.options());
}

}  // namespace salient
