#pragma once
// Noise tunnel over any attribution method (Captum's `NoiseTunnel`):
//
//   smoothgrad     E[a(x + e)]                 Smilkov et al. 2017, "SmoothGrad"
//   smoothgrad_sq  E[a(x + e)^2]               Hooker et al. 2019 (SG-SQ)
//   vargrad        E[a^2] - E[a]^2             Adebayo et al. 2018 (population variance)
//
// e ~ N(0, stdev^2) element-wise with an absolute `stdev` (Captum's `stdevs`), or, with
// `relative_stdev` > 0, stdev = relative_stdev * (max - min) of each input (PAIR's
// `stdev_spread`; the SmoothGrad paper recommends 0.1-0.2). Noisy copies are laid out example-major
// ([x0+e00, x0+e01, ..., x1+e10, ...]) and handed to the method in calls of at most
// `batch_size` inputs. The noise of copy j of item i is drawn from its own generator seeded
// from (seed, i, j), so the same seed gives the same result whatever the batch size.
// A wrapped method sees chunks of noisy copies, not the original batch: baselines passed to
// it (integrated gradients) must be a scalar or a single item, not one per input.
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "salient/core/model.hpp"
#include "salient/core/random.hpp"

namespace salient {

enum class NoiseTunnelType { smoothgrad, smoothgrad_sq, vargrad };

inline std::string_view to_string(NoiseTunnelType type) {
  switch (type) {
    case NoiseTunnelType::smoothgrad: return "smoothgrad";
    case NoiseTunnelType::smoothgrad_sq: return "smoothgrad_sq";
    case NoiseTunnelType::vargrad: return "vargrad";
  }
  return "?";
}
inline void from_string(std::string_view name, NoiseTunnelType& type) {
  for (auto t : {NoiseTunnelType::smoothgrad, NoiseTunnelType::smoothgrad_sq, NoiseTunnelType::vargrad})
    if (name == to_string(t)) {
      type = t;
      return;
    }
  detail::fail("unknown noise tunnel type '", name, "' (expected smoothgrad, smoothgrad_sq or vargrad)");
}

struct NoiseTunnelOptions {
  NoiseTunnelType type = NoiseTunnelType::smoothgrad;
  int64_t samples = 5;       // Captum's nt_samples default
  double stdev = 1.0;        // absolute, in model-input units (Captum's stdevs default)
  double relative_stdev = 0; // > 0: stdev = relative_stdev * each input's value range (replaces stdev)
  uint64_t seed = 0;
  int64_t batch_size = 16;   // noisy inputs per call of the wrapped method
  Progress progress = {};    // in noisy inputs done
};

template <class Visit>
void for_each_option(NoiseTunnelOptions& o, Visit&& visit) {
  visit("type", o.type), visit("samples", o.samples), visit("stdev", o.stdev);
  visit("relative_stdev", o.relative_stdev), visit("seed", o.seed);
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}

// `method(model, noisy_inputs, target) -> attributions` is any method of the uniform calling
// convention (MethodOf<M>), e.g. a lambda calling salient::saliency, or a Method<M>.
template <ForwardModel M, MethodOf<M> F>
TensorOf<M> noise_tunnel(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, F&& method,
                         const NoiseTunnelOptions& options = {}) {
  using B = BackendOf<M>;
  using Tensor = TensorOf<M>;
  detail::check_inputs<B>(inputs);
  if (options.samples < 1) detail::fail("noise tunnel needs samples >= 1, got ", options.samples);
  if (!(options.stdev >= 0)) detail::fail("noise tunnel needs stdev >= 0, got ", options.stdev);
  if (!(options.relative_stdev >= 0)) detail::fail("noise tunnel needs relative_stdev >= 0, got ", options.relative_stdev);
  const int64_t n = B::rows(inputs), m = options.samples, total = n * m;
  std::vector<double> stdevs(static_cast<std::size_t>(n), options.stdev);  // per item
  if (options.relative_stdev > 0)
    for (int64_t i = 0; i < n; ++i) {
      const auto [low, high] = B::value_range(B::slice_rows(inputs, i, i + 1));
      stdevs[i] = options.relative_stdev * (high - low);
    }
  // Every noisy copy explains its own item's class (top-1 of the clean input).
  const auto resolved = resolve_target(model, inputs, target).interleaved(m);

  // Sums shaped as the method's maps (which need not be the inputs' shape: Grad-CAM's have one
  // channel), made at the first chunk.
  std::optional<Tensor> sum, sum_sq;
  detail::for_each_chunk(total, options.batch_size, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> items;
    std::vector<uint64_t> seeds;
    for (int64_t row = begin; row < end; ++row) {
      items.push_back(row / m);
      seeds.push_back(detail::mix_seed(options.seed, row / m, row % m));
    }
    // One noise call for the chunk; with per-item stdevs, one per item's run of rows (rows of
    // one item are consecutive). Seeds are per row, so both give the same noise.
    std::vector<Tensor> runs;
    if (options.relative_stdev == 0) {
      runs.push_back(B::take_rows(inputs, items));
      B::add_normal_noise(runs.back(), options.stdev, seeds);
    }
    for (std::size_t first = 0; options.relative_stdev > 0 && first < items.size();) {
      std::size_t last = first;
      while (last < items.size() && items[last] == items[first]) ++last;
      Tensor run = B::take_rows(inputs, std::vector<int64_t>(items.begin() + first, items.begin() + last));
      B::add_normal_noise(run, stdevs[items[first]], std::vector<uint64_t>(seeds.begin() + first, seeds.begin() + last));
      runs.push_back(std::move(run));
      first = last;
    }
    Tensor noisy = runs.size() == 1 ? runs.front() : B::concat_rows(runs);
    auto part = resolved.slice(begin, end);
    TargetOf<M> chunk_target = part.is_custom() ? TargetOf<M>(part.custom) : TargetOf<M>(part.classes);
    Tensor attributions = method(model, noisy, chunk_target);
    auto shape = B::shape(attributions);
    if (shape.empty() || shape[0] != end - begin)
      detail::fail("noise tunnel: the method returned maps of shape ", detail::shape_text(shape), " for ", end - begin, " inputs");
    shape[0] = n;
    if (!sum) {
      int64_t count = 1;
      for (const int64_t d : shape) count *= d;
      const std::vector<double> zeros(static_cast<std::size_t>(count), 0.0);
      sum = B::from_values(zeros, shape, attributions);
      sum_sq = B::from_values(zeros, shape, attributions);
    } else if (B::shape(*sum) != shape) {
      detail::fail("noise tunnel: the method returned maps of shape ", detail::shape_text(B::shape(attributions)),
                   " after maps of ", detail::shape_text(B::shape(*sum)), " per ", n, " inputs");
    }
    B::add_rows_grouped(*sum, attributions, begin, m);
    if (options.type != NoiseTunnelType::smoothgrad) B::add_rows_grouped(*sum_sq, Tensor(attributions * attributions), begin, m);
    if (options.progress) options.progress(end, total);
  });
  const double inverse = 1.0 / static_cast<double>(m);
  switch (options.type) {
    case NoiseTunnelType::smoothgrad: return Tensor(*sum * inverse);
    case NoiseTunnelType::smoothgrad_sq: return Tensor(*sum_sq * inverse);
    case NoiseTunnelType::vargrad: {
      Tensor mean = *sum * inverse;
      return Tensor(*sum_sq * inverse - mean * mean);
    }
  }
  return *sum;
}

}  // namespace salient
