#pragma once
// The model concepts shared by both backends, and target resolution.
//
// A ForwardModel has a backend and a forward-only evaluation `forward(x) -> output [N, ...]`:
// enough for the perturbation family (occlusion, ablation, RISE, LIME, KernelSHAP) and the
// metrics. A Model adds `gradient(x, target) -> {scores [N], d scores / d x}` where each
// item's gradient is that of its own score (batch items are independent: eval mode).
// `forward_model<Backend>(callable)` makes a ForwardModel of any batch -> scores function.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "salient/core/backend.hpp"
#include "salient/core/target.hpp"

namespace salient {

template <class M>
concept ForwardModel = requires { typename M::backend; } && TensorBackend<typename M::backend> &&
    requires(M& model, const typename M::backend::Tensor& x) {
      { model.forward(x) } -> std::convertible_to<typename M::backend::Tensor>;
    };

template <class M>
concept Model = ForwardModel<M> &&
    requires(M& model, const typename M::backend::Tensor& x,
             const ResolvedTarget<typename M::backend::Tensor>& target) {
      { model.gradient(x, target) } -> std::same_as<ScoredGradient<typename M::backend::Tensor>>;
    };

template <ForwardModel M>
using BackendOf = typename M::backend;
template <ForwardModel M>
using TensorOf = typename M::backend::Tensor;
template <ForwardModel M>
using TargetOf = BasicTarget<TensorOf<M>>;

// Any callable batch -> output as a ForwardModel of backend B.
template <TensorBackend B, class Fn>
  requires std::invocable<Fn&, const typename B::Tensor&>
struct FunctionModel {
  using backend = B;
  Fn function;
  typename B::Tensor forward(const typename B::Tensor& x) { return function(x); }
};
template <TensorBackend B, class Fn>
FunctionModel<B, std::decay_t<Fn>> forward_model(Fn&& function) {
  return {std::forward<Fn>(function)};
}

// An attribution method of the uniform calling convention, bound to its options:
// (model, inputs, target) -> attributions. Algorithms that run a method (the noise tunnel,
// sensitivity-max, the sanity tests) accept any such callable; Method<M> is its type-erased
// form (a registry entry, a CLI's choice).
template <class F, class M>
concept MethodOf = ForwardModel<M> && std::invocable<F&, M&, const TensorOf<M>&, const TargetOf<M>&> &&
    std::convertible_to<std::invoke_result_t<F&, M&, const TensorOf<M>&, const TargetOf<M>&>, TensorOf<M>>;
template <ForwardModel M>
using Method = std::function<TensorOf<M>(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target)>;

// Called as work proceeds: (done, total) in model evaluations.
using Progress = std::function<void(int64_t done, int64_t total)>;

// Binds `target` to the batch `inputs`: top-1 runs one forward pass on the inputs.
template <ForwardModel M>
ResolvedTarget<TensorOf<M>> resolve_target(M& model, const TensorOf<M>& inputs,
                                           const TargetOf<M>& target) {
  using B = BackendOf<M>;
  if (target.is_custom()) return {{}, target.custom()};
  return {target.classes(B::rows(inputs), [&] { return B::argmax_rows(model.forward(inputs)); }), {}};
}

// The target scores of `inputs` ([N] as doubles), forward-only.
template <ForwardModel M>
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

// Every method's bound on the items per model call.
inline void check_batch_size(int64_t batch_size, std::string_view method) {
  if (batch_size < 1 || batch_size > 1'000'000) fail(method, " batch_size must be in [1, 1000000], got ", batch_size);
}

template <TensorBackend B>
void check_inputs(const typename B::Tensor& inputs) {
  if (B::rows(inputs) < 1) fail("inputs must be a batch with at least one item");
  B::check_finite(inputs, "input");
}
}  // namespace detail
// Forward-only outputs of many inputs, evaluated in chunks of `batch_size` (the building
// block of perturbation methods and metrics, which evaluate thousands of masked inputs).
template <ForwardModel M>
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
