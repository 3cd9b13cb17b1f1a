#pragma once
// Faithfulness: does an attribution point at what the model actually uses?
//
// - deletion / insertion curves: evaluation/curves.hpp (any ForwardModel).
// - infidelity (Yeh et al. 2019; Captum's `infidelity`): the mean over random perturbations
//   I of (sum(attribution * I) - (F(x) - F(x - I)))^2, optionally with the attribution first
//   rescaled by the least-squares factor beta (Captum's `normalize=True`).
// - sensitivity_max (Yeh et al. 2019; Captum's `sensitivity_max`): the largest relative change
//   ||Phi(x + d) - Phi(x)|| / ||Phi(x)|| (Frobenius norms, a zero norm counted as 1) of an
//   explanation Phi over perturbations d ~ U[-radius, radius] of every input value.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "salient/evaluation/curves.hpp"
#include "salient/core/torch_backend.hpp"

namespace salient {

// A perturbation of a batch: {I, x - I}-style pair (the perturbation and the perturbed input).
struct Perturbation {
  torch::Tensor perturbation;
  torch::Tensor perturbed;
};
using PerturbFunction = std::function<Perturbation(const torch::Tensor& inputs, at::Generator& generator)>;

struct InfidelityOptions {
  int64_t samples = 10;      // perturbations per input (Captum's n_perturb_samples)
  double stdev = 0.003;      // default perturbation: I ~ N(0, stdev^2), perturbed input x - I
  PerturbFunction perturb;   // custom perturbation (replaces the default)
  bool normalize = false;    // rescale the attribution by beta first (Captum's normalize)
  uint64_t seed = 0;
  int64_t batch_size = 64;   // perturbed inputs per forward pass
};

// Infidelity of `attributions` (the inputs' shape) for each input: [N] (double).
inline torch::Tensor infidelity(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                const torch::Tensor& attributions, const InfidelityOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  if (attributions.sizes() != inputs.sizes())
    detail::fail("attributions of shape ", shape_string(attributions), " do not match inputs ", shape_string(inputs));
  TorchBackend::check_finite(attributions, "attribution");
  if (options.samples < 1) detail::fail("infidelity needs at least 1 sample, got ", options.samples);
  if (!(options.stdev >= 0)) detail::fail("infidelity noise stdev must be >= 0, got ", options.stdev);
  const int64_t n = inputs.size(0), s = options.samples;
  auto resolved = resolve_target(model, inputs, target);
  auto score = [&](const torch::Tensor& x, const ResolvedTarget<torch::Tensor>& t) {
    return TorchBackend::select(model.forward(x), t).to(torch::kDouble).cpu();
  };
  auto full = score(inputs, resolved);  // F(x) [N]
  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  // Sample-major copies [x_0..x_{N-1}, x_0..]: one target tiling for all chunks.
  auto tiled = inputs.repeat({s, 1, 1, 1}).contiguous();
  Perturbation p;
  if (options.perturb) {
    p = options.perturb(tiled, generator);
    if (p.perturbation.sizes() != tiled.sizes() || p.perturbed.sizes() != tiled.sizes())
      detail::fail("the perturbation function returned shapes ", shape_string(p.perturbation), " and ",
                   shape_string(p.perturbed), " for inputs ", shape_string(tiled));
  } else {
    auto noise = torch::empty(tiled.sizes(), torch::kDouble).normal_(0, options.stdev, generator).to(tiled.options());
    p = {noise, tiled - noise};
  }
  std::vector<torch::Tensor> parts;
  auto tiled_target = resolved.tiled(s);
  detail::for_each_chunk(n * s, options.batch_size, [&](int64_t begin, int64_t end) {
    parts.push_back(score(p.perturbed.slice(0, begin, end), tiled_target.slice(begin, end)));
  });
  auto drop = (full.repeat({s}) - torch::cat(parts)).view({s, n});                     // F(x) - F(x~)
  auto explained = (attributions.to(torch::kDouble).repeat({s, 1, 1, 1}) * p.perturbation.to(torch::kDouble))
                       .view({s, n, -1}).sum(2);                                          // sum(attr * I)
  if (!options.normalize) return (explained - drop).pow(2).mean(0);
  auto a0 = explained.pow(2).sum(0), a1 = (explained * drop).sum(0), a2 = drop.pow(2).sum(0);
  auto beta = torch::where(a0 == 0, torch::zeros_like(a0), a1 / a0);
  return (beta * beta * a0 - 2 * beta * a1 + a2) / static_cast<double>(s);
}

struct SensitivityOptions {
  int64_t samples = 10;   // perturbations per input
  double radius = 0.02;   // d ~ U[-radius, radius] per input value
  uint64_t seed = 0;
};

// The explanation being tested: attributions of a batch for per-item classes.
using ExplainFunction = std::function<torch::Tensor(const torch::Tensor& inputs, const Target& target)>;

// Sensitivity-max of an explanation for each input: [N] (double). The target is resolved once
// on the unperturbed inputs, so every perturbed copy explains the same class.
inline torch::Tensor sensitivity_max(TorchModel& model, const ExplainFunction& explain, const torch::Tensor& inputs,
                                     const Target& target, const SensitivityOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  if (options.samples < 1) detail::fail("sensitivity_max needs at least 1 sample, got ", options.samples);
  if (!(options.radius >= 0)) detail::fail("sensitivity radius must be >= 0, got ", options.radius);
  const int64_t n = inputs.size(0), s = options.samples;
  auto resolved = resolve_target(model, inputs, target);
  if (resolved.is_custom()) detail::fail("sensitivity_max needs a class target (one class per input)");
  auto original = explain(inputs, Target(resolved.classes)).to(torch::kDouble).reshape({n, -1});
  auto norms = original.norm(2, 1);
  norms = torch::where(norms == 0, torch::ones_like(norms), norms);
  at::Generator generator = at::detail::createCPUGenerator(options.seed);
  auto noise = torch::empty(inputs.sizes(), torch::kDouble);
  auto worst = torch::zeros({n}, torch::kDouble);
  for (int64_t k = 0; k < s; ++k) {  // one batch of N per sample: the explanation batches itself
    noise.uniform_(-options.radius, options.radius, generator);
    auto perturbed = explain(inputs + noise.to(inputs.options()), Target(resolved.classes)).to(torch::kDouble).reshape({n, -1});
    worst = torch::maximum(worst, (perturbed - original).norm(2, 1) / norms);
  }
  return worst;
}

}  // namespace salient
