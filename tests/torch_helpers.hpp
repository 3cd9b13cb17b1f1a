#pragma once
// Helpers shared by the LibTorch tests.
#include <torch/torch.h>

namespace salient::test {
// max |a - b| relative to max |b| (1e-12 floor).
inline double max_relative(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}
}  // namespace salient::test
