// Map similarity (Spearman, Pearson, SSIM, HOG, top-k intersection) against SciPy 1.10.1 and
// scikit-image 0.19.3, and localisation metrics (pointing game, energy, relevance mass and rank
// accuracy) and complexity metrics (sparseness, complexity, effective complexity) on hand-made maps.
//
// The reference numbers come from Debian's /usr/bin/python3 on float64 arrays built from the
// integer formulas below (exact in both languages):
//   import numpy as np, scipy.stats as st; from skimage.metrics import structural_similarity as ssim
//   from skimage.feature import hog
//   A = lambda h, w: np.array([[((3*x*x + 5*y + x*y) % 17) / 17.0 - 0.3 for x in range(w)] for y in range(h)])
//   B = lambda h, w: np.array([[((2*x + 7*y*y + 3*x*y) % 13) / 13.0 for x in range(w)] for y in range(h)])
//   S = lambda h, w: np.array([[((x*y) % 11 + x + y) / 40.0 for x in range(w)] for y in range(h)])
#include <catch2/catch.hpp>

#include "error_matchers.hpp"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "salient/evaluation/complexity.hpp"
#include "salient/evaluation/localisation.hpp"
#include "salient/evaluation/similarity.hpp"

using Catch::Matchers::Contains;

namespace {
using salient::test::require_error_mentioning;


torch::Tensor from_formula(int64_t h, int64_t w, const std::function<double(int64_t, int64_t)>& f) {
  auto t = torch::empty({h, w}, torch::kDouble);
  auto a = t.accessor<double, 2>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) a[y][x] = f(y, x);
  return t;
}

torch::Tensor map_a(int64_t h, int64_t w) {
  return from_formula(h, w, [](int64_t y, int64_t x) {
    return static_cast<double>((3 * x * x + 5 * y + x * y) % 17) / 17.0 - 0.3;
  });
}
torch::Tensor map_b(int64_t h, int64_t w) {
  return from_formula(h, w, [](int64_t y, int64_t x) {
    return static_cast<double>((2 * x + 7 * y * y + 3 * x * y) % 13) / 13.0;
  });
}
torch::Tensor map_s(int64_t h, int64_t w) {
  return from_formula(h, w, [](int64_t y, int64_t x) {
    return static_cast<double>((x * y) % 11 + x + y) / 40.0;
  });
}

torch::Tensor vec(std::vector<double> v) { return torch::tensor(v, torch::kDouble); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Correlations

TEST_CASE("spearman and pearson equal SciPy's, ties getting average ranks", "[similarity]") {
  // st.spearmanr(a, b).correlation, st.pearsonr(a, b)[0]
  //   with a = [1,2,2,3,3,3,4,0,0,5], b = [2,1,4,4,3,5,5,0,1,9]
  const auto a = vec({1, 2, 2, 3, 3, 3, 4, 0, 0, 5}), b = vec({2, 1, 4, 4, 3, 5, 5, 0, 1, 9});
  CHECK(salient::spearman(a, b) == Approx(0.8941200456912038).margin(1e-14));
  CHECK(salient::pearson(a, b) == Approx(0.897384218717841).margin(1e-14));
  // Integer and float dtypes give the same ranks.
  CHECK(salient::spearman(a.to(torch::kInt64), b.to(torch::kFloat)) ==
        Approx(0.8941200456912038).margin(1e-14));

  // 16x16 maps with many ties (17 and 13 distinct values), flattened:
  //   st.spearmanr(A(16,16).ravel(), B(16,16).ravel()).correlation, st.pearsonr(...)[0]
  CHECK(salient::spearman(map_a(16, 16), map_b(16, 16)) == Approx(0.01182217388274519).margin(1e-14));
  CHECK(salient::pearson(map_a(16, 16), map_b(16, 16)) == Approx(0.00793654725843114).margin(1e-14));
  // Y = S + 0.25 A on 24x24: st.spearmanr(S.ravel(), Y.ravel()), st.pearsonr(...)
  const auto s = map_s(24, 24), y = map_s(24, 24) + 0.25 * map_a(24, 24);
  CHECK(salient::spearman(s, y) == Approx(0.9628898096400242).margin(1e-14));
  CHECK(salient::pearson(s, y) == Approx(0.9644917434533049).margin(1e-14));
  // Only the number of values must match: shapes are flattened.
  CHECK(salient::spearman(s, y.reshape({1, 576})) == Approx(0.9628898096400242).margin(1e-14));

  // Spearman sees only order: monotone transforms keep it, reversal negates it.
  CHECK(salient::spearman(s, y.exp() * 3 + 1) == Approx(0.9628898096400242).margin(1e-14));
  CHECK(salient::spearman(s, -y) == Approx(-0.9628898096400242).margin(1e-14));
  CHECK(salient::spearman(a, a) == 1.0);
  CHECK(salient::pearson(a, 2 * a + 1) == Approx(1.0).margin(1e-15));
  CHECK(salient::pearson(a, -a) == Approx(-1.0).margin(1e-15));
}

TEST_CASE("correlations: constant input gives 0, bad input is an error", "[similarity]") {
  const auto a = vec({1, 2, 3, 4});
  CHECK(salient::spearman(a, torch::full({4}, 0.3, torch::kDouble)) == 0.0);  // SciPy: nan
  CHECK(salient::pearson(torch::full({2, 2}, 7.0), a) == 0.0);
  CHECK(salient::pearson(vec({5}), vec({2})) == 0.0);
  require_error_mentioning([&] { salient::spearman(a, vec({1, 2, 3})); }, "4 values");
  require_error_mentioning([&] { salient::pearson(a, torch::zeros({2, 3})); }, "[2,3]");
  require_error_mentioning([&] { salient::spearman(a, vec({1, std::nan(""), 3, 4})); }, "NaN at flat index 1");
  require_error_mentioning([&] { salient::pearson(vec({1, 2, INFINITY, 4}), a); }, "finite");
  require_error_mentioning([&] { salient::spearman(torch::zeros({0}), torch::zeros({0})); }, "empty");
  require_error_mentioning([&] { salient::pearson(torch::Tensor(), a); }, "undefined");
  // Infinities have a rank.
  CHECK(salient::spearman(vec({1, 2, INFINITY, -INFINITY}), vec({1, 2, 3, 0})) == Approx(1.0));
}

// ---------------------------------------------------------------------------------------------
// SSIM

TEST_CASE("ssim equals skimage's structural_similarity", "[similarity]") {
  const auto a = map_a(24, 24), b = map_b(24, 24), s = map_s(24, 24);
  const auto y = s + 0.25 * a;
  // ssim(S, Y, data_range=max(S.max(),Y.max())-min(S.min(),Y.min()), win_size=7)
  CHECK(salient::ssim(s, y) == Approx(0.8232071495290825).margin(1e-12));
  // ssim(A, B, data_range=max(A.max(),B.max())-min(A.min(),B.min()), win_size=7)
  CHECK(salient::ssim(a, b) == Approx(-0.006431733410601432).margin(1e-12));
  // ssim(A, B, data_range=1.0, win_size=7); ssim(S, A, data_range=1.0)
  CHECK(salient::ssim(a, b, {.data_range = 1.0}) == Approx(-0.008253133593091787).margin(1e-12));
  CHECK(salient::ssim(s, a, {.data_range = 1.0}) == Approx(-0.018498711116145997).margin(1e-12));
  // Rectangular maps, window 5: ssim(A(20,17), B(20,17), data_range=1.0, win_size=5)
  CHECK(salient::ssim(map_a(20, 17), map_b(20, 17), {.window = 5, .data_range = 1.0}) ==
        Approx(0.02990110868767835).margin(1e-12));
  // Gaussian window (sigma 1.5 -> 11x11), population covariance:
  //   ssim(S, Y, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
  CHECK(salient::ssim(s, y, {.gaussian_weights = true, .data_range = 1.0}) ==
        Approx(0.7865099789019742).margin(1e-12));
  //   ssim(A, B, data_range=1.0, gaussian_weights=True, ...); ssim(S, B, data_range=2.0, gaussian...)
  CHECK(salient::ssim(a, b, {.gaussian_weights = true, .data_range = 1.0}) ==
        Approx(0.017769758805836984).margin(1e-12));
  CHECK(salient::ssim(s, b, {.gaussian_weights = true, .data_range = 2.0}) ==
        Approx(-0.019654149932972417).margin(1e-12));
  // Float32 maps and [1,1,H,W] / [1,H,W] shapes give the same value (computed in double).
  CHECK(salient::ssim(s.to(torch::kFloat).view({1, 1, 24, 24}), y.to(torch::kFloat).view({1, 24, 24})) ==
        Approx(0.8232071495290825).margin(1e-6));
}

TEST_CASE("ssim of a map with itself is exactly 1, of its inverse low", "[similarity]") {
  const auto s = map_s(24, 24), a = map_a(24, 24);
  CHECK(salient::ssim(s, s) == 1.0);
  CHECK(salient::ssim(a, a.clone(), {.gaussian_weights = true}) == 1.0);
  CHECK(salient::ssim(torch::full({8, 8}, 0.5), torch::full({8, 8}, 0.5)) == 1.0);  // range 0
  // Inverted structure: ssim(S, 1 - S, data_range=1.0)
  CHECK(salient::ssim(s, 1 - s, {.data_range = 1.0}) == Approx(-0.5931892344777897).margin(1e-12));
  // A locally zero-mean map against its negative: ssim(Z, -Z, data_range=2.0) with
  //   Z = [[((x + 2*y) % 5 - 2) / 2 for x in range(24)] for y in range(24)]
  const auto z = from_formula(24, 24, [](int64_t y, int64_t x) {
    return static_cast<double>((x + 2 * y) % 5 - 2) / 2.0;
  });
  CHECK(salient::ssim(z, -z) == Approx(-0.18189228532640353).margin(1e-12));
  // SSIM multiplies a luminance and a structure term: with non-zero local means both flip sign
  // and x vs -x scores high (skimage agrees: ssim(A, -A, data_range=...) = 0.9748361325415447).
  CHECK(salient::ssim(a, -a) == Approx(0.9748361325415447).margin(1e-12));
}

TEST_CASE("ssim rejects bad shapes and options", "[similarity]") {
  const auto s = map_s(24, 24);
  require_error_mentioning([&] { salient::ssim(torch::zeros({2, 24, 24}), torch::zeros({2, 24, 24})); },
                           "[2,24,24]");
  require_error_mentioning([&] { salient::ssim(s, map_s(24, 23)); }, "[24,23]");
  require_error_mentioning([&] { salient::ssim(map_s(6, 30), map_s(6, 30)); }, "smaller than the 7x7 window");
  require_error_mentioning([&] { salient::ssim(map_s(10, 10), map_s(10, 10), {.gaussian_weights = true}); },
                           "11x11 window");
  require_error_mentioning([&] { salient::ssim(s, s, {.window = 6}); }, "window = 6");
  require_error_mentioning([&] { salient::ssim(s, s, {.data_range = -1}); }, "data_range = -1");
  require_error_mentioning([&] { salient::ssim(s, s, {.k2 = 0}); }, "k2 = 0");
  require_error_mentioning([&] { salient::ssim(s, s, {.gaussian_weights = true, .sigma = 0}); }, "sigma = 0");
  auto bad = s.clone();
  bad[3][4] = std::nan("");
  require_error_mentioning([&] { salient::ssim(bad, s); }, "NaN");
}

// ---------------------------------------------------------------------------------------------
// HOG

TEST_CASE("hog equals skimage.feature.hog element-wise", "[similarity]") {
  // hog(A(24,24), orientations=9, pixels_per_cell=(8,8), cells_per_block=(3,3),
  //     block_norm='L2-Hys', feature_vector=True), printed with '%.9g'
  const std::vector<double> expected = {
      0.130636743,  0.112618676,  0.128606165, 0.0972439736, 0.135043695,  0.0967108685, 0.0609067156,
      0.0680224958, 0.0297053417, 0.190207185, 0.113628784,  0.080409931,  0.10605064,   0.0735511608,
      0.195206471,  0.130793593,  0.0422309834, 0.0796904318, 0.14340254,  0.109887284,  0.150566237,
      0.101946464,  0.102126405,  0.102450357, 0.0480113105, 0.0985205266, 0.0297053417, 0.0889623777,
      0.143694952,  0.107152093,  0.0826355446, 0.204772342, 0.0652674435, 0.0180535675, 0.103188328,
      0.124479075,  0.107263684,  0.0995501926, 0.108006733, 0.0524088006, 0.0768218739, 0.204442656,
      0.0648735742, 0.154355087,  0.0265532639, 0.0889623777, 0.132012071, 0.140513234,  0.0695368887,
      0.204772342,  0.0745596941, 0.0180535675, 0.0652369753, 0.124479075, 0.158344457,  0.0889095868,
      0.126027085,  0.107530166,  0.155195202,  0.0965910801, 0.0543313249, 0.0818026507, 0.0243792956,
      0.191438982,  0.126955101,  0.0830759145, 0.096854554,  0.0588107398, 0.155889304, 0.125711152,
      0.0163115408, 0.0513792159, 0.14557866,   0.10540995,   0.13229922,  0.130740359,  0.114892194,
      0.0919738006, 0.0414359198, 0.112300674,  0.0243792956};
  const auto features = salient::hog(map_a(24, 24));
  REQUIRE(features.dim() == 1);
  REQUIRE(features.size(0) == 81);
  CHECK(features.scalar_type() == torch::kDouble);
  double max_error = 0;
  for (int64_t i = 0; i < 81; ++i)
    max_error = std::max(max_error, std::abs(features[i].item<double>() - expected[static_cast<size_t>(i)]));
  INFO("max abs error " << max_error);
  // skimage sums each cell in float32, this in double: they differ by ~2e-8.
  CHECK(max_error < 1e-6);

  // Other options, a map whose size is not a multiple of the cell (trailing pixels ignored):
  //   h = hog(S(20,18), orientations=6, pixels_per_cell=(4,4), cells_per_block=(2,2), block_norm='L2-Hys')
  //   h.shape, h.sum(), (h**2).sum(), h[0], h[100], h[287]
  const auto h = salient::hog(map_s(20, 18), {.orientations = 6, .cell = 4, .block = 2});
  REQUIRE(h.size(0) == 288);
  CHECK(h.sum().item<double>() == Approx(50.42270062873638).margin(1e-9));
  CHECK(h.square().sum().item<double>() == Approx(11.9999999977028).margin(1e-9));
  CHECK(h[0].item<double>() == Approx(0.22009184957637304).margin(1e-12));
  CHECK(h[100].item<double>() == Approx(0.2913530726269035).margin(1e-12));
  CHECK(h[287].item<double>() == Approx(0.039870715773609705).margin(1e-12));

  // A float map gives float features, the same to float precision.
  const auto f = salient::hog(map_a(24, 24).to(torch::kFloat).view({1, 24, 24}));
  CHECK(f.scalar_type() == torch::kFloat);
  CHECK(torch::allclose(f.to(torch::kDouble), features, 0, 1e-5));
}

TEST_CASE("hog_similarity is the Pearson correlation of the HOG vectors", "[similarity]") {
  // st.pearsonr(hog(A(24,24), ...), hog(B(24,24), ...))[0] with the default options
  CHECK(salient::hog_similarity(map_a(24, 24), map_b(24, 24)) == Approx(0.09412291283041573).margin(1e-9));
  CHECK(salient::hog_similarity(map_a(24, 24), map_a(24, 24)) == Approx(1.0).margin(1e-15));
  // Scaling a map leaves its normalised blocks, hence the similarity, unchanged.
  CHECK(salient::hog_similarity(map_s(32, 32), 3 * map_s(32, 32)) == Approx(1.0).margin(1e-9));
  // No gradient: constant HOG vector, similarity 0.
  CHECK(salient::hog_similarity(torch::zeros({24, 24}), map_a(24, 24)) == 0.0);
  require_error_mentioning([&] { salient::hog(torch::zeros({23, 40})); }, "at least 24 pixels");
  require_error_mentioning([&] { salient::hog(torch::zeros({24, 24}), {.cell = 0}); }, "cell = 0");
  require_error_mentioning([&] { salient::hog_similarity(torch::zeros({24, 24}), torch::zeros({24, 32})); },
                           "[24,32]");
}

// ---------------------------------------------------------------------------------------------
// Top-k intersection

TEST_CASE("top_k_intersection counts shared top-k positions", "[similarity]") {
  const auto a = vec({5, 4, 3, 2, 1}), b = vec({1, 4, 5, 2, 3});
  // top-2: a {0,1}, b {2,1} -> {1}; top-3: a {0,1,2}, b {2,1,4} -> {1,2}; top-5: everything.
  CHECK(salient::top_k_intersection(a, b, 1) == 0.0);
  CHECK(salient::top_k_intersection(a, b, 2) == 0.5);
  CHECK(salient::top_k_intersection(a, b, 3) == Approx(2.0 / 3.0));
  CHECK(salient::top_k_intersection(a, b, 5) == 1.0);
  CHECK(salient::top_k_intersection(a.view({1, 5}), a, 3) == 1.0);
  // Ties at the k-th value share the places left: a constant map picks each position with
  // chance k/n, favouring none: b's top 2 {2,1} each count 2/5.
  const auto flat = torch::ones({5});
  CHECK(salient::top_k_intersection(flat, b, 2) == Approx(2.0 / 5.0));
  CHECK(salient::top_k_intersection(b, flat, 2) == Approx(2.0 / 5.0));
  // Equal maps give 1 even with ties at the boundary.
  const auto tied = vec({3, 1, 1, 1, 0});
  CHECK(salient::top_k_intersection(tied, tied, 2) == Approx(1.0).margin(1e-15));
  // tied's top 2: position 0, then 1/3 of {1,2,3}; b's: {1,2} -> (0 + 1/3 + 1/3) / 2.
  CHECK(salient::top_k_intersection(tied, b, 2) == Approx(1.0 / 3.0));
  require_error_mentioning([&] { salient::top_k_intersection(a, b, 0); }, "k = 0");
  require_error_mentioning([&] { salient::top_k_intersection(a, b, 6); }, "k in [1, 5]");
  require_error_mentioning([&] { salient::top_k_intersection(a, vec({1, 2}), 1); }, "5 values");
}

// ---------------------------------------------------------------------------------------------
// Localisation

TEST_CASE("box_mask marks the union of boxes, x1 and y1 exclusive", "[localisation]") {
  const auto mask = salient::box_mask({{1, 2, 4, 3}, {3, 2, 5, 6}}, 6, 5);
  REQUIRE(mask.sizes() == torch::IntArrayRef({6, 5}));
  CHECK(mask.scalar_type() == torch::kBool);
  // Box 0: row 2, columns 1..3 (3 px); box 1: rows 2..5, columns 3..4 (8 px); overlap (2,3).
  CHECK(mask.sum().item<int64_t>() == 10);
  CHECK(mask[2][1].item<bool>());
  CHECK_FALSE(mask[2][0].item<bool>());
  CHECK(mask[5][4].item<bool>());
  CHECK_FALSE(mask[3][2].item<bool>());
  CHECK(salient::box_mask({{0, 0, 5, 6}}, 6, 5).all().item<bool>());

  require_error_mentioning([] { salient::box_mask({{0, 0, 6, 2}}, 6, 5); }, "outside the 6x5 image");
  require_error_mentioning([] { salient::box_mask({{0, 0, 1, 1}, {-1, 0, 2, 2}}, 6, 5); }, "box 1 {x0=-1");
  require_error_mentioning([] { salient::box_mask({{2, 2, 2, 4}}, 6, 5); }, "empty or inverted");
  require_error_mentioning([] { salient::box_mask({{3, 1, 1, 4}}, 6, 5); }, "box 0 {x0=3, y0=1, x1=1, y1=4}");
  require_error_mentioning([] { salient::box_mask({}, 6, 5); }, "no boxes");
  require_error_mentioning([] { salient::box_mask({{0, 0, 1, 1}}, 0, 5); }, "0x5");
}

TEST_CASE("pointing game: the maximum on the region, within a tolerance", "[localisation]") {
  auto map = torch::zeros({10, 10});
  map[2][3] = 1.0;  // the maximum at y=2, x=3
  const auto far = salient::box_mask({{5, 5, 8, 8}}, 10, 10);   // nearest pixel (5,5): sqrt(13) = 3.6
  const auto near = salient::box_mask({{2, 1, 4, 3}}, 10, 10);  // holds (2,3)
  CHECK(salient::pointing_game(map, near));
  CHECK_FALSE(salient::pointing_game(map, far));
  CHECK_FALSE(salient::pointing_game(map, far, 3));
  CHECK(salient::pointing_game(map, far, 4));
  CHECK(salient::pointing_game(map, far, 1000000000));
  // Straight distance: (2,3) to (2,7) is 4 px.
  auto one = torch::zeros({10, 10}, torch::kBool);
  one[2][7] = true;
  CHECK_FALSE(salient::pointing_game(map, one, 3));
  CHECK(salient::pointing_game(map, one, 4));
  // Ties: any maximum on the region is a hit.
  auto tied = map.clone();
  tied[6][6] = 1.0;
  CHECK(salient::pointing_game(tied, far));
  CHECK(salient::pointing_game(torch::full({10, 10}, 0.2), far));
  // Channels are summed: channel 1 moves the maximum into the far box.
  auto chw = torch::zeros({1, 3, 10, 10});
  chw[0][0][2][3] = 1.0;
  chw[0][1][6][6] = 0.7;
  chw[0][2][6][6] = 0.7;
  CHECK(salient::pointing_game(chw, far));
  CHECK_FALSE(salient::pointing_game(chw[0][0], far));
  // Masks as 0/1 floats, [1,1,H,W].
  CHECK(salient::pointing_game(map.view({1, 1, 10, 10}), near.to(torch::kFloat).view({1, 10, 10})));
  require_error_mentioning([&] { salient::pointing_game(map, far, -1); }, "tolerance = -1");
}

TEST_CASE("energy pointing game and relevance mass accuracy: positive share inside", "[localisation]") {
  const auto mask = salient::box_mask({{0, 0, 2, 2}}, 4, 4);
  auto inside_only = torch::zeros({4, 4});
  inside_only[0][0] = 2.0;
  inside_only[1][1] = 0.5;
  inside_only[3][3] = -4.0;  // negative attribution outside is ignored
  CHECK(salient::energy_pointing_game(inside_only, mask) == 1.0);
  auto outside_only = torch::zeros({4, 4});
  outside_only[2][2] = 1.0;
  outside_only[0][1] = -1.0;
  CHECK(salient::energy_pointing_game(outside_only, mask) == 0.0);
  CHECK(salient::energy_pointing_game(-torch::ones({4, 4}), mask) == 0.0);  // nothing positive
  CHECK(salient::energy_pointing_game(torch::zeros({4, 4}), mask) == 0.0);
  // 3 inside (2 + 1, the -5 ignored), 1 outside: 3 / 4.
  auto mixed = torch::zeros({4, 4});
  mixed[0][0] = 2.0;
  mixed[1][0] = 1.0;
  mixed[0][1] = -5.0;
  mixed[3][0] = 1.0;
  CHECK(salient::energy_pointing_game(mixed, mask) == Approx(0.75));
  CHECK(salient::relevance_mass_accuracy(mixed, mask) == Approx(0.75));
  // Uniform map: the region's area share, 4 / 16.
  CHECK(salient::relevance_mass_accuracy(torch::ones({4, 4}), mask) == Approx(0.25));
  // [C,H,W]: channels summed before the positive part (+1 and -1 cancel at (3,0)).
  auto chw = torch::stack({mixed, torch::zeros({4, 4})});
  chw[1][3][0] = -1.0;
  CHECK(salient::energy_pointing_game(chw, mask) == 1.0);
}

TEST_CASE("relevance rank accuracy: share of the top-K pixels inside", "[localisation]") {
  // Values 0..15 row-major; the mask holds 15, 14 and 0: the top 3 are 15, 14, 13 -> 2 / 3.
  const auto map = torch::arange(16, torch::kFloat).view({4, 4});
  auto mask = torch::zeros({4, 4});
  mask[3][3] = 1;
  mask[3][2] = 1;
  mask[0][0] = 1;
  CHECK(salient::relevance_rank_accuracy(map, mask) == Approx(2.0 / 3.0));
  CHECK(salient::relevance_rank_accuracy(-map, mask) == Approx(1.0 / 3.0));  // top 3: 0, -1, -2
  CHECK(salient::relevance_rank_accuracy(map, map >= 12) == 1.0);
  // A constant map favours no region: K / (H W) wherever the mask lies.
  CHECK(salient::relevance_rank_accuracy(torch::ones({4, 4}), mask) == Approx(3.0 / 16.0));
  // Ties at the K-th value: top 2 = {9} and one of the three 5s; the mask holds one 5 -> (0 + 1/3) / 2.
  auto tied = torch::zeros({2, 3});
  tied[0][0] = 9;
  tied[0][1] = 5;
  tied[0][2] = 5;
  tied[1][0] = 5;
  auto m2 = torch::zeros({2, 3}, torch::kBool);
  m2[1][0] = true;
  m2[1][2] = true;
  CHECK(salient::relevance_rank_accuracy(tied, m2) == Approx(1.0 / 6.0));
}

TEST_CASE("localisation metrics reject bad maps and masks", "[localisation]") {
  const auto map = torch::rand({8, 8});
  const auto mask = salient::box_mask({{1, 1, 3, 3}}, 8, 8);
  require_error_mentioning([&] { salient::energy_pointing_game(map, torch::zeros({8, 8})); }, "selects no pixel");
  require_error_mentioning([&] { salient::pointing_game(map, torch::ones({8, 7})); },
                           "the mask has shape [8,7] but the map has shape [8,8]");
  require_error_mentioning([&] { salient::relevance_rank_accuracy(torch::rand({1, 3, 8, 8}), torch::ones({2, 8, 8})); },
                           "[1,3,8,8]");
  require_error_mentioning([&] { salient::relevance_mass_accuracy(map, mask.to(torch::kFloat) * 0.5); },
                           "expected booleans or 0/1");
  require_error_mentioning([&] { salient::pointing_game(torch::rand({2, 1, 8, 8}), mask); }, "[2,1,8,8]");
  require_error_mentioning([&] { salient::pointing_game(torch::rand({8}), mask); }, "[8]");
  auto bad = map.clone();
  bad[0][0] = std::nan("");
  require_error_mentioning([&] { salient::pointing_game(bad, mask); }, "NaN");
}

TEST_CASE("complexity metrics: Quantus' sparseness, complexity and effective complexity on known maps", "[complexity]") {
  const int64_t n = 64;
  auto one_hot = torch::zeros({1, 1, 8, 8});
  one_hot[0][0][3][5] = -2.5;  // sign and scale do not matter (normalised, absolute)
  auto uniform = torch::full({1, 1, 8, 8}, 0.3);
  auto two_peaks = torch::zeros({1, 1, 8, 8});
  two_peaks[0][0][0][0] = 1, two_peaks[0][0][7][7] = -1;
  const auto batch = torch::cat({one_hot, uniform, two_peaks});

  // Gini of a one-hot map with Quantus' 1e-7 floor: (n - 1) / (n (1 + n 1e-7)), i.e. 1 - 1/n.
  const auto sparse = salient::sparseness(batch);
  REQUIRE(sparse.size() == 3);
  CHECK(sparse[0] == Approx((n - 1.0) / (n * (1 + n * 1e-7))).epsilon(1e-12));
  CHECK(sparse[1] == Approx(0.0).margin(1e-12));
  CHECK(sparse[2] == Approx((n - 2.0) / (n * (1 + n * 1e-7 / 2))).epsilon(1e-12));  // two of n: ~1 - 2/n

  const auto entropy = salient::complexity(batch);
  CHECK(entropy[0] == 0.0);
  CHECK(entropy[1] == Approx(std::log(64.0)).epsilon(1e-12));
  CHECK(entropy[2] == Approx(std::log(2.0)).epsilon(1e-12));
  CHECK(std::isnan(salient::complexity(torch::zeros({1, 1, 4, 4}))[0]));  // no distribution

  // Effective complexity counts the values above eps after dividing by the largest |value|.
  auto graded = torch::tensor({1.0, 1e-3, 1e-6, 0.0}).view({1, 4});
  CHECK(salient::effective_complexity(graded)[0] == 2);
  CHECK(salient::effective_complexity(graded, {.eps = 1e-7})[0] == 3);
  CHECK(salient::effective_complexity(batch)[1] == n);
  // Without normalisation the scale matters.
  CHECK(salient::effective_complexity(graded * 1e-4, {.normalise = false})[0] == 1);

  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(salient::sparseness(torch::tensor({1.0, std::nan("")}).view({1, 2})), Contains("item 0 holds NaN"));
  CHECK_THROWS_WITH(salient::complexity(torch::ones({4})), Contains("attributions [N, ...]"));
  CHECK_THROWS_WITH(salient::effective_complexity(batch, {.eps = -1}), Contains("eps must be >= 0"));
}
