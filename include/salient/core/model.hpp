#pragma once
// The model concept shared by both backends, and target resolution.
//
// A model has a backend, a forward-only evaluation `forward(x) -> output [N, ...]` and
// `gradient(x, target) -> {scores [N], d scores / d x}` where each item's gradient is that
// of its own score (batch items are independent: models are in eval mode).
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <vector>

#include "salient/core/backend.hpp"
#include "salient/core/target.hpp"

namespace salient {

template <class M>
concept Model = requires { typename M::backend; } && TensorBackend<typename M::backend> &&
    requires(M& model, const typename M::backend::Tensor& x,
             const ResolvedTarget<typename M::backend::Tensor>& target) {
      { model.forward(x) } -> std::convertible_to<typename M::backend::Tensor>;
      { model.gradient(x, target) } -> std::same_as<ScoredGradient<typename M::backend::Tensor>>;
    };

template <Model M>
using BackendOf = typename M::backend;
template <Model M>
using TensorOf = typename M::backend::Tensor;
template <Model M>
using TargetOf = BasicTarget<TensorOf<M>>;

// Called as work proceeds: (done, total) in model evaluations.
using Progress = std::function<void(int64_t done, int64_t total)>;

// Binds `target` to the batch `inputs`: top-1 runs one forward pass on the inputs.
template <Model M>
ResolvedTarget<TensorOf<M>> resolve_target(M& model, const TensorOf<M>& inputs,
                                           const TargetOf<M>& target) {
  using B = BackendOf<M>;
  if (target.is_custom()) return {{}, target.custom()};
  return {target.classes(B::rows(inputs), [&] { return B::argmax_rows(model.forward(inputs)); }), {}};
}

// The target scores of `inputs` ([N] as doubles), forward-only.
template <Model M>
std::vector<double> target_scores(M& model, const TensorOf<M>& inputs,
                                  const ResolvedTarget<TensorOf<M>>& target) {
  using B = BackendOf<M>;
  return B::to_vector(B::select(model.forward(inputs), target));
}

struct EvaluateOptions {
  int64_t batch_size = 64;  // model inputs per forward call
  Progress progress = {};   // (inputs done, total)
};

namespace detail {
// Runs fn(begin, end) over [0, total) in chunks of at most `chunk` items.
template <class Fn>
void for_each_chunk(int64_t total, int64_t chunk, Fn&& fn) {
  if (chunk < 1) fail("batch_size must be at least 1, got ", chunk);
  for (int64_t begin = 0; begin < total; begin += chunk) fn(begin, std::min(total, begin + chunk));
}

template <TensorBackend B>
void check_inputs(const typename B::Tensor& inputs) {
  if (B::rows(inputs) < 1) fail("inputs must be a batch with at least one item");
  B::check_finite(inputs, "input");
}
}  // namespace detail
// Forward-only outputs of many inputs, evaluated in chunks of `batch_size` (the building
// block of perturbation methods and metrics, which evaluate thousands of masked inputs).
template <Model M>
TensorOf<M> evaluate(M& model, const TensorOf<M>& inputs, const EvaluateOptions& options = {}) {
  using B = BackendOf<M>;
  const int64_t n = B::rows(inputs);
  std::vector<TensorOf<M>> outputs;
  detail::for_each_chunk(n, options.batch_size, [&](int64_t begin, int64_t end) {
    outputs.push_back(model.forward(B::slice_rows(inputs, begin, end)));
    if (options.progress) options.progress(end, n);
  });
  if (outputs.empty()) detail::fail("evaluate: no inputs");
  return B::concat_rows(outputs);
}

}  // namespace salient
