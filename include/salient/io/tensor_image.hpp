#pragma once
// Bridge between io's planar images and LibTorch tensors, and the usual preprocessing
// pipeline: load -> resize shorter side -> centre crop -> [0,1] -> normalise -> [1,C,H,W].
#include <cstdint>
#include <filesystem>
#include <vector>

#include <torch/torch.h>

#include "salient/core/error.hpp"
#include "salient/io/image.hpp"

namespace salient {

// [1, C, H, W] float32 copy of an image.
inline torch::Tensor to_tensor(const Image& image) {
  return torch::from_blob(const_cast<float*>(image.data.data()), {1, image.channels, image.height, image.width},
                          torch::kFloat32)
      .clone();
}

// One item of a [N, C, H, W] (or [C, H, W] / [H, W]) tensor as an image.
inline Image to_image(const torch::Tensor& tensor, int64_t item = 0) {
  auto t = tensor.detach().to(torch::kCPU, torch::kFloat32);
  if (t.dim() == 4) t = t[item];
  else if (t.dim() == 2) t = t.unsqueeze(0);
  if (t.dim() != 3) detail::fail("cannot make an image of a tensor of ", tensor.dim(), " dimensions");
  t = t.contiguous();
  Image image(t.size(0), t.size(1), t.size(2));
  std::copy(t.data_ptr<float>(), t.data_ptr<float>() + t.numel(), image.data.begin());
  return image;
}

struct Preprocessing {
  int64_t size = 224;                      // shorter side resized to this, then a centre square crop
  Normalization normalization = Normalization::imagenet();
};

// The photo after resize and crop, in [0, 1] (what overlays are drawn on). PIL-style
// bilinear resize in uint8 steps, as torchvision on a PIL image, so predictions match PyTorch.
inline Image prepare_image(const Image& photo, const Preprocessing& preprocessing) {
  if (preprocessing.size < 1) detail::fail("image size must be at least 1, got ", preprocessing.size);
  return center_crop(resize_shorter_side(photo, preprocessing.size, ResizeArithmetic::pil_uint8), preprocessing.size,
                     preprocessing.size);
}

// Model input [1, 3, size, size] of an image file.
inline torch::Tensor load_input(const std::filesystem::path& path, const Preprocessing& preprocessing = {}) {
  return to_tensor(normalize(prepare_image(load_image(path), preprocessing), preprocessing.normalization));
}

}  // namespace salient
