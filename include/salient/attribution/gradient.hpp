#pragma once
// Gradient-based attributions.
//
// saliency:         |dF/dx| (abs = true, Captum's `Saliency` default) or the signed dF/dx.
//                   Simonyan, Vedaldi, Zisserman 2014, "Deep Inside Convolutional Networks".
// input_x_gradient: x * dF/dx (Captum's `InputXGradient`). Shrikumar et al. 2016.
// F is the model's raw output selected by the target (no softmax), each item's gradient
// that of its own score. Inputs are evaluated in chunks of `batch_size` items.
#include <cstdint>
#include <vector>

#include "salient/core/model.hpp"

namespace salient {

struct SaliencyOptions {
  bool abs = true;
  int64_t batch_size = 16;
  Progress progress = {};
};

struct InputXGradientOptions {
  int64_t batch_size = 16;
  Progress progress = {};
};

// The fields by name (core/options.hpp).
template <class Visit>
void for_each_option(SaliencyOptions& o, Visit&& visit) {
  visit("abs", o.abs), visit("batch_size", o.batch_size), visit("progress", o.progress);
}
template <class Visit>
void for_each_option(InputXGradientOptions& o, Visit&& visit) {
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}

namespace detail {
// d score / d input for every item of `inputs`, in chunks of `batch_size` items.
template <Model M>
TensorOf<M> batched_gradient(M& model, const TensorOf<M>& inputs,
                             const ResolvedTarget<TensorOf<M>>& target, int64_t batch_size,
                             const Progress& progress) {
  using B = BackendOf<M>;
  const int64_t n = B::rows(inputs);
  if (batch_size >= n) {
    auto gradient = model.gradient(inputs, target).gradient;
    if (progress) progress(n, n);
    return gradient;
  }
  std::vector<TensorOf<M>> parts;
  for_each_chunk(n, batch_size, [&](int64_t begin, int64_t end) {
    parts.push_back(model.gradient(B::slice_rows(inputs, begin, end), target.slice(begin, end)).gradient);
    if (progress) progress(end, n);
  });
  return B::concat_rows(parts);
}
}  // namespace detail

template <Model M>
TensorOf<M> saliency(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                     const SaliencyOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  auto gradient = detail::batched_gradient(model, inputs, resolve_target(model, inputs, target),
                                           options.batch_size, options.progress);
  return options.abs ? B::abs(gradient) : gradient;
}

template <Model M>
TensorOf<M> input_x_gradient(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                             const InputXGradientOptions& options = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  auto gradient = detail::batched_gradient(model, inputs, resolve_target(model, inputs, target),
                                           options.batch_size, options.progress);
  return TensorOf<M>(inputs * gradient);
}

}  // namespace salient
