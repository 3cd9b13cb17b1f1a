// The perturbation family on the xtensor backend (no LibTorch): closed-form answers on
// analytic models. Occlusion and feature ablation of a linear model are window and segment
// sums of w * (x - b); KernelSHAP with every coalition is the exact Shapley value (checked by
// enumeration, also for a model with interactions); LIME with a flat kernel recovers a linear
// model's segment weights; RISE with every cell kept is F(x) everywhere; deletion and
// insertion curves of a linear model step through its sorted contributions; PAMI of an additive
// model is each region's true contribution (plus the empty image's score); any callable
// batch -> scores is a model (forward_model).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "salient/analysis/certificate.hpp"
#include "salient/analysis/topk.hpp"
#include "salient/attribution/pami.hpp"
#include "salient/attribution/perturbation.hpp"
#include "salient/attribution/sobol.hpp"
#include "salient/core/xtensor_backend.hpp"
#include "xtensor_helpers.hpp"
#include "salient/evaluation/curves.hpp"
#include "salient/evaluation/faithfulness.hpp"

using salient::XtensorBackend;
using Tensor = xt::xarray<double>;

namespace {
constexpr size_t C = 2, H = 6, W = 6, D = C * H * W;

using salient::test::random_tensor;

// Four 3x3 quadrants of a 6x6 image, plus the centre 2x2 as a fifth segment.
Tensor five_segments() {
  Tensor labels = xt::zeros<double>({H, W});
  for (size_t y = 0; y < H; ++y)
    for (size_t x = 0; x < W; ++x) labels(y, x) = (y >= 2 && y < 4 && x >= 2 && x < 4) ? 4 : (y / 3) * 2 + x / 3;
  return labels;
}

// sum over channels of w_k * (x - b) at each pixel: a linear model's per-pixel contribution.
std::vector<double> pixel_contributions(const salient::LinearModel& model, const Tensor& x, const Tensor& b, size_t k) {
  std::vector<double> out(H * W, 0.0);
  for (size_t c = 0; c < C; ++c)
    for (size_t p = 0; p < H * W; ++p) out[p] += model.weight(k, c * H * W + p) * (x.data()[c * H * W + p] - b.data()[c * H * W + p]);
  return out;
}

// The class-k score of x with the segments in `kept` (a bit set) kept and the rest from b.
template <class M>
double coalition_value(M& model, const Tensor& x, const Tensor& b, const Tensor& labels, unsigned kept, size_t k) {
  Tensor blended = b;
  for (size_t c = 0; c < C; ++c)
    for (size_t p = 0; p < H * W; ++p)
      if ((kept >> static_cast<unsigned>(labels.data()[p])) & 1u) blended.data()[c * H * W + p] = x.data()[c * H * W + p];
  return model.forward(blended)(0, k);
}

// Shapley values by enumeration: phi_j = sum_S |S|! (m - |S| - 1)! / m! (v(S + j) - v(S)).
template <class M>
std::vector<double> exact_shapley(M& model, const Tensor& x, const Tensor& b, const Tensor& labels, int m, size_t k) {
  std::vector<double> phi(m, 0.0);
  for (int j = 0; j < m; ++j)
    for (unsigned s = 0; s < (1u << m); ++s) {
      if ((s >> j) & 1u) continue;
      const int size = __builtin_popcount(s);
      const double weight = std::tgamma(size + 1.0) * std::tgamma(m - size + 0.0) / std::tgamma(m + 1.0);
      phi[j] += weight * (coalition_value(model, x, b, labels, s | (1u << j), k) - coalition_value(model, x, b, labels, s, k));
    }
  return phi;
}

// The value of each segment in a map [1,1,H,W] (its first pixel).
std::vector<double> segment_values(const Tensor& map, const Tensor& labels, int m) {
  std::vector<double> values(m, NAN);
  for (size_t p = H * W; p-- > 0;) values[static_cast<size_t>(labels.data()[p])] = map.data()[p];
  return values;
}
}  // namespace

TEST_CASE("xtensor: occlusion of a linear model is the mean window sum of w * (x - b)", "[xtensor][perturbation]") {
  salient::LinearModel model{random_tensor({3, D}, 1), random_tensor({3}, 2)};
  const Tensor x = random_tensor({1, C, H, W}, 3), b = random_tensor({1, C, H, W}, 4);
  salient::OcclusionOptions<salient::LinearModel> options{.window = {3, 2}, .strides = {2, 2}};
  options.evaluation.masker = salient::BasicFillMasker<XtensorBackend>::image(b);
  const Tensor map = salient::occlusion(model, x, 1, options);
  REQUIRE(XtensorBackend::shape(map) == std::vector<int64_t>{1, 1, H, W});
  const auto contribution = pixel_contributions(model, x, b, 1);
  // Windows at rows 0, 2, 4 (height 3, the last clipped) and columns 0, 2, 4 (width 2).
  std::vector<double> total(H * W, 0.0), count(H * W, 0.0);
  for (size_t top = 0; top < H; top += 2)
    for (size_t left = 0; left < W; left += 2) {
      double sum = 0;
      for (size_t y = top; y < std::min(top + 3, H); ++y)
        for (size_t x0 = left; x0 < left + 2; ++x0) sum += contribution[y * W + x0];
      for (size_t y = top; y < std::min(top + 3, H); ++y)
        for (size_t x0 = left; x0 < left + 2; ++x0) total[y * W + x0] += sum, count[y * W + x0] += 1;
    }
  for (size_t p = 0; p < H * W; ++p) CHECK(map.data()[p] == Approx(total[p] / count[p]).margin(1e-12));
}

TEST_CASE("xtensor: feature ablation of a linear model is the segment sums of w * (x - b)", "[xtensor][perturbation]") {
  salient::LinearModel model{random_tensor({3, D}, 5), random_tensor({3}, 6)};
  const Tensor x = random_tensor({2, C, H, W}, 7);
  const Tensor labels = five_segments();
  const Tensor map = salient::feature_ablation(model, x, 2, {.segments = labels});  // zero fill
  REQUIRE(XtensorBackend::shape(map) == std::vector<int64_t>{2, 1, H, W});
  for (size_t i = 0; i < 2; ++i) {
    const Tensor item = xt::view(x, xt::range(i, i + 1));
    const auto contribution = pixel_contributions(model, item, xt::zeros<double>(item.shape()), 2);
    std::vector<double> sums(5, 0.0);
    for (size_t p = 0; p < H * W; ++p) sums[static_cast<size_t>(labels.data()[p])] += contribution[p];
    for (size_t p = 0; p < H * W; ++p)
      CHECK(map.data()[i * H * W + p] == Approx(sums[static_cast<size_t>(labels.data()[p])]).margin(1e-12));
  }
  CHECK_THROWS_WITH(salient::feature_ablation(model, x, 2, {}), Catch::Contains("needs a segmentation"));
  Tensor fractional = labels;
  fractional(0, 0) = 0.5;
  CHECK_THROWS_WITH(salient::feature_ablation(model, x, 2, {.segments = fractional}), Catch::Contains("integer label map"));
}

TEST_CASE("xtensor: KernelSHAP with every coalition is the exact Shapley value", "[xtensor][perturbation]") {
  const Tensor x = random_tensor({1, C, H, W}, 8), b = random_tensor({1, C, H, W}, 9, 0.5);
  const Tensor labels = five_segments();
  auto check = [&](auto& model) {
    salient::KernelShapOptions<std::remove_reference_t<decltype(model)>> options{.segments = labels, .samples = 30};
    options.evaluation.masker = salient::BasicFillMasker<XtensorBackend>::image(b);
    const Tensor map = salient::kernel_shap(model, x, 0, options);
    const auto phi = segment_values(map, labels, 5);
    const auto exact = exact_shapley(model, x, b, labels, 5, 0);
    double total = 0;
    for (int j = 0; j < 5; ++j) {
      CHECK(phi[j] == Approx(exact[j]).margin(1e-9));
      total += phi[j];
    }
    CHECK(total == Approx(coalition_value(model, x, b, labels, 31, 0) - coalition_value(model, x, b, labels, 0, 0)).margin(1e-9));
  };
  salient::LinearModel linear{random_tensor({2, D}, 10), random_tensor({2}, 11)};
  check(linear);
  // Interactions: a quadratic model's Shapley values split each pairwise term between segments.
  salient::QuadraticModel quadratic{random_tensor({2, D, D}, 12, 0.1), random_tensor({2, D}, 13)};
  check(quadratic);
}

TEST_CASE("xtensor: LIME with a flat kernel recovers a linear model's segment weights", "[xtensor][perturbation]") {
  salient::LinearModel model{random_tensor({3, D}, 14), random_tensor({3}, 15)};
  const Tensor x = random_tensor({1, C, H, W}, 16);
  const Tensor labels = five_segments();
  auto explanation = salient::lime_explanation(model, x, 1, {.segments = labels, .samples = 64, .kernel_width = 1e6, .ridge = 1e-10, .seed = 3});
  const auto contribution = pixel_contributions(model, x, xt::zeros<double>(x.shape()), 1);
  std::vector<double> sums(5, 0.0);
  for (size_t p = 0; p < H * W; ++p) sums[static_cast<size_t>(labels.data()[p])] += contribution[p];
  for (int j = 0; j < 5; ++j) CHECK(explanation.fit.coefficients[j] == Approx(sums[j]).margin(1e-7));
  CHECK(explanation.fit.r2 == Approx(1.0).margin(1e-9));
  // The same seed gives the same samples; another seed, others.
  const Tensor a = salient::lime(model, x, 1, {.segments = labels, .samples = 20, .seed = 4});
  CHECK(a == salient::lime(model, x, 1, {.segments = labels, .samples = 20, .seed = 4}));
  CHECK(a != salient::lime(model, x, 1, {.segments = labels, .samples = 20, .seed = 5}));
}

TEST_CASE("xtensor: RISE with every cell kept is the score everywhere; any callable is a model",
          "[xtensor][perturbation]") {
  salient::LinearModel linear{random_tensor({3, D}, 17), random_tensor({3}, 18)};
  // A LibTorch-free user's model: any function from a batch to scores.
  auto model = salient::forward_model<XtensorBackend>([&](const Tensor& batch) { return linear.forward(batch); });
  const Tensor x = random_tensor({1, C, H, W}, 19);
  const double score = linear.forward(x)(0, 0);
  salient::RiseOptions<decltype(model)> options{.masks = 10, .cells = 3, .keep_probability = 1.0};
  options.evaluation.probabilities = false;
  const Tensor map = salient::rise(model, x, 0, options);
  for (double v : map) CHECK(v == Approx(score).margin(1e-12));
  // Probabilities: the softmax of the target.
  options.evaluation.probabilities = true;
  const Tensor probabilities = XtensorBackend::softmax_rows(linear.forward(x));
  for (double v : salient::rise(model, x, 0, options)) CHECK(v == Approx(probabilities(0, 0)).margin(1e-12));
  // Half the cells: masks differ by seed and do not depend on the batch size.
  options.keep_probability = 0.5;
  const Tensor a = salient::rise(model, x, 0, options);
  auto batched = options;
  batched.evaluation.batch_size = 3;
  CHECK(xt::allclose(a, salient::rise(model, x, 0, batched), 0.0, 1e-12));
  auto reseeded = options;
  reseeded.seed = 1;
  CHECK(!xt::allclose(a, salient::rise(model, x, 0, reseeded)));
  CHECK_THROWS_WITH(salient::occlusion(model, x, 0, {.window = {7, 2}}), Catch::Contains("does not fit the image"));
  CHECK_THROWS_WITH(salient::occlusion(model, random_tensor({1, D}, 20), 0), Catch::Contains("need images [N,C,H,W]"));
}

TEST_CASE("xtensor: deletion and insertion curves of a linear model follow its sorted contributions",
          "[xtensor][perturbation]") {
  salient::LinearModel model{random_tensor({2, D}, 21), random_tensor({2}, 22)};
  const Tensor x = random_tensor({1, C, H, W}, 23);
  const auto contribution = pixel_contributions(model, x, xt::zeros<double>(x.shape()), 0);
  // The exact contributions as the attribution (one channel): the best possible ranking.
  Tensor attribution = xt::zeros<double>({size_t{1}, size_t{1}, H, W});
  std::copy(contribution.begin(), contribution.end(), attribution.begin());
  std::vector<double> sorted = contribution;
  std::sort(sorted.rbegin(), sorted.rend());
  const double full = model.forward(x)(0, 0), bias = model.bias(0);
  salient::CurveOptions<salient::LinearModel> options{.step = 5, .evaluation = {.probabilities = false}};
  const auto deletion = salient::deletion_curves(model, x, 0, attribution, options).at(0);
  const auto insertion = salient::insertion_curves(model, x, 0, attribution, options).at(0);
  REQUIRE(deletion.scores.size() == (H * W + 4) / 5 + 1);
  double removed = 0;
  for (size_t p = 0; p < deletion.scores.size(); ++p) {
    const size_t changed = std::min(H * W, p * 5);
    CHECK(deletion.fractions[p] == Approx(static_cast<double>(changed) / (H * W)));
    CHECK(deletion.scores[p] == Approx(full - removed).margin(1e-9));
    CHECK(insertion.scores[p] == Approx(bias + removed).margin(1e-9));
    for (size_t q = changed; q < std::min(H * W, changed + 5); ++q) removed += sorted[q];
  }
  // Segments as features: ranked by mean attribution, removed one segment per step.
  const Tensor labels = five_segments();
  const auto by_segment = salient::deletion_curves(model, x, 0, attribution, {.step = 1, .segments = labels, .evaluation = {.probabilities = false}}).at(0);
  REQUIRE(by_segment.scores.size() == 6);
  CHECK(by_segment.scores.back() == Approx(bias).margin(1e-9));
  CHECK_THROWS_WITH(salient::deletion_curves(model, x, 0, Tensor(xt::zeros<double>({size_t{1}, size_t{1}, size_t{4}, size_t{4}}))),
                    Catch::Contains("do not fit inputs"));
}

TEST_CASE("xtensor: PAMI of an additive model gives each pixel its regions' true contributions", "[xtensor][perturbation]") {
  constexpr size_t D3 = 3 * H * W;
  salient::LinearModel model{random_tensor({2, D3}, 24), random_tensor({2}, 25)};
  Tensor x = xt::abs(random_tensor({1, 3, H, W}, 26)) * 0.3;  // a photo in [0, 1] (no normalisation)
  std::vector<double> contribution(H * W, 0.0);
  for (size_t c = 0; c < 3; ++c)
    for (size_t p = 0; p < H * W; ++p) contribution[p] += model.weight(1, c * H * W + p) * x.data()[c * H * W + p];
  // grid:3 cuts the 6x6 image into 4 blocks, grid:2 into 9: the map is the mean, over the two
  // partitions, of F(only the pixel's block kept) = bias + the block's contribution.
  salient::PamiOptions<salient::LinearModel> options{.segmentations = {"grid:3", "grid:2"},
                                                     .shifts = {{0, 0}},
                                                     .normalization = salient::Normalization::none(),
                                                     .evaluation = {.masker = salient::BasicFillMasker<XtensorBackend>::zero(),
                                                                    .probabilities = false}};
  const Tensor map = salient::pami(model, x, 1, options);
  REQUIRE(XtensorBackend::shape(map) == std::vector<int64_t>{1, 1, H, W});
  auto block_sum = [&](size_t cell, size_t y, size_t x0) {
    double sum = 0;
    for (size_t yy = y / cell * cell; yy < y / cell * cell + cell; ++yy)
      for (size_t xx = x0 / cell * cell; xx < x0 / cell * cell + cell; ++xx) sum += contribution[yy * W + xx];
    return sum;
  };
  const double bias = model.bias(1);
  for (size_t y = 0; y < H; ++y)
    for (size_t x0 = 0; x0 < W; ++x0)
      CHECK(map(0, 0, y, x0) == Approx(bias + (block_sum(3, y, x0) + block_sum(2, y, x0)) / 2).margin(1e-9));
  // Two-stage: the refinement's regions are bands of the first map; still a mean of region scores.
  options.two_stage = true;
  options.levels = 3;
  const Tensor refined = salient::pami(model, x, 1, options);
  CHECK(std::isfinite(xt::sum(refined)()));
  CHECK(!xt::allclose(refined, map));
  CHECK_THROWS_WITH(salient::pami(model, random_tensor({1, 2, H, W}, 27), 1, options), Catch::Contains("2 channels"));
}

TEST_CASE("top-k certificates verify on any model: two halves of an image, two entities", "[xtensor][certificate]") {
  // Class 0 sums the left half of a 4x4 image, class 1 the right half, class 2 is a constant 1.
  salient::LinearModel model{xt::zeros<double>({3, 16}), Tensor{0.0, 0.0, 1.0}};
  for (std::size_t p = 0; p < 16; ++p) model.weight(p % 4 < 2 ? 0 : 1, p) = 1;
  const Tensor image = xt::ones<double>({1, 1, 4, 4});
  Tensor left = xt::zeros<double>({4, 4}), right = xt::zeros<double>({4, 4});
  xt::view(left, xt::all(), xt::range(0, 2)) = 1.0;
  xt::view(right, xt::all(), xt::range(2, 4)) = 1.0;
  salient::BasicTopkCertificate<Tensor> c{salient::EntityRelation::two_entities, 0, 1, 2, "zero", 4, 4,
                                          {{"A", left}, {"B", right}}, salient::required_claims(salient::EntityRelation::two_entities, 0, 1), {}};
  const salient::BasicAnyMasker<salient::LinearModel> zero = salient::BasicFillMasker<XtensorBackend>::zero();
  auto v = salient::verify(model, image, c, zero);
  CHECK(v.holds());
  CHECK(v.image_top_k == std::vector<int64_t>{0, 1});          // 8, 8 (ties: the lower class first), then 1
  CHECK(v.checks[0].top_k == std::vector<int64_t>{0, 2});      // left kept: 8, 0, 1
  CHECK(v.checks[1].top_k == std::vector<int64_t>{1, 2});
  // The masks swapped: the claims no longer hold.
  auto swapped = c;
  std::swap(swapped.masks.at("A"), swapped.masks.at("B"));
  CHECK_FALSE(salient::verify(model, image, swapped, zero).holds());
  // Another masker than the one the certificate names, overlapping masks, a claim that does
  // not prove the relation: refused before the model runs.
  CHECK_THROWS_WITH(salient::verify(model, image, c, salient::BasicFillMasker<XtensorBackend>::image(image, "white")),
                    Catch::Contains("applied by the masker 'zero', but verify was given 'white'"));
  auto overlapping = c;
  overlapping.masks.at("B") = xt::ones<double>({4, 4});
  CHECK_THROWS_WITH(salient::verify(model, image, overlapping, zero), Catch::Contains("masks 'A' and 'B' overlap"));
  auto forged = c;
  forged.claims[1].not_in_top_k.clear();
  CHECK_THROWS_WITH(salient::verify(model, image, forged, zero), Catch::Contains("is not one that proves two_entities"));
}

TEST_CASE("top-k disambiguation on any model: two entities, one entity, certificates verified", "[xtensor][certificate]") {
  // 4x4 images of ones; entity 1 is the left half, entity 2 the right half.
  const Tensor image = xt::ones<double>({1, 1, 4, 4});
  Tensor entities = xt::zeros<double>({4, 4});
  xt::view(entities, xt::all(), xt::range(0, 2)) = 1.0;
  xt::view(entities, xt::all(), xt::range(2, 4)) = 2.0;
  const salient::BasicAnyMasker<salient::LinearModel> zero = salient::BasicFillMasker<XtensorBackend>::zero();
  // The attribution of each top-k class: its weights times the input (input x gradient).
  auto maps = [&](const salient::LinearModel& model, const std::vector<int64_t>& classes) {
    Tensor out = xt::zeros<double>({classes.size(), std::size_t{4}, std::size_t{4}});
    for (std::size_t i = 0; i < classes.size(); ++i)
      for (std::size_t p = 0; p < 16; ++p) out(i, p / 4, p % 4) = model.weight(static_cast<std::size_t>(classes[i]), p);
    return out;
  };
  SECTION("class 0 sums the left half, class 1 the right: two entities") {
    salient::LinearModel model{xt::zeros<double>({3, 16}), Tensor{0.0, 0.0, 1.0}};
    for (std::size_t p = 0; p < 16; ++p) model.weight(p % 4 < 2 ? 0 : 1, p) = 1;
    auto result = salient::disambiguate_topk(model, image, entities, maps(model, {0, 1}), {.k = 2}, zero);
    CHECK(result.classes == std::vector<int64_t>{0, 1});
    CHECK(result.probabilities[0] == Approx(std::exp(8.0) / (2 * std::exp(8.0) + std::exp(1.0))));
    CHECK(result.entity_count == 2);
    CHECK(xt::allclose(result.relevance, Tensor{{1.0, 0.0}, {0.0, 1.0}}));
    CHECK(result.top_k_kept_alone == std::vector<std::vector<int64_t>>{{0, 2}, {1, 2}});
    REQUIRE(result.pairs.size() == 1);
    const auto& verdict = result.pairs[0];
    CHECK(verdict.relation == salient::EntityRelation::two_entities);
    REQUIRE(verdict.certificate);
    CHECK(verdict.certificate->masker == "zero");
    CHECK(xt::equal(verdict.certificate->masks.at("A"), xt::equal(entities, 1.0))());
    CHECK(salient::verify(model, image, *verdict.certificate, zero).holds());  // anyone can check it again
    CHECK_FALSE(verdict.split_entity);
  }
  SECTION("class 1 is 0.9 x class 0, both on the left half: one entity") {
    salient::LinearModel model{xt::zeros<double>({4, 16}), Tensor{0.0, 0.0, 1.0, 0.5}};
    for (std::size_t p = 0; p < 16; ++p)
      if (p % 4 < 2) model.weight(0, p) = 1, model.weight(1, p) = 0.9;
    auto result = salient::disambiguate_topk(model, image, entities, maps(model, {0, 1}), {.k = 2}, zero);
    CHECK(result.classes == std::vector<int64_t>{0, 1});
    REQUIRE(result.pairs.size() == 1);
    const auto& verdict = result.pairs[0];
    CHECK(verdict.relation == salient::EntityRelation::one_entity);
    REQUIRE(verdict.certificate);
    CHECK(xt::equal(verdict.certificate->masks.at("E"), xt::equal(entities, 1.0))());
    CHECK(result.top_k_removed[0] == std::vector<int64_t>{2, 3});  // the left half removed: only the constants
    // E may cover at most max_entity_area of the image: at 40% the half is too large.
    auto strict = salient::disambiguate_topk(model, image, entities, maps(model, {0, 1}), {.k = 2, .max_entity_area = 0.4}, zero);
    CHECK(strict.pairs[0].relation == salient::EntityRelation::undecided);
    CHECK(strict.pairs[0].reason.find("no region keeps one class") != std::string::npos);
  }
  SECTION("bad input") {
    salient::LinearModel model{xt::ones<double>({3, 16}), Tensor{0.0, 0.0, 1.0}};
    CHECK_THROWS_WITH(salient::disambiguate_topk(model, image, xt::zeros<double>({3, 3}), maps(model, {0, 1}), {.k = 2}, zero),
                      Catch::Contains("entities must be a label map [4,4]"));
    CHECK_THROWS_WITH(salient::disambiguate_topk(model, image, entities, maps(model, {0}), {.k = 2}, zero),
                      Catch::Contains("one attribution map per top-k class (2), got 1"));
    CHECK_THROWS_WITH(salient::disambiguate_topk(model, image, entities - 3.0, maps(model, {0, 1}), {.k = 2}, zero),
                      Catch::Contains("entity labels must be >= 0"));
    CHECK_THROWS_WITH(salient::disambiguate_topk(model, image, entities, maps(model, {0, 1, 2, 0}), {.k = 4}, zero),
                      Catch::Contains("k = 4 is out of range"));
  }
}

TEST_CASE("Sobol attribution: the points, Jansen's estimator on an additive model, the upsampled map", "[xtensor][sobol]") {
  // Every column of 32 Sobol' points holds one point in each interval [j/32, (j+1)/32).
  const auto points = salient::detail::sobol_points(128, 32);
  for (int64_t d = 0; d < 128; ++d) {
    std::vector<int> hits(32, 0);
    for (int64_t i = 0; i < 32; ++i) ++hits[static_cast<std::size_t>(points[i * 128 + d] * 32)];
    CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
  }
  CHECK(points[0] == 0.0);
  // Two columns are not copies of each other (distinct direction numbers).
  int same = 0;
  for (int64_t i = 0; i < 32; ++i) same += points[i * 128 + 5] == points[i * 128 + 6];
  CHECK(same < 32);

  // F(x) = sum_r c_r * (the sum of cell r's pixels), x = 1: under the zero-fill masker cell r
  // contributes 4 c_r m_r, so its total index is c_r^2 / sum_k c_k^2 (additive: no interactions).
  const size_t cells = 3, side = 6;
  Tensor weight = xt::zeros<double>(std::vector<std::size_t>{2, side * side});
  std::vector<double> c(cells * cells);
  double total = 0;
  for (size_t r = 0; r < cells * cells; ++r) c[r] = static_cast<double>(r % 2 ? r + 1 : 9 - r), total += c[r] * c[r];
  for (size_t y = 0; y < side; ++y)
    for (size_t x = 0; x < side; ++x) weight(1, y * side + x) = c[(y / 2) * cells + x / 2];
  salient::LinearModel model{weight, xt::zeros<double>({2})};
  Tensor x = xt::ones<double>(std::vector<std::size_t>{1, 1, side, side});
  salient::SobolOptions<salient::LinearModel> options{.grid = 3, .designs = 1024,
                                                      .evaluation = {.masker = salient::BasicFillMasker<XtensorBackend>::zero()}};
  const auto indices = salient::sobol_total_indices(model, x, 1, options).at(0);
  REQUIRE(indices.size() == 9);
  for (size_t r = 0; r < 9; ++r) {
    CAPTURE(r, indices[r], c[r] * c[r] / total);
    CHECK(indices[r] == Approx(c[r] * c[r] / total).epsilon(0.05));
    for (size_t q = 0; q < 9; ++q)
      if (c[q] < c[r]) CHECK(indices[q] < indices[r]);  // ordered by variance contribution
  }
  // The map is the grid upsampled with bicubic weights, clamped at 0.
  const Tensor map = salient::sobol_attribution(model, x, 1, options);
  REQUIRE(XtensorBackend::shape(map) == std::vector<int64_t>{1, 1, 6, 6});
  const auto expected = salient::detail::resize_bicubic(indices, 1, 3, 3, 6, 6);
  for (size_t p = 0; p < 36; ++p) CHECK(map.data()[p] == Approx(std::max(expected[p], 0.0)).margin(1e-12));
  // A model that ignores the image: no variance, every index 0.
  salient::LinearModel flat{xt::zeros<double>(std::vector<std::size_t>{2, side * side}), xt::ones<double>({2})};
  const auto flat_indices = salient::sobol_total_indices(flat, x, 1, options);
  for (const double v : flat_indices.at(0)) CHECK(v == 0.0);

  CHECK_THROWS_WITH(salient::sobol_attribution(model, x, 1, {.grid = 0}), Catch::Contains("grid must be in [1, 64]"));
  CHECK_THROWS_WITH(salient::sobol_attribution(model, x, 1, {.designs = 1}), Catch::Contains("designs must be in [2, 65536]"));
}

TEST_CASE("faithfulness correlation: 1 for the exact attribution of a linear model, lower for a scrambled one",
          "[xtensor][faithfulness]") {
  // F(x) = w . x on a one-channel 6x6 image with w >= 0. Removed pixels take the input's minimum
  // m, so F(x) - F(x without S) = sum_{p in S} w_p (x_p - m): the map w (x - m) explains every drop.
  Tensor weight = xt::zeros<double>(std::vector<std::size_t>{2, 36});
  for (std::size_t p = 0; p < 36; ++p) weight(1, p) = 0.1 * static_cast<double>(p % 7 + 1);
  salient::LinearModel model{weight, xt::zeros<double>(std::vector<std::size_t>{2})};
  const Tensor x = random_tensor({1, 1, 6, 6}, 3);
  const double m = xt::amin(x)();
  Tensor exact = xt::zeros<double>(std::vector<std::size_t>{1, 1, 6, 6}), scrambled = exact;
  for (std::size_t p = 0; p < 36; ++p) {
    exact.data()[p] = weight(1, p) * (x.data()[p] - m);
    scrambled.data()[(p * 5) % 36] = exact.data()[p];
  }
  salient::FaithfulnessCorrelationOptions<salient::LinearModel> options{.runs = 40, .subset_size = 5};
  const auto score = salient::faithfulness_correlation(model, x, 1, exact, options);
  REQUIRE(score.size() == 1);
  CHECK(score[0] == Approx(1.0).margin(1e-12));
  const double lower = salient::faithfulness_correlation(model, x, 1, scrambled, options)[0];
  CHECK(lower < 0.9);
  // Seeded per subset: the batch size does not change the result.
  options.evaluation.batch_size = 3;
  CHECK(salient::faithfulness_correlation(model, x, 1, scrambled, options)[0] == Approx(lower).epsilon(1e-12));
  // With the zero fill instead, w x is the exact map. It has both signs, which Quantus'
  // normalisation scales apart (positives by the largest, negatives by the smallest): off.
  options.minimum_fill = false;
  options.normalise = false;
  Tensor times_input = exact;
  for (std::size_t p = 0; p < 36; ++p) times_input.data()[p] = weight(1, p) * x.data()[p];
  CHECK(salient::faithfulness_correlation(model, x, 1, times_input, options)[0] == Approx(1.0).margin(1e-12));

  CHECK_THROWS_WITH(salient::faithfulness_correlation(model, x, 1, exact, {.subset_size = 37}),
                    Catch::Contains("subset_size must be in [1, 36]"));
  CHECK_THROWS_WITH(salient::faithfulness_correlation(model, x, 1, Tensor(xt::zeros<double>(std::vector<std::size_t>{1, 2, 6, 6}))),
                    Catch::Contains("one value per pixel"));
}
