#pragma once
// PAMI (Shi et al. 2023, "PAMI: partition input and aggregate outputs for model
// interpretation"): keep one region of the image, remove the
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
//
// Forward-only: written for any ForwardModel (LibTorch-free). The default substrate is black
// after the model's normalisation (`options.normalization`).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "salient/attribution/perturbation.hpp"
#include "salient/io/image.hpp"
#include "salient/segmentation/superpixels.hpp"

namespace salient {

template <ForwardModel M>
struct PamiOptions {
  std::vector<std::string> segmentations = {"slic:25", "slic:50", "slic:100", "felzenszwalb:100", "felzenszwalb:250"};
  std::vector<std::array<int64_t, 2>> shifts = {{0, 0}, {6, 6}};  // (dy, dx) of the segmented copies
  Normalization normalization = Normalization::imagenet();        // to recover the photo from the model input
  bool two_stage = false;
  int64_t levels = 8;  // quantile bands of the first map (two-stage)
  // The black substrate of ImageNet-normalised inputs; set another masker for other models.
  PerturbationOptions<M> evaluation = {
      .masker = BasicFillMasker<BackendOf<M>>::constant(Normalization::imagenet().level(0.f, 3), "black"),
      .probabilities = true};
};

// The fields by name (core/options.hpp); the normalisation is set directly.
template <class M, class Visit>
void for_each_option(PamiOptions<M>& o, Visit&& visit) {
  visit("segmentations", o.segmentations), visit("shifts", o.shifts), visit("two_stage", o.two_stage);
  visit("levels", o.levels);
  for_each_option(o.evaluation, visit);
}

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
inline Segments unshift(const LabelMap& map, int64_t dy, int64_t dx) {
  std::vector<int64_t> labels(map.labels.size());
  for (int64_t y = 0; y < map.height; ++y)
    for (int64_t x = 0; x < map.width; ++x) {
      const int64_t sy = std::clamp<int64_t>(y + dy, 0, map.height - 1), sx = std::clamp<int64_t>(x + dx, 0, map.width - 1);
      labels[y * map.width + x] = map.labels[sy * map.width + sx];
    }
  return segments_from_labels(std::move(labels));
}

// Each region kept alone: its score painted on its pixels (H*W doubles).
template <ForwardModel M>
std::vector<double> region_scores(M& model, const TensorOf<M>& image, const ResolvedTarget<TensorOf<M>>& target,
                                  const Segments& segments, int64_t h, int64_t w, const PerturbationOptions<M>& evaluation,
                                  EvaluationCounter& counter) {
  auto scores = masked_scores(
      model, image, target, segments.count,
      [&](int64_t begin, int64_t end) {
        Eigen::MatrixXd z = Eigen::MatrixXd::Zero(end - begin, segments.count);
        for (int64_t k = begin; k < end; ++k) z(k - begin, k) = 1;
        return mask_tensor<BackendOf<M>>(coalition_masks(z, segments), h, w, image);
      },
      evaluation, counter);
  return paint(scores, segments);
}

// Quantile bands of a map (H*W values), each connected band its own region. Quantiles
// interpolate linearly between order statistics and a value goes to the first band whose
// upper quantile it does not exceed (torch.quantile and torch.bucketize's definitions).
inline Segments band_regions(const std::vector<double>& map, int64_t h, int64_t w, int64_t levels) {
  std::vector<double> sorted = map;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> bounds;
  for (int64_t q = 1; q < levels; ++q) {
    const double position = static_cast<double>(q) / static_cast<double>(levels) * static_cast<double>(sorted.size() - 1);
    const auto below = static_cast<std::size_t>(std::floor(position));
    const std::size_t above = std::min(below + 1, sorted.size() - 1);
    bounds.push_back(sorted[below] + (sorted[above] - sorted[below]) * (position - static_cast<double>(below)));
  }
  LabelMap bands;
  bands.height = h;
  bands.width = w;
  bands.count = levels;
  for (double v : map) bands.labels.push_back(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
  return segments_from_labels(connected_components(bands).labels);
}

}  // namespace detail

template <ForwardModel M>
TensorOf<M> pami(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const PamiOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto size = detail::check_perturbation_inputs(inputs, evaluation);
  if (options.segmentations.empty()) detail::fail("PAMI needs at least one segmentation");
  if (options.shifts.empty()) detail::fail("PAMI needs at least one shift (0,0 for none)");
  if (options.levels < 2) detail::fail("PAMI needs at least 2 levels for its second stage, got ", options.levels);
  const int64_t n = size.n, h = size.h, w = size.w, channels = B::shape(inputs)[1];
  for (const auto& shift : options.shifts)
    if (std::abs(shift[0]) >= h || std::abs(shift[1]) >= w)
      detail::fail("PAMI shift (", shift[0], ", ", shift[1], ") is not smaller than the image of ", h, "x", w);
  const auto resolved = resolve_target(model, inputs, target);
  std::vector<std::vector<double>> maps;
  for (int64_t i = 0; i < n; ++i) {
    auto image = B::slice_rows(inputs, i, i + 1);
    const auto values = B::to_vector(image);
    Image input(channels, h, w);
    std::transform(values.begin(), values.end(), input.data.begin(), [](double v) { return static_cast<float>(v); });
    const auto photo = input_photo(input, options.normalization);
    const auto item_target = resolved.slice(i, i + 1);
    // Segment first, so the progress total is known.
    std::vector<detail::Segments> partitions;
    int64_t regions = 0;
    for (const auto& spec : options.segmentations)
      for (const auto& [dy, dx] : options.shifts)
        regions += partitions.emplace_back(detail::unshift(segment(spec, detail::shifted(photo, dy, dx)), dy, dx)).count;
    detail::EvaluationCounter counter(evaluation.progress, regions * (options.two_stage ? 2 : 1));
    std::vector<double> map(static_cast<std::size_t>(h * w), 0.0);
    for (const auto& partition : partitions) {
      const auto scores = detail::region_scores(model, image, item_target, partition, h, w, evaluation, counter);
      for (std::size_t p = 0; p < map.size(); ++p) map[p] += scores[p];
    }
    for (auto& v : map) v /= static_cast<double>(partitions.size());
    if (options.two_stage) {
      const auto refined = detail::region_scores(model, image, item_target, detail::band_regions(map, h, w, options.levels),
                                                 h, w, evaluation, counter);
      for (std::size_t p = 0; p < map.size(); ++p) map[p] = (map[p] + refined[p]) / 2;
    }
    maps.push_back(std::move(map));
  }
  return detail::maps_tensor<B>(maps, h, w, inputs);
}

}  // namespace salient
