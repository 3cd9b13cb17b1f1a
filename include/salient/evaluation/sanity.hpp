#pragma once
// Sanity checks for attribution methods (Adebayo et al. 2018): the model parameter
// randomisation test and the data randomisation test, for any set of methods, with the
// paper's similarity measures and its edge-detector baseline.
//
// Maps are compared per input as the paper does: Spearman rank correlation of the signed maps
// (channels summed) and of the absolute maps (|attribution| summed over channels); SSIM and
// HOG similarity of the absolute maps scaled to [0, 1] by their 99th percentile (clipped), the
// normalisation of the paper's visualisations. The target is fixed by the original model
// (its top-1 unless given), so every randomised model explains the same class.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "salient/core/torch_backend.hpp"
#include "salient/evaluation/randomisation.hpp"
#include "salient/evaluation/similarity.hpp"

namespace salient {

// A named attribution method: attributions [N, ...] of a batch for per-item targets.
struct SanityMethod {
  std::string name;
  Method<TorchModel> attribute;
};

// Sobel gradient magnitude of the inputs' channel mean, [N,1,H,W] (replicated borders): the
// model-free "edge detector" the paper shows next to the methods.
inline torch::Tensor sobel_edges(const torch::Tensor& inputs) {
  detail::check_inputs<TorchBackend>(inputs);
  if (inputs.dim() != 4) detail::fail("sobel_edges needs images [N,C,H,W], got shape ", shape_string(inputs));
  auto grey = torch::replication_pad2d(inputs.detach().to(torch::kFloat).mean(1, true), {1, 1, 1, 1});
  auto gx = torch::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f}).view({1, 1, 3, 3}).to(grey.device());
  auto gy = gx.transpose(2, 3).contiguous();
  auto dx = torch::conv2d(grey, gx), dy = torch::conv2d(grey, gy);
  return (dx * dx + dy * dy).sqrt().to(inputs.dtype());
}

struct MapSimilarity {
  double spearman_abs = 0;  // Spearman of |map| (summed over channels)
  double spearman = 0;      // Spearman of the signed map (summed over channels)
  double ssim = 0;          // SSIM of the normalised absolute maps
  double hog = 0;           // Pearson correlation of their HOG features
};

namespace detail {
// |map| summed over channels [H,W], scaled to [0, 1] by its 99th percentile (clipped).
inline torch::Tensor scaled_to_percentile(const torch::Tensor& absolute) {
  auto top = torch::quantile(absolute.reshape({-1}), 0.99).item<float>();
  if (!(top > 0)) top = absolute.max().item<float>();
  return top > 0 ? (absolute / top).clamp_max(1.0f) : absolute;
}
}  // namespace detail

// The absolute map [H,W] of one attribution [C,H,W] scaled to [0, 1] by its 99th percentile.
inline torch::Tensor normalised_absolute_map(const torch::Tensor& attribution) {
  return detail::scaled_to_percentile(attribution.detach().to(torch::kFloat).abs().sum(0));
}

// Similarity of two attributions of one input ([C,H,W] each, same shape).
inline MapSimilarity compare_maps(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes() || a.dim() != 3)
    detail::fail("compare_maps needs two attributions [C,H,W] of the same shape, got ", shape_string(a), " and ",
                 shape_string(b));
  auto abs_a = a.detach().to(torch::kFloat).abs().sum(0), abs_b = b.detach().to(torch::kFloat).abs().sum(0);
  auto na = detail::scaled_to_percentile(abs_a), nb = detail::scaled_to_percentile(abs_b);
  return {spearman(abs_a, abs_b), spearman(a.sum(0), b.sum(0)), ssim(na, nb, {.data_range = 1.0}),
          hog_similarity(na, nb)};
}

// The mean of several similarities (e.g. over the inputs of one step and method).
inline MapSimilarity mean_similarity(const std::vector<MapSimilarity>& items) {
  MapSimilarity m;
  const auto k = static_cast<double>(items.size());
  for (const auto& s : items) {
    m.spearman_abs += s.spearman_abs / k;
    m.spearman += s.spearman / k;
    m.ssim += s.ssim / k;
    m.hog += s.hog / k;
  }
  return m;
}

struct RandomisationTestOptions {
  RandomisationOptions randomisation = {};
  bool keep_maps = false;  // keep every step's attributions (memory: steps x methods x inputs)
  // Called after each step: (step, the methods' similarity to the original per input).
  std::function<void(const RandomisationStep&)> on_step = {};
  // Called after each step with its maps ([method] -> [N, ...]), to keep what a caller needs
  // of them (e.g. one input's) instead of all of them.
  std::function<void(const RandomisationStep&, const std::vector<torch::Tensor>&)> on_maps = {};
};

struct RandomisationTestResult {
  std::vector<std::string> methods;
  std::vector<RandomisationStep> steps;                        // steps[0]: the original model
  std::vector<std::vector<std::vector<MapSimilarity>>> similarity;  // [step][method][input]
  std::vector<std::vector<torch::Tensor>> maps;                // [step][method] -> [N, ...] (keep_maps)
  std::vector<int64_t> targets;                                // the class explained per input

  // Mean over the inputs of one step and method.
  MapSimilarity mean(size_t step, size_t method) const { return mean_similarity(similarity.at(step).at(method)); }
};

namespace detail {
inline void check_methods(const std::vector<SanityMethod>& methods) {
  if (methods.empty()) fail("no attribution methods to test");
  for (const auto& m : methods)
    if (!m.attribute) fail("method '", m.name, "' has no attribution function");
}

inline std::vector<MapSimilarity> compare_batches(const torch::Tensor& original, const torch::Tensor& other,
                                                  const std::string& method) {
  if (original.sizes() != other.sizes() || original.dim() != 4)
    fail("method '", method, "' returned attributions of shape ", shape_string(other), " after randomisation but ",
         shape_string(original), " before (expected [N,C,H,W] both times)");
  std::vector<MapSimilarity> result;
  for (int64_t i = 0; i < original.size(0); ++i) result.push_back(compare_maps(original[i], other[i]));
  return result;
}
}  // namespace detail

// The model parameter randomisation test: every method's maps on the original model and after
// each randomisation step, with their similarity to the original maps. The model's parameters
// are restored afterwards.
inline RandomisationTestResult parameter_randomisation_test(TorchModel& model, const torch::Tensor& inputs,
                                                            const Target& target,
                                                            const std::vector<SanityMethod>& methods,
                                                            const RandomisationTestOptions& options = {}) {
  detail::check_methods(methods);
  detail::check_inputs<TorchBackend>(inputs);
  RandomisationTestResult result;
  for (const auto& m : methods) result.methods.push_back(m.name);
  auto resolved = resolve_target(model, inputs, target);
  if (resolved.is_custom()) detail::fail("the randomisation test needs a class target (one class per input)");
  result.targets = resolved.classes;
  const Target fixed(resolved.classes);
  std::vector<torch::Tensor> original;
  result.steps = for_each_randomisation(model, options.randomisation, [&](TorchModel& m, const RandomisationStep& step) {
    std::vector<torch::Tensor> maps;
    std::vector<std::vector<MapSimilarity>> similarity;
    for (size_t k = 0; k < methods.size(); ++k) {
      auto map = methods[k].attribute(m, inputs, fixed).detach();
      if (step.index == 0) original.push_back(map);
      similarity.push_back(detail::compare_batches(original[k], map, methods[k].name));
      maps.push_back(map);
    }
    result.similarity.push_back(std::move(similarity));
    if (options.on_maps) options.on_maps(step, maps);
    if (options.keep_maps) result.maps.push_back(std::move(maps));
    if (options.on_step) options.on_step(step);
  });
  return result;
}

struct DataRandomisationResult {
  std::vector<std::string> methods;
  std::vector<std::vector<MapSimilarity>> similarity;  // [method][input]
  std::vector<torch::Tensor> trained_maps, permuted_maps;  // [method] -> [N, ...]
};

// The data randomisation test: each method's maps for a model trained on the true labels and
// for the same architecture trained on permuted labels, for the same targets (e.g. the true
// labels of test images), and their similarity.
inline DataRandomisationResult data_randomisation_test(TorchModel& trained, TorchModel& permuted,
                                                       const torch::Tensor& inputs, const Target& target,
                                                       const std::vector<SanityMethod>& methods) {
  detail::check_methods(methods);
  detail::check_inputs<TorchBackend>(inputs);
  auto resolved = resolve_target(trained, inputs, target);
  if (resolved.is_custom()) detail::fail("the data randomisation test needs a class target (one class per input)");
  const Target fixed(resolved.classes);
  DataRandomisationResult result;
  for (const auto& m : methods) {
    result.methods.push_back(m.name);
    result.trained_maps.push_back(m.attribute(trained, inputs, fixed).detach());
    result.permuted_maps.push_back(m.attribute(permuted, inputs, fixed).detach());
    result.similarity.push_back(detail::compare_batches(result.trained_maps.back(), result.permuted_maps.back(), m.name));
  }
  return result;
}

}  // namespace salient
