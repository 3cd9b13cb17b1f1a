#pragma once
// The method registry (attribution/registry.hpp) for TorchModel: LibTorch's customisation
// points (every masker of make_masker, segments from a segmentation model, the image
// baselines of make_baseline) and the shorthands the tools use: `MethodEntry`, `methods()`,
// `find_method(name)`, `method_list()`. Include this header, not registry.hpp alone, wherever
// TorchModel's methods are listed: it brings in every capability TorchModel has.
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <torch/torch.h>

#include "salient/attribution/baselines.hpp"
#include "salient/attribution/deeplift.hpp"
#include "salient/attribution/guided_backprop.hpp"
#include "salient/attribution/registry.hpp"
#include "salient/core/torch_backend.hpp"
#include "salient/graph/layers.hpp"
#include "salient/masking/maskers.hpp"
#include "salient/segmentation/segments.hpp"

namespace salient {

static_assert(LayerModel<TorchModel> && RuleModel<TorchModel> && LayerMaskingModel<TorchModel>);

inline BaselineOptions baseline_options(const MethodSettings& settings) {
  return {.normalization = settings.normalization, .seed = settings.seed};
}

// Any make_masker name: layer, zero, mean, black, grey, blur, noise.
inline AnyMasker settings_masker(std::type_identity<TorchModel>, const MethodSettings& settings) {
  return make_masker(settings.masker, baseline_options(settings));
}

// The regions of one input [1,C,H,W] by spec: superpixels (segment_input's specs), or
// "model:FILE.pt": a segmentation model's regions (model_segments).
inline torch::Tensor segments_by_spec(const std::string& spec, const torch::Tensor& input, const Normalization& normalization) {
  if (spec.rfind("model:", 0) == 0) {
    auto segmenter = TorchModel::load(spec.substr(6));
    return model_segments(segmenter, input);
  }
  return segment_input(spec, input, normalization);
}

inline torch::Tensor settings_segments(TorchModel&, const torch::Tensor& input, const MethodSettings& settings) {
  return segments_by_spec(settings.segments, input, settings.normalization);
}

// Any make_baseline kind: zero, black, grey, blur, noise.
inline torch::Tensor settings_baseline(TorchModel&, const torch::Tensor& inputs, const MethodSettings& settings) {
  if (settings.baseline.find(',') != std::string::npos)
    detail::fail("this method takes one baseline, got the set '", settings.baseline,
                 "' (sets are for deepliftshap and gradientshap)");
  const auto kind = parse_baseline(settings.baseline);
  // A constant image is one item shared by all inputs (DeepLIFT then runs it forward once).
  const bool constant = kind == BaselineKind::zero || kind == BaselineKind::black || kind == BaselineKind::grey;
  return make_baseline(kind, constant ? inputs.slice(0, 0, 1) : inputs, baseline_options(settings));
}

using MethodEntry = BasicMethodEntry<TorchModel>;

// Instantiating the registry compiles every method (most of a tool's compile time). A program
// of several files can do that once: define SALIENT_EXTERN_TORCH_REGISTRY for every file and
// instantiate it in one of them (this repository's tools and Python module: cmake/torch_registry.cpp):
//   template const std::vector<salient::MethodEntry>& salient::methods<salient::TorchModel>();
#ifdef SALIENT_EXTERN_TORCH_REGISTRY
extern template const std::vector<MethodEntry>& methods<TorchModel>();
#endif

// TorchModel's methods: every entry of method_facts().
inline const std::vector<MethodEntry>& methods() { return methods<TorchModel>(); }
inline const MethodEntry& find_method(std::string_view name) { return find_method<TorchModel>(name); }
inline std::string method_list(std::string_view indent = "  ") { return method_list<TorchModel>(indent); }

}  // namespace salient
