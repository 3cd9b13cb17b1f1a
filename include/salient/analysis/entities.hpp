#pragma once
// The entities of an image for top-k disambiguation: connected regions that a segmentation
// model's classes (segmentation_entities) or the top-k classes' attributions over superpixels
// (attribution_entities) single out, as a label map [H,W] (0 = background). The search over
// class pairs is analysis/topk.hpp.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include <torch/torch.h>

#include "salient/analysis/topk.hpp"
#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/segmentation/segments.hpp"
#include "salient/segmentation/superpixels.hpp"

namespace salient {

struct EntityOptions {
  double coverage = 0.5;    // attribution_entities: share of each class's positive attribution a class's superpixels hold
  double min_area = 0.01;   // entities smaller than this share of the image join the background
  int64_t max_entities = 12;  // the largest ones are kept; smaller ones join the background
  int64_t segmenter_size = 0;  // segmentation_entities: the segmenter sees the input with its shorter side resized to this (0: as is)
};

namespace detail {
// Label map [H,W] (0 = background, 1..m) from `pieces` [H,W] (connected regions labelled
// 0..P-1) and `labels` [H,W] (a class per pixel, constant on each piece): the pieces whose
// label is not `background` and that are not too small, numbered by decreasing area.
inline torch::Tensor number_entities(const torch::Tensor& pieces, const torch::Tensor& labels, int64_t background,
                                     const EntityOptions& options) {
  const auto flat = pieces.view({-1});
  const int64_t count = flat.max().item<int64_t>() + 1, pixels = flat.numel();
  auto areas = torch::zeros({count}, torch::kLong).index_add_(0, flat, torch::ones({pixels}, torch::kLong));
  auto piece_label = torch::zeros({count}, torch::kLong).index_put_({flat}, labels.reshape({-1}).to(torch::kLong));
  std::vector<int64_t> order;
  for (int64_t p = 0; p < count; ++p)
    if (piece_label[p].item<int64_t>() != background &&
        areas[p].item<double>() >= options.min_area * static_cast<double>(pixels))
      order.push_back(p);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return areas[x].item<int64_t>() > areas[y].item<int64_t>(); });
  if (static_cast<int64_t>(order.size()) > options.max_entities) order.resize(static_cast<size_t>(options.max_entities));
  auto relabel = torch::zeros({count}, torch::kLong);
  for (size_t i = 0; i < order.size(); ++i) relabel[order[i]] = static_cast<int64_t>(i) + 1;
  return relabel.index({pieces});
}

// The connected regions of a per-pixel class map [H,W], entities where it is not `background`.
inline torch::Tensor connected_entities(const torch::Tensor& classes, int64_t background, const EntityOptions& options) {
  auto labels = classes.to(torch::kLong).contiguous();
  return number_entities(to_tensor(connected_components(to_label_map(labels))), labels, background, options);
}

inline void check_entity_options(const EntityOptions& o) {
  if (!(o.coverage > 0 && o.coverage <= 1)) fail("entity coverage must be in (0, 1], got ", o.coverage);
  if (!(o.min_area >= 0 && o.min_area < 1)) fail("entity min_area must be in [0, 1), got ", o.min_area);
  if (o.max_entities < 1) fail("max_entities must be at least 1, got ", o.max_entities);
}

}  // namespace detail

// Entities from a segmentation model's output for `input` [1,3,H,W]: the connected regions of
// the per-pixel argmax classes other than `background_class`. The segmenter sees the input
// resized (bilinear, aspect kept) to a shorter side of `segmenter_size` when set (DeepLab:
// 513); its classes are resized back to H x W (nearest).
inline torch::Tensor segmentation_entities(TorchModel& segmenter, const torch::Tensor& input, const EntityOptions& options = {},
                                           int64_t background_class = 0) {
  detail::check_entity_options(options);
  if (input.dim() != 4 || input.size(0) != 1) detail::fail("segmentation_entities takes one input [1,C,H,W], got ", shape_string(input));
  if (options.segmenter_size < 0) detail::fail("segmenter_size must be >= 0, got ", options.segmenter_size);
  torch::NoGradGuard no_grad;
  auto seen = input;
  if (options.segmenter_size > 0) {
    const double scale = static_cast<double>(options.segmenter_size) / static_cast<double>(std::min(input.size(2), input.size(3)));
    const auto side = [&](int64_t n) { return std::max<int64_t>(1, std::llround(static_cast<double>(n) * scale)); };
    seen = torch::nn::functional::interpolate(
        input, torch::nn::functional::InterpolateFuncOptions()
                   .size(std::vector<int64_t>{side(input.size(2)), side(input.size(3))})
                   .mode(torch::kBilinear)
                   .align_corners(false));
  }
  auto output = segmenter.forward(seen);
  if (output.dim() != 4 || output.size(0) != 1)
    detail::fail("a segmentation model's output must be [1,classes,h,w], got ", shape_string(output));
  if (background_class < 0 || background_class >= output.size(1))
    detail::fail("background class ", background_class, " out of range [0, ", output.size(1), ")");
  auto classes = output.argmax(1, /*keepdim=*/true).to(torch::kFloat);
  classes = torch::nn::functional::interpolate(
      classes, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{input.size(2), input.size(3)}).mode(torch::kNearest));
  return detail::connected_entities(classes[0][0], background_class, options);
}

// Entities from superpixels `regions` [H,W] merged by attribution: for each class map of
// `attributions` ([n,H,W] or [n,C,H,W], channels summed), the superpixels of highest positive
// attribution density that together hold `coverage` of its positive attribution; the union
// over classes split into connected regions.
inline torch::Tensor attribution_entities(const torch::Tensor& regions, const torch::Tensor& attributions,
                                          const EntityOptions& options = {}) {
  detail::check_entity_options(options);
  if (regions.dim() != 2) detail::fail("superpixels must be a label map [H,W], got shape ", shape_string(regions));
  const int64_t h = regions.size(0), w = regions.size(1);
  const auto maps = detail::host_class_maps<TorchBackend>(attributions, h, w);
  std::vector<int64_t> labels;
  for (double v : TorchBackend::to_vector(regions)) labels.push_back(static_cast<int64_t>(v));  // as a cast to integers
  if (*std::min_element(labels.begin(), labels.end()) < 0) detail::fail("superpixel labels must be >= 0");
  const auto count = static_cast<std::size_t>(*std::max_element(labels.begin(), labels.end()) + 1);
  std::vector<double> areas(count, 0.0);
  for (auto label : labels) areas[static_cast<std::size_t>(label)] += 1;
  std::vector<char> salient_segment(count, 0);
  for (const auto& map : maps) {
    std::vector<double> mass(count, 0.0);
    for (std::size_t p = 0; p < labels.size(); ++p) mass[static_cast<std::size_t>(labels[p])] += std::max(map[p], 0.0);
    double total = 0;
    for (double v : mass) total += v;
    if (total <= 0) continue;
    std::vector<std::size_t> order(count);
    std::iota(order.begin(), order.end(), std::size_t{0});
    auto density = [&](std::size_t s) { return mass[s] / std::max(areas[s], 1.0); };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return density(x) > density(y); });
    double held = 0;
    for (std::size_t i = 0; i < count && held < options.coverage * total; ++i) {
      const std::size_t s = order[i];
      if (mass[s] <= 0) break;
      salient_segment[s] = 1;
      held += mass[s];
    }
  }
  auto chosen = torch::empty({h, w}, torch::kLong);
  auto* out = chosen.data_ptr<int64_t>();
  for (std::size_t p = 0; p < labels.size(); ++p) out[p] = salient_segment[static_cast<std::size_t>(labels[p])];
  return detail::connected_entities(chosen, /*background=*/0, options);
}

}  // namespace salient
