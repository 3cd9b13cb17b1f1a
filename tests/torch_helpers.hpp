#pragma once
// Helpers shared by the LibTorch tests.
#include <filesystem>

#include <torch/torch.h>

#include "salient/io/npy.hpp"

namespace salient::test {
// max |a - b| relative to max |b| (1e-12 floor).
inline double max_relative(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}
// A float32 .npy array (../shared/references) as a tensor.
inline torch::Tensor reference_array(const std::filesystem::path& path) {
  auto array = salient::load_npy(path);
  return torch::from_blob(array.data.data(), array.shape, torch::kFloat).clone();
}
}  // namespace salient::test
