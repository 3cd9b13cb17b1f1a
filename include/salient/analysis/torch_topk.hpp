#pragma once
// Top-k disambiguation of a TorchModel (the search: analysis/topk.hpp): the masker is made
// from TopkOptions::masker (make_masker: layer masking by default), entities come back as an
// integer label map and relevance as float, as LibTorch code expects. Entities of a photo:
// analysis/entities.hpp.
#include <torch/torch.h>

#include "salient/analysis/entities.hpp"
#include "salient/analysis/topk.hpp"
#include "salient/analysis/torch_certificate.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/masking/maskers.hpp"

namespace salient {

using PairVerdict = BasicPairVerdict<torch::Tensor>;
using TopkDisambiguation = BasicTopkDisambiguation<torch::Tensor>;

inline TopkDisambiguation disambiguate_topk(TorchModel& model, const torch::Tensor& input, const torch::Tensor& entities,
                                            const torch::Tensor& attributions, const TopkOptions& options = {}) {
  auto result = disambiguate_topk(model, input, entities, attributions, options, make_masker(options.masker));
  result.entities = result.entities.to(torch::kCPU, torch::kLong);
  result.relevance = result.relevance.to(torch::kCPU, torch::kFloat);
  return result;
}

}  // namespace salient
