// Localisation metrics after Quantus 0.6: top_k_in_mask (TopKIntersection),
// attribution_localisation (AttributionLocalisation) and mask_auc (AUC), on hand-made maps.
//
// The 5x5 case below is checked against a numpy re-implementation of Quantus' evaluate_instance
// (normalise_by_max, then argsort / |a| sums / roc_curve + trapezoid area) run with Debian's
// /usr/bin/python3 on the same exact formulas:
//   A = np.array([[((3*x*x + 5*y + x*y) % 17) / 17.0 - 0.3 for x in range(5)] for y in range(5)])
//   M = np.array([[(x + 2*y) % 3 == 0 for x in range(5)] for y in range(5)])
// 17 A - 5.1 is, row by row (y = 0..4, x = 0..4; * marks M):
//   -5.1*  -2.1   6.9   4.9*  8.9
//   -0.1   3.9*  -3.1  -4.1   0.9*
//    4.9   9.9   3.9*  3.9   9.9
//    9.9* -1.1  10.9  -5.1*  1.9
//   -2.1   4.9*  0.9   2.9  10.9*
#include <catch2/catch.hpp>

#include "error_matchers.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "salient/evaluation/localisation.hpp"

namespace {
using salient::test::require_error_mentioning;

torch::Tensor formula_map() {
  auto t = torch::empty({5, 5}, torch::kDouble);
  auto a = t.accessor<double, 2>();
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 5; ++x) a[y][x] = static_cast<double>((3 * x * x + 5 * y + x * y) % 17) / 17.0 - 0.3;
  return t;
}

torch::Tensor formula_mask() {
  auto t = torch::zeros({5, 5}, torch::kBool);
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 5; ++x) t[y][x] = (x + 2 * y) % 3 == 0;
  return t;
}

// Pairwise count: over all (inside, outside) pixel pairs, 1 when the inside pixel scores higher,
// 1/2 when tied; the mean is the ROC AUC.
double pairwise_auc(const torch::Tensor& map, const torch::Tensor& mask) {
  const auto m = map.to(torch::kDouble).contiguous().view({-1});
  const auto s = mask.to(torch::kBool).contiguous().view({-1});
  double credit = 0, pairs = 0;
  for (int64_t i = 0; i < m.numel(); ++i) {
    if (!s[i].item<bool>()) continue;
    for (int64_t j = 0; j < m.numel(); ++j) {
      if (s[j].item<bool>()) continue;
      const double a = m[i].item<double>(), b = m[j].item<double>();
      credit += a > b ? 1.0 : a == b ? 0.5 : 0.0;
      pairs += 1;
    }
  }
  return credit / pairs;
}

}  // namespace

TEST_CASE("top_k_in_mask: share of the k highest pixels inside the mask", "[localisation]") {
  // Values 0..15 row-major; the mask holds 15, 14 and 0.
  const auto map = torch::arange(16, torch::kFloat).view({4, 4});
  auto mask = torch::zeros({4, 4});
  mask[3][3] = 1;
  mask[3][2] = 1;
  mask[0][0] = 1;
  CHECK(salient::top_k_in_mask(map, mask, 1) == 1.0);                  // {15}
  CHECK(salient::top_k_in_mask(map, mask, 3) == Approx(2.0 / 3.0));    // {15, 14, 13}
  CHECK(salient::top_k_in_mask(map, mask, 5) == Approx(2.0 / 5.0));    // {15..11}
  CHECK(salient::top_k_in_mask(map, mask, 16) == Approx(3.0 / 16.0));  // all pixels: the mask's share
  // Signed, not absolute (Quantus abs=False): the top 3 of -map are 0, -1, -2 -> only 0 inside.
  CHECK(salient::top_k_in_mask(-map, mask, 3) == Approx(1.0 / 3.0));
  // Concept influence divides by the mask's share 3/16: (2/3) * 16/3 = 32/9.
  CHECK(salient::top_k_in_mask(map, mask, 3, true) == Approx(32.0 / 9.0));
  CHECK(salient::top_k_in_mask(map, mask, 16, true) == Approx(1.0));
  // A constant map favours no pixel: k/16 of each pixel, the mask's share 3/16 for every k, and
  // concept influence 1.
  for (int64_t k : {1, 4, 7, 16}) {
    CHECK(salient::top_k_in_mask(torch::full({4, 4}, 0.5), mask, k) == Approx(3.0 / 16.0));
    CHECK(salient::top_k_in_mask(torch::full({4, 4}, 0.5), mask, k, true) == Approx(1.0));
  }
  // Layouts [1,H,W] and [1,1,H,W], bool masks.
  CHECK(salient::top_k_in_mask(map.view({1, 1, 4, 4}), (mask > 0).view({1, 4, 4}), 3) == Approx(2.0 / 3.0));
}

TEST_CASE("top_k_in_mask: ties at the k-th value share the places left", "[localisation]") {
  const auto map = formula_map();
  const auto mask = formula_mask();
  // No tie at the 7th value (6.9; the 8th is 4.9): the top 7 are 10.9 (3,2), 10.9* (4,4),
  // 9.9 (2,1), 9.9 (2,4), 9.9* (3,0), 8.9 (0,4), 6.9 (0,2) -> 2 of 7 inside, as Quantus' argsort
  // (numpy oracle: 0.2857142857142857, concept influence 0.7936507936507936 = 2/7 * 25/9).
  CHECK(salient::top_k_in_mask(map, mask, 7) == Approx(2.0 / 7.0).epsilon(1e-12));
  CHECK(salient::top_k_in_mask(map, mask, 7, true) == Approx(50.0 / 63.0).epsilon(1e-12));
  // k = 4: the two 10.9s (one inside) and 2 of the three 9.9s (one inside, weight 2/3 each):
  // (1 + 2/3) / 4 = 5/12. Quantus' argsort happens to pick the inside 9.9 and gives 1/2.
  CHECK(salient::top_k_in_mask(map, mask, 4) == Approx(5.0 / 12.0).epsilon(1e-12));
  // k = 1: one of the two 10.9s, one of which is inside -> 1/2 (Quantus: 1).
  CHECK(salient::top_k_in_mask(map, mask, 1) == Approx(0.5));
  // k = 3: 10.9, 10.9* and one of the three 9.9s (one inside, weight 1/3): (1 + 1/3) / 3 = 4/9,
  // the mean over the three equally likely picks (2/3, 1/3, 1/3).
  CHECK(salient::top_k_in_mask(map, mask, 3) == Approx(4.0 / 9.0).epsilon(1e-12));
}

TEST_CASE("attribution_localisation: share of |attribution| inside the mask", "[localisation]") {
  const auto mask = salient::box_mask({{0, 0, 2, 2}}, 4, 4);  // top-left 2x2: 4 of 16 pixels
  // Positive only inside the mask -> 1; weighted by the mask's share 4/16.
  auto inside_only = torch::zeros({4, 4});
  inside_only[0][0] = 2.0;
  inside_only[1][1] = 0.5;
  CHECK(salient::attribution_localisation(inside_only, mask) == 1.0);
  CHECK(salient::attribution_localisation(inside_only, mask, true) == Approx(0.25));
  // Magnitudes (Quantus abs=True): inside |2| + |1| + |-5| = 8, outside |1| + |-1| = 2 -> 8/10.
  // (energy_pointing_game counts positive values only: 3 / 4.)
  auto mixed = torch::zeros({4, 4});
  mixed[0][0] = 2.0;
  mixed[1][0] = 1.0;
  mixed[0][1] = -5.0;
  mixed[3][0] = 1.0;
  mixed[3][3] = -1.0;
  CHECK(salient::attribution_localisation(mixed, mask) == Approx(0.8));
  CHECK(salient::attribution_localisation(mixed, mask, true) == Approx(0.8 * 4.0 / 16.0));
  CHECK(salient::energy_pointing_game(mixed, mask) == Approx(0.75));
  // All non-positive: the magnitudes count, -mixed scores like mixed.
  CHECK(salient::attribution_localisation(-mixed.abs(), mask) == Approx(0.8));
  // Uniform map: the mask's share, 4/16; weighted 1/16.
  CHECK(salient::attribution_localisation(torch::ones({4, 4}), mask) == Approx(0.25));
  CHECK(salient::attribution_localisation(torch::ones({4, 4}), mask, true) == Approx(1.0 / 16.0));
  // All zero: 0/0, NaN as Quantus.
  CHECK(std::isnan(salient::attribution_localisation(torch::zeros({4, 4}), mask)));
  // Channels are summed before the magnitude: +1 and -1 cancel at (3,0) and (3,3), leaving 8 / 8.
  auto chw = torch::stack({mixed, torch::zeros({4, 4})});
  chw[1][3][0] = -1.0;
  chw[1][3][3] = 1.0;
  CHECK(salient::attribution_localisation(chw, mask) == 1.0);
  // 5x5: inside sum |17 A| = 49.5 of 123.1 -> 495/1231 (numpy oracle of Quantus:
  // 0.4021121039805036, weighted 0.1447603574329813 = 495/1231 * 9/25).
  CHECK(salient::attribution_localisation(formula_map(), formula_mask()) == Approx(495.0 / 1231.0).epsilon(1e-12));
  CHECK(salient::attribution_localisation(formula_map(), formula_mask(), true) ==
        Approx(0.1447603574329813).epsilon(1e-12));
}

TEST_CASE("mask_auc: ROC AUC of the map as a score for the mask", "[localisation]") {
  const auto mask = salient::box_mask({{1, 1, 3, 4}}, 4, 4);  // 6 of 16 pixels
  const auto as_float = mask.to(torch::kFloat);
  CHECK(salient::mask_auc(as_float, mask) == 1.0);
  CHECK(salient::mask_auc(-as_float, mask) == 0.0);
  CHECK(salient::mask_auc(torch::full({4, 4}, 3.0), mask) == 0.5);
  // Only ranks matter: any increasing transform of the map gives the same AUC.
  const auto map = formula_map();
  const auto region = formula_mask();
  CHECK(salient::mask_auc(map * 7 + 2, region) == salient::mask_auc(map, region));
  // 2x3 by hand: inside {3, 2}, outside {1, 2, 0, 2}. 3 beats all 4; 2 beats 1 and 0 and ties
  // the two 2s (1/2 each): (4 + 3) / 8.
  const auto small = torch::tensor({3.0, 1.0, 2.0, 2.0, 0.0, 2.0}).view({2, 3});
  const auto small_mask = torch::tensor({1, 0, 1, 0, 0, 0}).view({2, 3});
  CHECK(salient::mask_auc(small, small_mask) == 0.875);
  CHECK(pairwise_auc(small, small_mask) == 0.875);
  // 5x5 with many ties: the pairwise count, and the numpy ROC-curve + trapezoid oracle 19/36
  // (76 of 144 pairs).
  CHECK(salient::mask_auc(map, region) == Approx(pairwise_auc(map, region)).epsilon(1e-12));
  CHECK(salient::mask_auc(map, region) == Approx(19.0 / 36.0).epsilon(1e-12));
  // A coarse map (values 0..3) for more ties, and its channel sum.
  auto coarse = torch::empty({5, 5}, torch::kDouble);
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 5; ++x) coarse[y][x] = static_cast<double>((x * y + y) % 4);
  CHECK(salient::mask_auc(coarse, region) == Approx(pairwise_auc(coarse, region)).epsilon(1e-12));
  const auto stacked = torch::stack({coarse, coarse * 0.0}).unsqueeze(0);  // [1,2,5,5]
  CHECK(salient::mask_auc(stacked, region) == salient::mask_auc(coarse, region));
}

TEST_CASE("top_k_in_mask, attribution_localisation and mask_auc reject bad input", "[localisation]") {
  const auto map = torch::rand({4, 4});
  const auto mask = salient::box_mask({{0, 0, 2, 2}}, 4, 4);
  // k outside [1, pixels].
  require_error_mentioning([&] { salient::top_k_in_mask(map, mask, 0); }, "k = 0 for a 4x4 map (16 pixels); expected k in [1, 16]");
  require_error_mentioning([&] { salient::top_k_in_mask(map, mask, 17); }, "k = 17");
  require_error_mentioning([&] { salient::top_k_in_mask(map, mask, -3); }, "k = -3");
  require_error_mentioning([&] { salient::top_k_in_mask(map, mask); }, "k = 1000");  // Quantus' default on 16 pixels
  // The AUC needs pixels on both sides.
  require_error_mentioning([&] { salient::mask_auc(map, torch::ones({4, 4})); }, "selects all 16 pixels");
  require_error_mentioning([&] { salient::mask_auc(map, torch::zeros({4, 4})); }, "selects no pixel");
  require_error_mentioning([&] { salient::top_k_in_mask(map, torch::zeros({4, 4}), 2); }, "selects no pixel");
  require_error_mentioning([&] { salient::attribution_localisation(map, torch::zeros({4, 4}, torch::kBool)); },
                           "selects no pixel");
  // Sizes and shapes.
  require_error_mentioning([&] { salient::mask_auc(map, torch::ones({4, 5})); },
                           "the mask has shape [4,5] but the map has shape [4,4]");
  require_error_mentioning([&] { salient::attribution_localisation(map, torch::ones({3, 4})); }, "[3,4]");
  require_error_mentioning([&] { salient::top_k_in_mask(torch::rand({2, 1, 4, 4}), mask, 2); }, "[2,1,4,4]");
  require_error_mentioning([&] { salient::mask_auc(torch::rand({16}), mask); }, "[16]");
  // Non-binary masks, non-finite maps.
  require_error_mentioning([&] { salient::mask_auc(map, mask.to(torch::kFloat) * 2); }, "expected booleans or 0/1");
  auto bad = map.clone();
  bad[1][2] = std::nan("");
  require_error_mentioning([&] { salient::attribution_localisation(bad, mask); }, "NaN");
  bad[1][2] = INFINITY;
  require_error_mentioning([&] { salient::mask_auc(bad, mask); }, "inf");
  require_error_mentioning([&] { salient::top_k_in_mask(bad, mask, 2); }, "inf");
}
