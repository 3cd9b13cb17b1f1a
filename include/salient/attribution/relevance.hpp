#pragma once
// Layer-wise relevance propagation with a composite (graph/relevance.hpp has the rules).
//
// lrp: the relevance of every input value for the target score, propagated back through
// the model's canonical program (batch norms folded into their convolutions, residual
// additions explicit; the model itself is not changed) with the composite's rule for each
// op. As zennit's Gradient attributor, relevance starts as 1 at the target score, so the
// input relevance sums to about 1 on a ReLU network whose biases are small; `times_score`
// starts it at the score itself, as Captum's LRP does (the sum is then about the score).
// Bach et al. 2015 (LRP), Montavon et al. 2019 (composites, Gamma), zennit (Anders et al. 2021).
#include <optional>
#include <string>

#include "salient/attribution/guided_backprop.hpp"
#include "salient/attribution/relevance_options.hpp"
#include "salient/graph/relevance.hpp"

namespace salient {

namespace detail {
struct CanonicalProgram {
  graph::Program program;
};
}  // namespace detail

// The model's program with graph::canonical_program's rewrites, made on first use.
inline const graph::Program& canonical_program_of(TorchModel& model) {
  return model.derived<detail::CanonicalProgram>([&] {
    return detail::CanonicalProgram{graph::canonical_program(program_of(model))};
  }).program;
}

inline torch::Tensor lrp(TorchModel& model, const torch::Tensor& inputs, const Target& target,
                         const LrpOptions& options = {}) {
  detail::check_inputs<TorchBackend>(inputs);
  detail::check_batch_size(options.batch_size, "LRP");
  if (options.epsilon < 0) detail::fail("LRP epsilon must be >= 0 (0: the composite's default), got ", options.epsilon);
  graph::CompositeParameters parameters{.gamma = options.gamma};
  if (options.epsilon > 0) parameters.epsilon = options.epsilon;
  if (options.composite == "epsilon_gamma_box") {  // the image's range in model input units
    const auto channels = inputs.size(1);
    parameters.low = torch::tensor(options.normalization.level(0.f, channels)).view({1, channels, 1, 1});
    parameters.high = torch::tensor(options.normalization.level(1.f, channels)).view({1, channels, 1, 1});
  }
  const auto& program = canonical_program_of(model);
  return rule_gradient(model, inputs, target,
                       {.rules = graph::composite(options.composite, parameters).rule_set(program),
                        .batch_size = options.batch_size,
                        .progress = options.progress,
                        .program = &program,
                        .times_score = options.times_score});
}

}  // namespace salient
