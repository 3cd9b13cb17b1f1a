#pragma once
// Options of relevance propagation and the reference-based gradient methods (LRP, DeepLIFT,
// DeepLIFT-SHAP, GradientSHAP), LibTorch-free so the method registry can name them.
// TorchModel's implementations: attribution/relevance.hpp and attribution/deeplift.hpp.
#include <cstdint>
#include <string>
#include <string_view>

#include "salient/core/error.hpp"
#include "salient/core/model.hpp"
#include "salient/io/image.hpp"

namespace salient {

struct LrpOptions {
  std::string composite = "epsilon_plus_flat";  // graph::composite_names
  double epsilon = 0;        // the epsilon rule's stabiliser; 0: 1e-6 (zennit), 1e-9 for "epsilon" (Captum)
  double gamma = 0.25;       // the gamma rule's (epsilon_gamma_box)
  bool times_score = false;  // relevance starts at the score (Captum), not 1 (zennit)
  // z-box bounds (epsilon_gamma_box): black and white pixels after this normalisation.
  Normalization normalization = Normalization::imagenet();
  int64_t batch_size = 16;
  Progress progress = {};
};

// How DeepLIFT treats max pooling.
// - gradient: the pool passes the gradient to each window's argmax, as the DeepLIFT authors'
//   reference implementation does by default, and as Captum 0.8 computes on every network whose
//   max pools take an activation module's output (VGG, ResNet, AlexNet): its activation hook
//   reads the pool's gradient before the pool's own hook rewrites it, so the rewrite has no
//   effect. Where the input's and the baseline's argmax differ, the sum is not F(x) - F(b).
// - rescale: Captum's documented cross-max rule, the change of each window's maximum split
//   between the input's and the baseline's argmax; the attribution sums to F(x) - F(b) for
//   non-overlapping pools. Captum 0.8 computes this only for a max-pool module whose input
//   is not an activation's output.
enum class DeepLiftMaxPool { gradient, rescale };

inline std::string_view to_string(DeepLiftMaxPool rule) { return rule == DeepLiftMaxPool::gradient ? "gradient" : "rescale"; }
inline void from_string(std::string_view name, DeepLiftMaxPool& rule) {
  if (name == "gradient") rule = DeepLiftMaxPool::gradient;
  else if (name == "rescale") rule = DeepLiftMaxPool::rescale;
  else detail::fail("unknown DeepLIFT max-pool rule '", name, "' (expected gradient or rescale)");
}

struct DeepLiftOptions {
  double eps = 1e-10;       // below this |delta_in|, the plain gradient (Captum's eps)
  DeepLiftMaxPool max_pool = DeepLiftMaxPool::gradient;
  int64_t batch_size = 16;  // input-baseline pairs per model run (a multiple of the baselines when they are shared)
  Progress progress = {};
};

struct GradientShapOptions {
  int64_t samples = 5;  // draws per input (Captum's n_samples)
  double stdev = 0.0;   // Gaussian noise added to the input (Captum's stdevs)
  uint64_t seed = 0;
  int64_t batch_size = 16;
  Progress progress = {};
};

template <class Visit>
void for_each_option(LrpOptions& o, Visit&& visit) {
  visit("composite", o.composite), visit("epsilon", o.epsilon), visit("gamma", o.gamma);
  visit("times_score", o.times_score), visit("batch_size", o.batch_size), visit("progress", o.progress);
}
template <class Visit>
void for_each_option(DeepLiftOptions& o, Visit&& visit) {
  visit("eps", o.eps), visit("max_pool", o.max_pool), visit("batch_size", o.batch_size), visit("progress", o.progress);
}
template <class Visit>
void for_each_option(GradientShapOptions& o, Visit&& visit) {
  visit("samples", o.samples), visit("stdev", o.stdev), visit("seed", o.seed);
  visit("batch_size", o.batch_size), visit("progress", o.progress);
}

}  // namespace salient
