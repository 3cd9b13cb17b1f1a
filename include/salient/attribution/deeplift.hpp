#pragma once
// Reference-based gradient methods: DeepLIFT, DeepLIFT-SHAP and GradientSHAP.
//
// - deeplift: (x - b) * m, where m is d score / d x with DeepLIFT's rescale rule
//   (graph::deeplift_rules: a forward-only run on b, then forward and backward on x);
//   Captum's DeepLift (Shrikumar et al. 2017). On a network whose nonlinearities are element-wise activations (and max pooling with
//   DeepLiftOptions::max_pool = rescale), the attribution sums to F(x) - F(b). The default
//   max-pool rule, the gradient, gives Captum 0.8's numbers on VGG and ResNet (see
//   DeepLiftMaxPool), where the sum can differ from F(x) - F(b).
// - deeplift_shap: deeplift against each of K baselines, averaged; Captum's DeepLiftShap
//   (Lundberg & Lee 2017).
// - gradient_shap: the expected gradient x (x - b) over baselines b drawn from the set and
//   points b + alpha (x - b), alpha ~ U(0, 1), `samples` draws per input, with Gaussian input
//   noise of `stdev`; Captum's GradientShap (seeded here: the same seed, the same numbers).
#include <algorithm>
#include <memory>
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

// (x - b) * DeepLIFT multipliers for items x[i] against the baseline b[i % R] (R = b's rows,
// which divide x's), with target[i]. Baselines shared by several items (R < x's rows) run
// forward once, and every chunk then holds a whole multiple of R items.
inline torch::Tensor deeplift_pairs(TorchModel& model, const torch::Tensor& x, const torch::Tensor& b,
                                    const ResolvedTarget<torch::Tensor>& target, const DeepLiftOptions& options) {
  const int64_t items = x.size(0), rows = b.size(0);
  const bool shared = rows < items;
  const auto& program = program_of(model);
  auto references = std::make_shared<graph::DeepLiftReferences>();
  const auto rules = graph::deeplift_rules(references, options.eps, options.max_pool == DeepLiftMaxPool::rescale);
  auto record = [&](const torch::Tensor& baselines) {
    torch::NoGradGuard no_grad;
    references->entries.clear();
    references->recording = true;
    graph::run(program, rules, {baselines});
    references->recording = false;
  };
  if (shared) record(b);
  const int64_t chunk = shared ? std::max<int64_t>(1, options.batch_size / rows) * rows : options.batch_size;
  std::vector<torch::Tensor> parts;
  for_each_chunk(items, chunk, [&](int64_t begin, int64_t end) {
    auto xs = x.slice(0, begin, end), bs = shared ? b : b.slice(0, begin, end);
    if (!shared) record(bs);
    references->next = 0;
    auto gradient = layer_gradients(model, program, xs, target.slice(begin, end), {}, rules, true).input_gradient;
    if (references->next != references->entries.size())
      fail("DeepLIFT: the inputs ran ", references->next, " ops with a DeepLIFT rule, the baselines ",
           references->entries.size(), " (the model's control flow depends on its input)");
    parts.push_back(graph::detail::minus_reference(xs, bs) * gradient);
    if (options.progress) options.progress(end, items);
  });
  return torch::cat(parts, 0);
}
}  // namespace detail

// `baseline`: [1,C,H,W] or one per input; undefined: zeros (Captum's default).
inline torch::Tensor deeplift(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                              torch::Tensor baseline = {}, const DeepLiftOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  detail::check_batch_size(options.batch_size, "DeepLIFT");
  if (!baseline.defined()) baseline = torch::zeros_like(inputs.slice(0, 0, 1));
  bool matches = baseline.dim() == inputs.dim();
  for (int64_t d = 0; matches && d < inputs.dim(); ++d) matches = baseline.size(d) == 1 || baseline.size(d) == inputs.size(d);
  if (!matches)
    detail::fail("DeepLIFT baseline ", shape_string(baseline), " does not match the inputs ", shape_string(inputs),
                 " (give [1, C, H, W] or one per input)");
  if (!torch::isfinite(baseline).all().item<bool>()) detail::fail("DeepLIFT baseline contains NaN or infinite values");
  auto image = inputs.sizes().vec();  // one baseline for all inputs, or one each
  image[0] = baseline.size(0);
  baseline = baseline.to(inputs.options()).expand(image);
  return detail::deeplift_pairs(model, inputs, baseline, resolve_target(model, inputs, target), options);
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
  auto attributions = detail::deeplift_pairs(model, x, baselines.to(inputs.options()), resolved.interleaved(k), options);
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
