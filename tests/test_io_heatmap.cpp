// Attribution-map display: channel reduction, percentile scaling, colormaps, overlays, grids.
#include <catch2/catch.hpp>

#include "error_matchers.hpp"
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "salient/io/heatmap.hpp"

using Catch::Matchers::Contains;
using salient::Colormap;
using salient::Image;
using salient::Map2D;

namespace {
using salient::test::require_error_mentioning;


void check_rgb(const Image& im, int64_t y, int64_t x, float r, float g, float b,
               double margin = 1e-4) {
  CHECK(im.at(0, y, x) == Approx(r).margin(margin));
  CHECK(im.at(1, y, x) == Approx(g).margin(margin));
  CHECK(im.at(2, y, x) == Approx(b).margin(margin));
}

Map2D map_of(int64_t h, int64_t w, std::vector<float> values) {
  return Map2D{h, w, std::move(values)};
}

}  // namespace

TEST_CASE("reduce_channels: sum, abs_sum, max_abs", "[io][heatmap]") {
  // 3 channels x 1 x 2 pixels; pixel 0 = (1, -3, 1), pixel 1 = (-2, 0.5, 2).
  const std::vector<float> chw{1.f, -2.f, -3.f, 0.5f, 1.f, 2.f};
  using R = salient::ChannelReduction;
  const Map2D sum = salient::reduce_channels(chw.data(), 3, 1, 2, R::sum);
  CHECK(sum.height == 1);
  CHECK(sum.width == 2);
  CHECK(sum.data == std::vector<float>{-1.f, 0.5f});
  CHECK(salient::reduce_channels(chw.data(), 3, 1, 2, R::abs_sum).data ==
        std::vector<float>{5.f, 4.5f});
  // max_abs keeps the sign of the largest magnitude; on a tie (|-2| == |2|) the first channel wins.
  CHECK(salient::reduce_channels(chw.data(), 3, 1, 2, R::max_abs).data ==
        std::vector<float>{-3.f, -2.f});

  Image im(3, 1, 2);
  im.data = chw;
  CHECK(salient::reduce_channels(im, R::sum).data == sum.data);
  CHECK(salient::parse_channel_reduction("abs_sum") == R::abs_sum);
  require_error_mentioning([] { salient::parse_channel_reduction("mean"); }, "'mean'");
  CHECK_THROWS_AS(salient::reduce_channels(nullptr, 3, 1, 2, R::sum), salient::error);
  CHECK_THROWS_AS(salient::reduce_channels(chw.data(), 0, 1, 2, R::sum), salient::error);
}

TEST_CASE("normalize_percentile", "[io][heatmap]") {
  SECTION("unsigned: divide by the percentile, clip to [0, 1]") {
    std::vector<float> v(100);
    for (int i = 0; i < 100; ++i) v[i] = static_cast<float>(i + 1);  // 1..100
    // NumPy: percentile(1..100, 99) = 99 + 0.01 * (100 - 99) = 99.01.
    const Map2D n = salient::normalize_percentile(map_of(10, 10, v), false, 99.0);
    CHECK(n.data[49] == Approx(50.0 / 99.01));
    CHECK(n.data[98] == Approx(99.0 / 99.01));
    CHECK(n.data[99] == 1.f);  // 100 / 99.01 clipped
    const Map2D median = salient::normalize_percentile(map_of(10, 10, v), false, 50.0);
    CHECK(median.data[0] == Approx(1.0 / 50.5));
  }
  SECTION("unsigned maps count negatives as 0") {
    const Map2D n = salient::normalize_percentile(map_of(2, 2, {-4.f, 2.f, 0.f, 1.f}), false, 100);
    CHECK(n.data == std::vector<float>{0.f, 1.f, 0.f, 0.5f});
  }
  SECTION("signed: divide by the percentile of |v|, keep the sign") {
    const Map2D n = salient::normalize_percentile(map_of(2, 2, {-4.f, 2.f, 0.f, 1.f}), true, 100);
    CHECK(n.data == std::vector<float>{-1.f, 0.5f, 0.f, 0.25f});
    const Map2D clipped = salient::normalize_percentile(map_of(1, 3, {-8.f, 2.f, 1.f}), true, 50);
    CHECK(clipped.data == std::vector<float>{-1.f, 1.f, 0.5f});  // q = median(8, 2, 1) = 2
  }
  SECTION("all-zero maps give zeros, sparse maps fall back to the maximum") {
    const Map2D zeros =
        salient::normalize_percentile(map_of(3, 3, std::vector<float>(9, 0.f)), true);
    for (float v : zeros.data) CHECK(v == 0.f);
    std::vector<float> sparse(1000, 0.f);
    sparse[123] = 0.2f;
    const Map2D s = salient::normalize_percentile(map_of(10, 100, sparse), false);
    CHECK(s.data[123] == 1.f);
    CHECK(s.data[0] == 0.f);
  }
  SECTION("NaN becomes 0 and does not poison the scale") {
    const Map2D n = salient::normalize_percentile(
        map_of(1, 3, {std::numeric_limits<float>::quiet_NaN(), 2.f, 1.f}), false, 100);
    CHECK(n.data == std::vector<float>{0.f, 1.f, 0.5f});
  }
  SECTION("bad arguments") {
    CHECK_THROWS_AS(salient::normalize_percentile(map_of(1, 1, {1.f}), false, 0.0), salient::error);
    CHECK_THROWS_AS(salient::normalize_percentile(map_of(1, 1, {1.f}), false, 101.0),
                    salient::error);
    require_error_mentioning([] { salient::normalize_percentile(map_of(2, 2, {1.f}), false); },
                             "needs 4");
  }
}

TEST_CASE("colormaps", "[io][heatmap]") {
  const Map2D ramp = map_of(1, 3, {0.f, 0.5f, 1.f});
  SECTION("viridis matches matplotlib's table") {
    const Image v = salient::colorize(ramp, Colormap::viridis);
    REQUIRE(v.channels == 3);
    check_rgb(v, 0, 0, 0.267004f, 0.004874f, 0.329415f);
    check_rgb(v, 0, 2, 0.993248f, 0.906157f, 0.143936f);
    check_rgb(v, 0, 1, 0.127568f, 0.566949f, 0.550556f, 0.005);  // matplotlib's viridis(0.5)
  }
  SECTION("inferno endpoints") {
    const Image v = salient::colorize(ramp, Colormap::inferno);
    check_rgb(v, 0, 0, 0.001462f, 0.000466f, 0.013866f);
    check_rgb(v, 0, 2, 0.988362f, 0.998364f, 0.644924f);
  }
  SECTION("gray, and clamping outside [0, 1]") {
    const Image g = salient::colorize(map_of(1, 3, {0.25f, -3.f, 7.f}), Colormap::gray);
    check_rgb(g, 0, 0, 0.25f, 0.25f, 0.25f);
    check_rgb(g, 0, 1, 0.f, 0.f, 0.f);
    check_rgb(g, 0, 2, 1.f, 1.f, 1.f);
  }
  SECTION("diverging: -1 blue, 0 white, +1 red") {
    const Image d = salient::colorize(map_of(1, 4, {-1.f, 0.f, 1.f, 0.5f}), Colormap::diverging);
    check_rgb(d, 0, 0, 0.f, 0.f, 1.f);
    check_rgb(d, 0, 1, 1.f, 1.f, 1.f);
    check_rgb(d, 0, 2, 1.f, 0.f, 0.f);
    check_rgb(d, 0, 3, 1.f, 0.5f, 0.5f);
  }
  SECTION("parse_colormap") {
    CHECK(salient::parse_colormap("inferno") == Colormap::inferno);
    CHECK(salient::parse_colormap("grey") == Colormap::gray);
    require_error_mentioning([] { salient::parse_colormap("jet"); }, "'jet'");
  }
}

TEST_CASE("overlay", "[io][heatmap]") {
  Image photo(3, 2, 2);
  for (size_t i = 0; i < photo.data.size(); ++i) photo.data[i] = static_cast<float>(i) / 12.f;
  Image heat(3, 2, 2, 0.9f);
  heat.data[0] = 0.1f;
  CHECK(salient::overlay(photo, heat, 0.f).data == photo.data);
  CHECK(salient::overlay(photo, heat, 1.f).data == heat.data);
  const Image half = salient::overlay(photo, heat, 0.5f);
  CHECK(half.at(1, 1, 0) == Approx(0.5f * photo.at(1, 1, 0) + 0.45f));

  Image grey_photo(1, 2, 2, 0.2f);
  const Image g = salient::overlay(grey_photo, heat, 0.f);
  REQUIRE(g.channels == 3);
  for (float v : g.data) CHECK(v == Approx(0.2f));

  require_error_mentioning([&] { salient::overlay(photo, Image(3, 2, 3), 0.5f); }, "2x3");
  require_error_mentioning([&] { salient::overlay(photo, heat, 1.5f); }, "alpha");
  require_error_mentioning([&] { salient::overlay(Image(2, 2, 2), heat, 0.5f); }, "2 channels");

  SECTION("map overlay: opacity follows the magnitude") {
    const Map2D m = map_of(2, 2, {0.f, 1.f, -1.f, 0.5f});
    const Image o = salient::overlay(photo, m, Colormap::diverging, 0.8f);
    // Zero attribution shows the photo unchanged.
    check_rgb(o, 0, 0, photo.at(0, 0, 0), photo.at(1, 0, 0), photo.at(2, 0, 0));
    // Full positive: 0.2 photo + 0.8 red.
    check_rgb(o, 0, 1, 0.2f * photo.at(0, 0, 1) + 0.8f, 0.2f * photo.at(1, 0, 1),
              0.2f * photo.at(2, 0, 1));
    // Full negative: 0.2 photo + 0.8 blue.
    check_rgb(o, 1, 0, 0.2f * photo.at(0, 1, 0), 0.2f * photo.at(1, 1, 0),
              0.2f * photo.at(2, 1, 0) + 0.8f);
    require_error_mentioning([&] { salient::overlay(photo, map_of(1, 1, {0.f}), Colormap::gray); },
                             "1x1");
  }
}

TEST_CASE("resize a map to the photo", "[io][heatmap]") {
  const Map2D coarse = map_of(1, 2, {0.f, 1.f});
  const Map2D fine = salient::resize(coarse, 2, 4);
  REQUIRE(fine.height == 2);
  REQUIRE(fine.width == 4);
  CHECK(fine.at(1, 1) == Approx(0.25f));
  CHECK(fine.at(0, 2) == Approx(0.75f));
}

TEST_CASE("grid", "[io][heatmap]") {
  const Image a(3, 4, 5, 0.f), b(3, 2, 3, 0.5f), c(1, 4, 5, 0.25f);
  const Image g = salient::grid({a, b, c}, 2, 1, 1.f);
  // cells 4x5, 2 columns, 2 rows, padding 1 around every cell.
  CHECK(g.channels == 3);
  CHECK(g.height == 2 * (4 + 1) + 1);
  CHECK(g.width == 2 * (5 + 1) + 1);
  CHECK(g.at(0, 0, 0) == 1.f);    // padding
  CHECK(g.at(0, 1, 1) == 0.f);    // tile a top-left
  CHECK(g.at(2, 1, 7) == 0.5f);   // tile b top-left at (1, 1 + 5 + 1)
  CHECK(g.at(2, 3, 7) == 1.f);    // below tile b (it is only 2 high): background
  CHECK(g.at(1, 6, 1) == 0.25f);  // grey tile c, second row, repeated in every channel
  CHECK(g.at(1, 6, 7) == 1.f);    // empty last cell

  const Image one_row = salient::grid({a, a}, 5, 0);
  CHECK(one_row.height == 4);
  CHECK(one_row.width == 10);  // fewer tiles than columns: no empty columns
  CHECK(salient::grid({c}, 1, 2).channels == 1);

  require_error_mentioning([] { salient::grid({}, 2); }, "no tiles");
  require_error_mentioning([&] { salient::grid({a}, 0); }, "columns");
  require_error_mentioning([&] { salient::grid({a, Image(4, 2, 2)}, 2); }, "4 channels");
}
