#pragma once
// Reference-based gradient methods: DeepLIFT, DeepLIFT-SHAP and GradientSHAP.
//
// - deeplift: (x - b) * m, where m is d score / d x with DeepLIFT's rescale rule
//   (graph::deeplift_rules) on [x; b]; Captum's DeepLift (Shrikumar et al. 2017). On a
//   network whose nonlinearities are element-wise activations and max pooling, the
//   attribution sums to F(x) - F(b).
// - deeplift_shap: deeplift against each of K baselines, averaged; Captum's DeepLiftShap
//   (Lundberg & Lee 2017).
// - gradient_shap: the expected gradient x (x - b) over baselines b drawn from the set and
//   points b + alpha (x - b), alpha ~ U(0, 1), `samples` draws per input, with Gaussian input
//   noise of `stdev`; Captum's GradientShap (seeded here: the same seed, the same numbers).
#include <string>
#include <vector>

#include "salient/attribution/gradient.hpp"
#include "salient/attribution/relevance.hpp"

namespace salient {

namespace detail {
inline void check_baselines(const torch::Tensor& baselines, const torch::Tensor& inputs, std::string_view method) {
  if (!baselines.defined()) fail(method, " needs a set of baselines [K, C, H, W]");
  if (baselines.dim() != inputs.dim() || baselines.size(0) < 1 || !baselines.sizes().slice(1).equals(inputs.sizes().slice(1)))
    fail(method, " baselines must be K >= 1 images shaped as each input of ", shape_string(inputs), ", got ",
         shape_string(baselines));
  if (!torch::isfinite(baselines).all().item<bool>()) fail(method, " baselines contain NaN or infinite values");
}

// (x - b) * DeepLIFT multipliers for pairs (x[i], b[i]) with target[i].
inline torch::Tensor deeplift_pairs(TorchModel& model, const torch::Tensor& x, const torch::Tensor& b,
                                    const ResolvedTarget<torch::Tensor>& target, double eps, int64_t batch_size,
                                    const Progress& progress) {
  const auto rules = graph::deeplift_rules(eps);
  std::vector<torch::Tensor> parts;
  for_each_chunk(x.size(0), batch_size, [&](int64_t begin, int64_t end) {
    auto xs = x.slice(0, begin, end), bs = b.slice(0, begin, end);
    auto both = torch::cat({xs, bs});
    auto gradient = layer_gradients(model, both, target.slice(begin, end).tiled(2), {}, rules, true).input_gradient;
    parts.push_back((xs - bs) * gradient.slice(0, 0, end - begin));
    if (progress) progress(end, x.size(0));
  });
  return torch::cat(parts, 0);
}
}  // namespace detail

// `baseline`: [1,C,H,W] or one per input; undefined: zeros (Captum's default).
inline torch::Tensor deeplift(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                              torch::Tensor baseline = {}, const DeepLiftOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  detail::check_batch_size(options.batch_size, "DeepLIFT");
  if (!baseline.defined()) baseline = torch::zeros_like(inputs);
  bool matches = baseline.dim() == inputs.dim();
  for (int64_t d = 0; matches && d < inputs.dim(); ++d) matches = baseline.size(d) == 1 || baseline.size(d) == inputs.size(d);
  if (!matches)
    detail::fail("DeepLIFT baseline ", shape_string(baseline), " does not match the inputs ", shape_string(inputs),
                 " (give [1, C, H, W] or one per input)");
  if (!torch::isfinite(baseline).all().item<bool>()) detail::fail("DeepLIFT baseline contains NaN or infinite values");
  baseline = baseline.to(inputs.options()).expand_as(inputs);
  return detail::deeplift_pairs(model, inputs, baseline, resolve_target(model, inputs, target), options.eps,
                                options.batch_size, options.progress);
}

// `baselines`: [K,C,H,W], K >= 1.
inline torch::Tensor deeplift_shap(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                   const torch::Tensor& baselines, const DeepLiftOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  detail::check_batch_size(options.batch_size, "DeepLIFT-SHAP");
  detail::check_baselines(baselines, inputs, "DeepLIFT-SHAP");
  const int64_t n = inputs.size(0), k = baselines.size(0);
  auto resolved = resolve_target(model, inputs, target);
  // Each input against every baseline, input-major as Captum: [x0 b0, x0 b1, ..., x1 b0, ...].
  auto x = inputs.repeat_interleave(k, 0);
  auto b = baselines.to(inputs.options()).repeat({n, 1, 1, 1});
  auto attributions = detail::deeplift_pairs(model, x, b, resolved.interleaved(k), options.eps, options.batch_size,
                                             options.progress);
  std::vector<int64_t> shape{n, k};
  for (int64_t d = 1; d < inputs.dim(); ++d) shape.push_back(inputs.size(d));
  return attributions.view(shape).mean(1);
}

// `baselines`: [K,C,H,W], K >= 1.
inline torch::Tensor gradient_shap(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                                   const torch::Tensor& baselines, const GradientShapOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  detail::check_batch_size(options.batch_size, "GradientSHAP");
  detail::check_baselines(baselines, inputs, "GradientSHAP");
  if (options.samples < 1 || options.samples > 100'000)
    detail::fail("GradientSHAP samples must be in [1, 100000], got ", options.samples);
  if (!(options.stdev >= 0) || !std::isfinite(options.stdev))
    detail::fail("GradientSHAP stdev must be finite and >= 0, got ", options.stdev);
  const int64_t n = inputs.size(0), s = options.samples;
  auto resolved = resolve_target(model, inputs, target);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  auto cpu = torch::TensorOptions().dtype(inputs.dtype());
  // Draws, sample-minor as Captum's noise tunnel: [x0 s0, x0 s1, ..., x1 s0, ...].
  auto x = inputs.repeat_interleave(s, 0);
  if (options.stdev > 0) x = x + (at::randn(x.sizes(), generator, cpu) * options.stdev).to(inputs.device());
  auto index = at::randint(baselines.size(0), {n * s}, generator, cpu.dtype(torch::kLong));
  auto b = baselines.to(inputs.options()).index_select(0, index.to(inputs.device()));
  std::vector<int64_t> column(static_cast<std::size_t>(inputs.dim()), 1);
  column[0] = n * s;
  auto alpha = at::rand({n * s}, generator, cpu).to(inputs.device()).view(column);
  auto points = b + alpha * (x - b);
  auto gradient = detail::batched_gradient(model, points, resolved.interleaved(s), options.batch_size, options.progress);
  std::vector<int64_t> shape{n, s};
  for (int64_t d = 1; d < inputs.dim(); ++d) shape.push_back(inputs.size(d));
  return (gradient * (x - b)).view(shape).mean(1);
}

}  // namespace salient
