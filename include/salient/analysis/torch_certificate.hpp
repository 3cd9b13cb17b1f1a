#pragma once
// Top-k certificates of a TorchModel: TopkCertificate (masks as torch tensors [H,W]) and the
// verify that makes the masker the certificate names (make_masker: layer masking by default).
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "salient/analysis/certificate.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/masking/maskers.hpp"

namespace salient {

using TopkCertificate = BasicTopkCertificate<torch::Tensor>;

// The k highest classes of one output row [classes], best first (ties: the lower index first).
inline std::vector<int64_t> top_k_of(const torch::Tensor& row, int64_t k) {
  if (row.dim() != 1) detail::fail("top-k of an output needs one row of class scores, got shape ", shape_string(row));
  return top_k_of(TorchBackend::to_vector(row), k);
}

// verify (analysis/certificate.hpp) with the masker the certificate names.
inline Verification verify(TorchModel& model, const torch::Tensor& input, const TopkCertificate& certificate,
                           const MaskerOptions& options = {}) {
  return verify(model, input, certificate, make_masker(certificate.masker), options);
}

}  // namespace salient
