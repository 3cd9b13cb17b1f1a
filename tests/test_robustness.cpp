// Robustness metrics on the xtensor backend (no LibTorch): the local Lipschitz estimate and the
// relative input stability (Quantus' LocalLipschitzEstimate and RelativeInputStability) on
// analytic models, against closed forms, hand-computed constant-shift cases and plain-loop
// recomputations that draw the same seeded noise (Random(mix_seed(seed, item, sample)),
// value by value).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "salient/attribution/gradient.hpp"
#include "salient/core/xtensor_backend.hpp"
#include "salient/evaluation/robustness.hpp"
#include "error_matchers.hpp"
#include "xtensor_helpers.hpp"

using salient::XtensorBackend;
using Tensor = xt::xarray<double>;

namespace {
using salient::test::random_tensor;
using salient::test::require_error_mentioning;
using Target = salient::TargetOf<salient::LinearModel>;

// Class 0 leads by a margin of 10, far more than any perturbation here moves the logits, so
// predictions never change and PredictionChange::nan equals keep.
salient::LinearModel biased_linear_model() {
  Tensor bias = {10.0, 0.0, 0.0};
  return {random_tensor({3, 6}, 21), bias};
}

const auto gradient = [](auto& model, const Tensor& x, const auto& target) {
  return salient::saliency(model, x, target, {.abs = false});
};
const auto input_x_gradient = [](auto& model, const Tensor& x, const auto& target) {
  return salient::input_x_gradient(model, x, target);
};
const auto square = [](auto&, const Tensor& x, const auto&) { return Tensor(x * x); };

double l2(const std::vector<double>& v) {
  double s = 0;
  for (double a : v) s += a * a;
  return std::sqrt(s);
}

// The perturbation the metrics draw for item i in sample k (one draw per value, in order).
std::vector<double> normal_noise(uint64_t seed, size_t i, size_t k, size_t d, double mean, double stdev) {
  salient::detail::Random random(salient::detail::mix_seed(seed, i, k));
  std::vector<double> noise(d);
  for (auto& v : noise) v = random.normal(mean, stdev);
  return noise;
}
std::vector<double> uniform_noise(uint64_t seed, size_t i, size_t k, size_t d, double low, double high) {
  salient::detail::Random random(salient::detail::mix_seed(seed, i, k));
  std::vector<double> noise(d);
  for (auto& v : noise) v = low + (high - low) * random.uniform();
  return noise;
}

// Quantus' relative input stability objective for one item, in plain loops.
double ris_objective(const std::vector<double>& x, const std::vector<double>& xp, const std::vector<double>& e,
                     const std::vector<double>& ep, double eps = 1e-6) {
  std::vector<double> num(e.size()), den(x.size());
  for (size_t v = 0; v < e.size(); ++v) num[v] = (e[v] - ep[v]) / (e[v] + (e[v] == 0 ? eps : 0.0));
  for (size_t v = 0; v < x.size(); ++v) den[v] = (x[v] - xp[v]) / (x[v] + (x[v] == 0 ? eps : 0.0));
  double d = l2(den);
  if (d == 0) d = eps;
  return l2(num) / d;
}

int64_t top_class(salient::LinearModel& model, const Tensor& x, size_t item) {
  return XtensorBackend::argmax_rows(model.forward(x))[item];
}
}  // namespace

TEST_CASE("a constant explanation (the gradient of a linear model) has Lipschitz estimate and stability 0",
          "[robustness][xtensor]") {
  auto model = biased_linear_model();
  Tensor x = random_tensor({3, 6}, 22);
  for (const bool normalise : {true, false}) {
    auto lle =
        salient::local_lipschitz_estimate(model, x, salient::top1, gradient, {.samples = 5, .normalise = normalise});
    REQUIRE(lle.size() == 3);
    for (double v : lle) CHECK(v == 0.0);
  }
  auto ris = salient::relative_input_stability(model, x, salient::top1, gradient, {.samples = 5});
  REQUIRE(ris.size() == 3);
  for (double v : ris) CHECK(v == 0.0);
}

TEST_CASE("input x gradient of a linear model: Lipschitz estimate max_k ||w * d_k|| / ||d_k||, stability 1",
          "[robustness][xtensor]") {
  auto model = biased_linear_model();
  Tensor x = random_tensor({2, 6}, 23);
  const uint64_t seed = 5;
  const int64_t samples = 12;
  auto raw = salient::local_lipschitz_estimate(model, x, salient::top1, input_x_gradient,
                                               {.samples = samples, .normalise = false, .seed = seed});
  auto normalised = salient::local_lipschitz_estimate(model, x, salient::top1, input_x_gradient,
                                                      {.samples = samples, .seed = seed});
  REQUIRE(raw.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const int64_t cls = top_class(model, x, i);
    std::vector<double> w(6), xi(6);
    for (size_t v = 0; v < 6; ++v) w[v] = model.weight(cls, v), xi[v] = x(i, v);
    // e(x) - e(x') = w * (x - x') exactly: the estimate is max_k ||w * d_k|| / (||d_k|| + 1e-10).
    double expected_raw = 0, expected_normalised = 0;
    for (int64_t k = 0; k < samples; ++k) {
      const auto d = normal_noise(seed, i, static_cast<size_t>(k), 6, 0.0, 0.1);
      std::vector<double> wd(6), e(6), ep(6), diff(6);
      for (size_t v = 0; v < 6; ++v) wd[v] = w[v] * d[v], e[v] = w[v] * xi[v], ep[v] = w[v] * (xi[v] + d[v]);
      expected_raw = std::max(expected_raw, l2(wd) / (l2(d) + 1e-10));
      // Quantus' default normalise_by_max: each map divided by its largest |value|.
      double me = 0, mep = 0;
      for (size_t v = 0; v < 6; ++v) me = std::max(me, std::abs(e[v])), mep = std::max(mep, std::abs(ep[v]));
      for (size_t v = 0; v < 6; ++v) diff[v] = e[v] / me - ep[v] / mep;
      expected_normalised = std::max(expected_normalised, l2(diff) / (l2(d) + 1e-10));
    }
    CAPTURE(i);
    CHECK(raw[i] == Approx(expected_raw).epsilon(1e-12));
    CHECK(normalised[i] == Approx(expected_normalised).epsilon(1e-12));
    CHECK(normalised[i] != Approx(raw[i]).epsilon(1e-3));  // the normalisation is on by default
    // And the bound: min |w| <= ||w * d|| / ||d|| <= max |w|.
    double lo = 1e300, hi = 0;
    for (double a : w) lo = std::min(lo, std::abs(a)), hi = std::max(hi, std::abs(a));
    CHECK(raw[i] >= lo * (1 - 1e-9));
    CHECK(raw[i] <= hi);
  }
  // (w x - w x') / (w x) = (x - x') / x element by element: relative stability exactly 1.
  auto ris = salient::relative_input_stability(model, x, salient::top1, input_x_gradient, {.samples = samples});
  auto kept = salient::relative_input_stability(
      model, x, salient::top1, input_x_gradient,
      {.samples = samples, .prediction_change = salient::PredictionChange::keep});
  for (size_t i = 0; i < 2; ++i) {
    CHECK(ris[i] == Approx(1.0).epsilon(1e-12));
    CHECK(ris[i] == kept[i]);  // no prediction changes: nan and keep agree
  }
}

TEST_CASE("a scaled input c x has Lipschitz estimate c and relative stability 1", "[robustness][xtensor]") {
  auto model = biased_linear_model();
  Tensor x = random_tensor({3, 6}, 24);
  const double c = 2.5;
  const auto scaled = [c](auto&, const Tensor& in, const auto&) { return Tensor(c * in); };
  auto lle = salient::local_lipschitz_estimate(model, x, salient::top1, scaled, {.samples = 6, .normalise = false});
  auto ris = salient::relative_input_stability(model, x, 0, scaled, {.samples = 6});
  for (size_t i = 0; i < 3; ++i) {
    CHECK(lle[i] == Approx(c).epsilon(1e-8));  // c ||d|| / (||d|| + 1e-10)
    CHECK(ris[i] == Approx(1.0).epsilon(1e-12));
  }
}

TEST_CASE("constant-shift perturbations give hand-computed values", "[robustness][xtensor]") {
  // Identity logits: [1, 2] and [0, 2] are class 1, and stay so when every value moves by +0.1.
  salient::LinearModel identity{Tensor{{1.0, 0.0}, {0.0, 1.0}}, Tensor{0.0, 0.0}};
  Tensor x = {{1.0, 2.0}, {0.0, 2.0}};
  SECTION("relative input stability of e(x) = x^2 with d = 0.1 (lower_bound = upper_bound)") {
    auto ris = salient::relative_input_stability(identity, x, salient::top1, square,
                                                 {.samples = 3, .lower_bound = 0.1, .upper_bound = 0.1});
    // ||(x^2 - (x + 0.1)^2) / x^2|| / ||0.1 / x||, by numpy: 2.090095691589263.
    CHECK(ris[0] == Approx(2.090095691589263).epsilon(1e-12));
    // x_0 = 0 and e_0 = 0 are divided as eps_min = 1e-6 (Quantus):
    // ||[0.01 / 1e-6, 0.41 / 4]|| / ||[0.1 / 1e-6, 0.1 / 2]|| = 0.10000000000524063.
    CHECK(ris[1] == Approx(0.10000000000524063).epsilon(1e-12));
  }
  SECTION("local Lipschitz estimate of e(x) = x^2 with d = 0.1 (stdev 0, mean 0.1)") {
    Tensor one = {{1.0, 2.0}};
    auto raw = salient::local_lipschitz_estimate(identity, one, salient::top1, square,
                                                 {.samples = 2, .mean = 0.1, .stdev = 0.0, .normalise = false});
    // ||[0.21, 0.41]|| / (||[0.1, 0.1]|| + 1e-10) = 3.257299492677206 (numpy).
    CHECK(raw[0] == Approx(3.257299492677206).epsilon(1e-9));
    auto normalised = salient::local_lipschitz_estimate(identity, one, salient::top1, square,
                                                        {.samples = 2, .mean = 0.1, .stdev = 0.0});
    // ||[1, 4] / 4 - [1.21, 4.41] / 4.41|| / ||[0.1, 0.1]|| = 0.1723672991469474 (numpy).
    CHECK(normalised[0] == Approx(0.1723672991469474).epsilon(1e-9));
  }
  SECTION("an explanation that changes while the input does not: the zero-step guards") {
    // Ones on the first call, twos after: e(x) - e(x') = [-1, -1] with x' = x.
    int calls = 0;
    const auto drifting = [&calls](auto&, const Tensor& in, const auto&) {
      Tensor e(in.shape());
      e.fill(calls++ == 0 ? 1.0 : 2.0);
      return e;
    };
    Tensor one = {{1.0, 2.0}};
    auto lle = salient::local_lipschitz_estimate(identity, one, salient::top1, drifting,
                                                 {.samples = 2, .stdev = 0.0, .normalise = false});
    CHECK(lle[0] == Approx(std::sqrt(2.0) / 1e-10).epsilon(1e-12));  // Quantus' + 1e-10
    calls = 0;
    // normalise_by_max maps ones and twos to the same map: no change at all.
    auto normalised =
        salient::local_lipschitz_estimate(identity, one, salient::top1, drifting, {.samples = 2, .stdev = 0.0});
    CHECK(normalised[0] == 0.0);
    calls = 0;
    auto ris = salient::relative_input_stability(identity, one, salient::top1, drifting,
                                                 {.samples = 2, .lower_bound = 0.0, .upper_bound = 0.0});
    CHECK(ris[0] == Approx(std::sqrt(2.0) / 1e-6).epsilon(1e-12));  // a zero denominator norm becomes eps_min
  }
}

TEST_CASE("perturbations that change the prediction: nan, skip and keep", "[robustness][xtensor]") {
  // Logits [-x_0, 1]: class 0 while x_0 <= -1. The noise U[0.02, 0.2] raises x_0, so item 0
  // (x_0 = -1.1) flips when its draw exceeds 0.1, item 1 (x_0 = -3) never, item 2 (-1.01) always.
  auto model = salient::forward_model<XtensorBackend>([](const Tensor& x) {
    Tensor out = xt::zeros<double>({x.shape()[0], size_t{2}});
    for (size_t i = 0; i < x.shape()[0]; ++i) out(i, 0) = -x(i, 0), out(i, 1) = 1.0;
    return out;
  });
  Tensor x = {{-1.1, 0.5}, {-3.0, 0.5}, {-1.01, 0.5}};
  const uint64_t seed = 9;
  const int64_t samples = 20;
  std::vector<double> kept_max(3, 0.0), unchanged_max(3, -1.0);
  std::vector<int> flips(3, 0);
  for (size_t i = 0; i < 3; ++i)
    for (int64_t k = 0; k < samples; ++k) {
      const auto d = uniform_noise(seed, i, static_cast<size_t>(k), 2, 0.02, 0.2);
      std::vector<double> xi = {x(i, 0), x(i, 1)}, xp = {x(i, 0) + d[0], x(i, 1) + d[1]};
      std::vector<double> e = {xi[0] * xi[0], xi[1] * xi[1]}, ep = {xp[0] * xp[0], xp[1] * xp[1]};
      const double r = ris_objective(xi, xp, e, ep);
      kept_max[i] = std::max(kept_max[i], r);
      if (-xp[0] < 1.0) ++flips[i];
      else unchanged_max[i] = std::max(unchanged_max[i], r);
    }
  REQUIRE(flips[0] > 0);
  REQUIRE(flips[0] < samples);
  REQUIRE(flips[1] == 0);
  REQUIRE(flips[2] == samples);

  auto quantus = salient::relative_input_stability(model, x, salient::top1, square, {.samples = samples, .seed = seed});
  CHECK(std::isnan(quantus[0]));  // one changed prediction makes the item NaN (Quantus' np.max)
  CHECK(quantus[1] == Approx(kept_max[1]).epsilon(1e-12));
  CHECK(std::isnan(quantus[2]));

  auto skip = salient::relative_input_stability(
      model, x, salient::top1, square,
      {.samples = samples, .prediction_change = salient::PredictionChange::skip, .seed = seed});
  CHECK(skip[0] == Approx(unchanged_max[0]).epsilon(1e-12));
  CHECK(skip[0] <= kept_max[0]);
  CHECK(skip[1] == Approx(kept_max[1]).epsilon(1e-12));
  CHECK(std::isnan(skip[2]));  // nothing left to measure

  auto keep = salient::relative_input_stability(
      model, x, salient::top1, square,
      {.samples = samples, .prediction_change = salient::PredictionChange::keep, .seed = seed});
  for (size_t i = 0; i < 3; ++i) CHECK(keep[i] == Approx(kept_max[i]).epsilon(1e-12));

  // The Lipschitz estimate keeps every sample by default (Quantus: False); with nan it too
  // marks items whose prediction changed.
  auto lle = salient::local_lipschitz_estimate(model, x, salient::top1, square, {.samples = samples, .seed = seed});
  for (double v : lle) CHECK(std::isfinite(v));
  auto lle_nan = salient::local_lipschitz_estimate(
      model, x, salient::top1, square,
      {.samples = samples, .stdev = 0.0, .prediction_change = salient::PredictionChange::nan, .seed = seed});
  for (double v : lle_nan) CHECK(v == 0.0);  // x' = x: nothing changes
}

TEST_CASE("robustness results depend only on the item, its index and the seed", "[robustness][xtensor]") {
  auto model = biased_linear_model();
  Tensor x = random_tensor({3, 6}, 25);
  Tensor other = x;
  xt::view(other, 2, xt::all()) = xt::view(random_tensor({1, 6}, 26), 0, xt::all());
  Tensor prefix = xt::view(x, xt::range(0, 2), xt::all());
  const salient::LipschitzOptions lipschitz{.samples = 4, .seed = 3};
  const salient::StabilityOptions stability{.samples = 4, .seed = 3};
  for (const bool ris : {false, true}) {
    CAPTURE(ris);
    const auto run = [&](const Tensor& in, uint64_t seed) {
      if (ris) {
        auto o = stability;
        o.seed = seed;
        return salient::relative_input_stability(model, in, salient::top1, square, o);
      }
      auto o = lipschitz;
      o.seed = seed;
      return salient::local_lipschitz_estimate(model, in, salient::top1, square, o);
    };
    const auto full = run(x, 3), changed = run(other, 3), first_two = run(prefix, 3), reseeded = run(x, 4);
    for (size_t i = 0; i < 2; ++i) {
      CHECK(changed[i] == full[i]);    // another item's input does not matter
      CHECK(first_two[i] == full[i]);  // nor the batch size
    }
    CHECK(changed[2] != full[2]);
    CHECK(reseeded[0] != full[0]);
    CHECK(run(x, 3) == full);  // seeded
  }
}

TEST_CASE("robustness progress reports each sample", "[robustness][xtensor]") {
  auto model = biased_linear_model();
  Tensor x = random_tensor({2, 6}, 27);
  std::vector<std::pair<int64_t, int64_t>> calls;
  salient::LipschitzOptions lipschitz{.samples = 3};
  lipschitz.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  salient::local_lipschitz_estimate(model, x, salient::top1, gradient, lipschitz);
  CHECK(calls == std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {2, 3}, {3, 3}});
  calls.clear();
  salient::StabilityOptions stability{.samples = 2};
  stability.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  salient::relative_input_stability(model, x, salient::top1, gradient, stability);
  CHECK(calls == std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {2, 2}});
}

TEST_CASE("robustness options by name carry Quantus' defaults", "[robustness][options]") {
  const auto lipschitz = salient::options_json(salient::LipschitzOptions{});
  CHECK(lipschitz["samples"] == 200);
  CHECK(lipschitz["mean"] == 0.0);
  CHECK(lipschitz["stdev"] == 0.1);
  CHECK(lipschitz["normalise"] == true);
  CHECK(lipschitz["abs"] == false);
  CHECK(lipschitz["prediction_change"] == "keep");
  const auto stability = salient::options_json(salient::StabilityOptions{});
  CHECK(stability["samples"] == 200);
  CHECK(stability["lower_bound"] == 0.02);
  CHECK(stability["upper_bound"] == 0.2);
  CHECK(stability["eps_min"] == 1e-6);
  CHECK(stability["normalise"] == false);
  CHECK(stability["prediction_change"] == "nan");
  CHECK(salient::option_names(salient::StabilityOptions{}) ==
        std::vector<std::string>{"samples", "lower_bound", "upper_bound", "eps_min", "normalise", "abs",
                                 "prediction_change", "seed"});

  salient::StabilityOptions o;
  CHECK(salient::set_option(o, "samples", "7"));
  CHECK(salient::set_option(o, "prediction_change", "skip"));
  CHECK(o.samples == 7);
  CHECK(o.prediction_change == salient::PredictionChange::skip);
  CHECK_FALSE(salient::set_option(o, "radius", "1"));
  require_error_mentioning([&] { salient::set_option(o, "prediction_change", "drop"); }, "expected keep, nan or skip");
  require_error_mentioning([&] { salient::set_option(o, "samples", "-1"); }, "at least 0");
}

TEST_CASE("robustness metrics reject bad input", "[robustness][xtensor][errors]") {
  auto model = biased_linear_model();
  Tensor x = random_tensor({2, 6}, 28);
  const auto lle = [&](salient::LipschitzOptions o) {
    salient::local_lipschitz_estimate(model, x, salient::top1, gradient, o);
  };
  const auto ris = [&](salient::StabilityOptions o) {
    salient::relative_input_stability(model, x, salient::top1, gradient, o);
  };
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  require_error_mentioning([&] { lle({.samples = 0}); }, "samples must be in [1, 10000000], got 0");
  require_error_mentioning([&] { ris({.samples = salient::max_option_count + 1}); },
                           "samples must be in [1, 10000000]");
  require_error_mentioning([&] { lle({.stdev = -0.1}); }, "stdev must be finite and >= 0, got -0.1");
  require_error_mentioning([&] { lle({.stdev = nan}); }, "stdev must be finite");
  require_error_mentioning([&] { lle({.mean = inf}); }, "mean must be finite");
  require_error_mentioning([&] { ris({.lower_bound = 0.3}); }, "lower_bound <= upper_bound, got [0.3, 0.2]");
  require_error_mentioning([&] { ris({.upper_bound = inf}); }, "noise bounds must be finite");
  require_error_mentioning([&] { ris({.eps_min = 0}); }, "eps_min must be finite and > 0, got 0");

  Tensor bad = x;
  bad(1, 2) = nan;
  require_error_mentioning([&] { salient::local_lipschitz_estimate(model, bad, salient::top1, gradient); },
                           "NaN or Inf");
  Tensor empty = xt::zeros<double>({size_t{0}, size_t{6}});
  require_error_mentioning([&] { salient::relative_input_stability(model, empty, salient::top1, gradient); },
                           "at least one item");
  require_error_mentioning(
      [&] {
        const Target first_logit([](const Tensor& out) { return Tensor(xt::view(out, xt::all(), 0)); });
        salient::relative_input_stability(model, x, first_logit, gradient, {.samples = 1});
      },
      "needs a class target");
  int calls = 0;
  const auto shrinking = [&calls](auto&, const Tensor& in, const auto&) {
    return Tensor(xt::zeros<double>({in.shape()[0], size_t{calls++ == 0 ? 6u : 3u}}));
  };
  require_error_mentioning(
      [&] { salient::local_lipschitz_estimate(model, x, salient::top1, shrinking, {.samples = 1}); },
      "values for perturbed inputs");
  const auto broken = [nan](auto&, const Tensor& in, const auto&) {
    Tensor e(in.shape());
    e.fill(nan);
    return e;
  };
  require_error_mentioning([&] { salient::relative_input_stability(model, x, salient::top1, broken, {.samples = 1}); },
                           "non-finite value");
  require_error_mentioning([&] { salient::relative_input_stability(model, x, 7, gradient, {.samples = 1}); }, "7");
}
