#pragma once
// Segmentations as LibTorch label maps [H,W] (int64, labels 0..K-1), for the region methods
// of attribution/perturbation.hpp: superpixels of a model input (its photo recovered by
// undoing the normalisation), and segments from a segmentation model (its per-pixel argmax
// class, split into connected regions).
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/io/image.hpp"
#include "salient/io/tensor_image.hpp"
#include "salient/segmentation/superpixels.hpp"

namespace salient {

inline torch::Tensor to_tensor(const LabelMap& labels) {
  return torch::tensor(labels.labels, torch::kLong).view({labels.height, labels.width});
}

inline LabelMap to_label_map(const torch::Tensor& labels) {
  if (labels.dim() != 2) detail::fail("a label map is [H,W], got shape ", shape_string(labels));
  auto t = labels.to(torch::kLong).contiguous().cpu();
  LabelMap map;
  map.height = t.size(0);
  map.width = t.size(1);
  map.labels.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  map.count = map.labels.empty() ? 0 : (*std::max_element(map.labels.begin(), map.labels.end()) + 1);
  return map;
}

// The RGB photo in [0, 1] of one model input [1,C,H,W] (grey inputs repeated to 3 channels).
inline Image input_photo(const torch::Tensor& input, const Normalization& normalization) {
  return input_photo(to_image(input), normalization);
}

// Superpixels of a model input by spec ("slic:50", "felzenszwalb:100", "grid:16"; see
// segment()).
inline torch::Tensor segment_input(std::string_view spec, const torch::Tensor& input,
                                   const Normalization& normalization = Normalization::imagenet()) {
  return to_tensor(segment(spec, input_photo(input, normalization)));
}

// Segments from a segmentation model's output [1,K,h,w] for `input` [1,3,H,W]: the argmax
// class per pixel (resized to H x W, nearest), each connected region its own segment.
inline torch::Tensor model_segments(TorchModel& segmenter, const torch::Tensor& input) {
  if (input.dim() != 4 || input.size(0) != 1) detail::fail("model_segments takes one input [1,C,H,W], got ", shape_string(input));
  torch::NoGradGuard no_grad;
  auto output = segmenter.forward(input);
  if (output.dim() != 4 || output.size(0) != 1)
    detail::fail("a segmentation model's output must be [1,classes,h,w], got ", shape_string(output));
  auto classes = output.argmax(1, /*keepdim=*/true).to(torch::kFloat);
  classes = torch::nn::functional::interpolate(classes, torch::nn::functional::InterpolateFuncOptions()
                                                            .size(std::vector<int64_t>{input.size(2), input.size(3)})
                                                            .mode(torch::kNearest));
  return to_tensor(connected_components(to_label_map(classes[0][0].to(torch::kLong))));
}

}  // namespace salient
