#pragma once
// Integrated gradients (Sundararajan, Taly, Yan 2017, "Axiomatic Attribution for Deep
// Networks"), with Captum's exact discretisation (`IntegratedGradients`, its `method`):
//
//   IG(x) = (x - x') * sum_k w_k * dF/dx (x' + a_k (x - x'))
//
//   riemann_left       a_k = k/n                 w_k = 1/n
//   riemann_right      a_k = (k+1)/n             w_k = 1/n
//   riemann_middle     a_k = (k+1/2)/n           w_k = 1/n
//   riemann_trapezoid  a_k = k/(n-1)             w_k = 1/n, w_0 = w_{n-1} = 1/(2n)
//                      (Captum's weights sum to (n-1)/n, not 1: reproduced on purpose)
//   gausslegendre      a_k = (1+t_k)/2           w_k = v_k/2, (t, v) the n-point
//                      Gauss-Legendre rule on [-1, 1] (the default, as in Captum)
//
// Riemann points are the float32 values of torch.linspace, as in Captum. Points and weights
// are kept in double here; a float32 backend rounds them to float32 as Captum does, the
// double-precision xtensor backend keeps them exact. Scaled inputs are laid out step-major and evaluated in chunks of
// max(1, batch_size / N) steps (Captum's `internal_batch_size`). The baseline x' is a scalar,
// one item or one per input (default 0, Captum's). Completeness: sum IG = F(x) - F(x')
// up to the discretisation error, see `convergence_delta`.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <string_view>
#include <vector>

#include "salient/core/model.hpp"

namespace salient {

enum class IntegrationMethod { gauss_legendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid };

// Captum's names: gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid.
inline IntegrationMethod parse_integration_method(std::string_view name) {
  if (name == "gausslegendre" || name == "gauss_legendre") return IntegrationMethod::gauss_legendre;
  if (name == "riemann_left") return IntegrationMethod::riemann_left;
  if (name == "riemann_right") return IntegrationMethod::riemann_right;
  if (name == "riemann_middle") return IntegrationMethod::riemann_middle;
  if (name == "riemann_trapezoid") return IntegrationMethod::riemann_trapezoid;
  detail::fail("unknown integration method '", name,
               "' (expected gausslegendre, riemann_left, riemann_right, riemann_middle or riemann_trapezoid)");
}

inline std::string_view to_string(IntegrationMethod method) {
  switch (method) {
    case IntegrationMethod::gauss_legendre: return "gausslegendre";
    case IntegrationMethod::riemann_left: return "riemann_left";
    case IntegrationMethod::riemann_right: return "riemann_right";
    case IntegrationMethod::riemann_middle: return "riemann_middle";
    case IntegrationMethod::riemann_trapezoid: return "riemann_trapezoid";
  }
  return "?";
}
inline void from_string(std::string_view name, IntegrationMethod& method) { method = parse_integration_method(name); }

struct IntegrationSteps {
  std::vector<double> alphas;
  std::vector<double> weights;
};

namespace detail {
// float32 torch.linspace(start, end, steps): the CPU kernel fills the first half forwards
// from `start` and the second half backwards from `end` with a float step.
inline std::vector<double> float_linspace(float start, float end, int64_t steps) {
  std::vector<double> values(steps);
  if (steps == 1) { values[0] = start; return values; }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    values[i] = i < halfway ? start + step * static_cast<float>(i)
                            : end - step * static_cast<float>(steps - i - 1);
  return values;
}

// n-point Gauss-Legendre nodes (ascending) and weights on [-1, 1], by Newton's method on
// the Legendre polynomial (agrees with numpy.polynomial.legendre.leggauss to ~1e-15).
inline IntegrationSteps gauss_legendre_rule(int64_t n) {
  IntegrationSteps rule{std::vector<double>(n), std::vector<double>(n)};
  for (int64_t i = 0; i < (n + 1) / 2; ++i) {
    double x = std::cos(std::numbers::pi * (static_cast<double>(i) + 0.75) / (static_cast<double>(n) + 0.5));
    double derivative = 0;
    for (int iteration = 0; iteration < 100; ++iteration) {
      double p0 = 1, p1 = x;
      for (int64_t k = 2; k <= n; ++k) {
        double p2 = ((2.0 * k - 1) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      derivative = n * (x * p1 - p0) / (x * x - 1);
      double dx = p1 / derivative;
      x -= dx;
      if (std::abs(dx) < 1e-16) break;
    }
    double weight = 2 / ((1 - x * x) * derivative * derivative);
    rule.alphas[n - 1 - i] = x;   // nodes ascending: the largest root first from the top
    rule.alphas[i] = -x;
    rule.weights[i] = rule.weights[n - 1 - i] = weight;
  }
  return rule;
}
}  // namespace detail

// The points a_k in [0, 1] and weights w_k of `method` with `steps` points.
inline IntegrationSteps integration_steps(IntegrationMethod method, int64_t steps) {
  const bool riemann = method != IntegrationMethod::gauss_legendre;
  if (steps < (riemann ? 2 : 1))
    detail::fail("integrated gradients needs steps >= ", riemann ? 2 : 1, " for ", to_string(method), ", got ", steps);
  IntegrationSteps result;
  const float n = static_cast<float>(steps);
  const double uniform = 1.0 / static_cast<double>(steps);
  switch (method) {
    case IntegrationMethod::gauss_legendre: {
      result = detail::gauss_legendre_rule(steps);
      for (auto& a : result.alphas) a = 0.5 * (1 + a);
      for (auto& w : result.weights) w *= 0.5;
      return result;
    }
    case IntegrationMethod::riemann_left: result.alphas = detail::float_linspace(0, 1 - 1 / n, steps); break;
    case IntegrationMethod::riemann_right: result.alphas = detail::float_linspace(1 / n, 1, steps); break;
    case IntegrationMethod::riemann_middle:
      result.alphas = detail::float_linspace(1 / (2 * n), 1 - 1 / (2 * n), steps);
      break;
    case IntegrationMethod::riemann_trapezoid: result.alphas = detail::float_linspace(0, 1, steps); break;
  }
  result.weights.assign(steps, uniform);
  if (method == IntegrationMethod::riemann_trapezoid)
    result.weights.front() = result.weights.back() = 1.0 / (2.0 * static_cast<double>(steps));
  return result;
}

template <class Tensor>
struct IntegratedGradientsOptions {
  int64_t steps = 50;                                  // Captum's n_steps default
  IntegrationMethod method = IntegrationMethod::gauss_legendre;
  std::optional<Tensor> baseline = {};                 // default: 0 (the all-zero input)
  bool multiply_by_inputs = true;                      // false: the integrated gradient only
  int64_t batch_size = 16;                             // model inputs per call
  Progress progress = {};                              // in model inputs evaluated
};

// The fields by name (core/options.hpp); the baseline is a tensor, set directly.
template <class Tensor, class Visit>
void for_each_option(IntegratedGradientsOptions<Tensor>& o, Visit&& visit) {
  visit("steps", o.steps), visit("method", o.method), visit("multiply_by_inputs", o.multiply_by_inputs);
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}

namespace detail {
template <Model M>
TensorOf<M> baseline_for(const TensorOf<M>& inputs, const std::optional<TensorOf<M>>& baseline) {
  using B = BackendOf<M>;
  auto broadcast = B::broadcast_to(baseline ? *baseline : B::zeros_like(B::slice_rows(inputs, 0, 1)), inputs);
  B::check_finite(broadcast, "baseline");
  return broadcast;
}
}  // namespace detail

template <Model M>
TensorOf<M> integrated_gradients(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                 const IntegratedGradientsOptions<TensorOf<M>>& options = {}) {
  using B = BackendOf<M>;
  using Tensor = TensorOf<M>;
  detail::check_inputs<B>(inputs);
  const auto steps = integration_steps(options.method, options.steps);
  const Tensor baseline = detail::baseline_for<M>(inputs, options.baseline);
  const auto resolved = resolve_target(model, inputs, target);

  const int64_t n = B::rows(inputs);
  const int64_t steps_per_call = std::max<int64_t>(1, options.batch_size / n);
  const Tensor difference = inputs - baseline;
  Tensor integrated = B::zeros_like(inputs);
  detail::for_each_chunk(options.steps, steps_per_call, [&](int64_t first, int64_t last) {
    const std::vector<double> alphas(steps.alphas.begin() + first, steps.alphas.begin() + last);
    auto gradient = model.gradient(B::lerp_batch(baseline, difference, alphas), resolved.tiled(last - first)).gradient;
    B::add_weighted_blocks(integrated, gradient,
                           std::vector<double>(steps.weights.begin() + first, steps.weights.begin() + last));
    if (options.progress) options.progress(last * n, options.steps * n);
  });
  if (!options.multiply_by_inputs) return integrated;
  return Tensor(integrated * difference);
}

// Completeness gap per item: sum(attributions_i) - (F(x_i) - F(x'_i)) (Captum's
// `compute_convergence_delta`). One forward pass over inputs and baselines together.
template <Model M>
std::vector<double> convergence_delta(M& model, const TensorOf<M>& attributions, const TensorOf<M>& inputs,
                                      const TargetOf<M>& target,
                                      const std::optional<TensorOf<M>>& baseline = {}) {
  using B = BackendOf<M>;
  detail::check_inputs<B>(inputs);
  const int64_t n = B::rows(inputs);
  auto output = model.forward(B::concat_rows({inputs, detail::baseline_for<M>(inputs, baseline)}));
  ResolvedTarget<TensorOf<M>> resolved{{}, {}};
  if (target.is_custom()) resolved.custom = target.custom();
  else resolved.classes = target.classes(n, [&] { return B::argmax_rows(B::slice_rows(output, 0, n)); });
  auto scores = B::to_vector(B::select(output, resolved.tiled(2)));
  auto sums = B::row_sums(attributions);
  if (static_cast<int64_t>(sums.size()) != n)
    detail::fail("attributions have ", sums.size(), " items for ", n, " inputs");
  std::vector<double> delta(n);
  for (int64_t i = 0; i < n; ++i) delta[i] = sums[i] - (scores[i] - scores[n + i]);
  return delta;
}

}  // namespace salient
