// Line charts: layout, colours where the data says, readable text, clipping and bad input.
#include <algorithm>
#include <catch2/catch.hpp>

#include "error_matchers.hpp"
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "salient/io/plot.hpp"

using Catch::Matchers::Contains;
using salient::Image;
using salient::LineChartOptions;
using salient::Series;

namespace {
using salient::test::require_error_mentioning;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

using Color = salient::detail::plot::Color;
const Color& palette(size_t i) { return salient::detail::plot::kPalette[i]; }


float channel(const Image& im, int64_t c, int64_t y, int64_t x) {
  return im.data[static_cast<size_t>((c * im.height + y) * im.width + x)];
}

bool is_color(const Image& im, int64_t y, int64_t x, const Color& color) {
  for (int64_t c = 0; c < 3; ++c)
    if (std::abs(channel(im, c, y, x) - color[static_cast<size_t>(c)]) > 1e-6f) return false;
  return true;
}

bool is_dark(const Image& im, int64_t y, int64_t x) {
  return channel(im, 0, y, x) < 0.5f && channel(im, 1, y, x) < 0.5f && channel(im, 2, y, x) < 0.5f;
}

struct Box {
  int64_t count = 0, x0 = 0, y0 = 0, x1 = -1, y1 = -1;  // inclusive bounds
  double mean_y = 0;
};

// Where pixels satisfying `match` lie within rows [ry0, ry1) and columns [rx0, rx1).
template <class Match>
Box find(const Image& im, Match match, int64_t ry0 = 0, int64_t ry1 = -1, int64_t rx0 = 0,
         int64_t rx1 = -1) {
  if (ry1 < 0) ry1 = im.height;
  if (rx1 < 0) rx1 = im.width;
  Box b;
  b.x0 = im.width;
  b.y0 = im.height;
  double sum_y = 0;
  for (int64_t y = ry0; y < ry1; ++y)
    for (int64_t x = rx0; x < rx1; ++x)
      if (match(y, x)) {
        ++b.count;
        b.x0 = std::min(b.x0, x);
        b.x1 = std::max(b.x1, x);
        b.y0 = std::min(b.y0, y);
        b.y1 = std::max(b.y1, y);
        sum_y += static_cast<double>(y);
      }
  if (b.count > 0) b.mean_y = sum_y / static_cast<double>(b.count);
  return b;
}

Box find_color(const Image& im, const Color& color, int64_t ry0 = 0, int64_t ry1 = -1,
               int64_t rx0 = 0, int64_t rx1 = -1) {
  return find(
      im, [&](int64_t y, int64_t x) { return is_color(im, y, x, color); }, ry0, ry1, rx0, rx1);
}

Box find_dark(const Image& im, int64_t ry0 = 0, int64_t ry1 = -1, int64_t rx0 = 0,
              int64_t rx1 = -1) {
  return find(
      im, [&](int64_t y, int64_t x) { return is_dark(im, y, x); }, ry0, ry1, rx0, rx1);
}

// The plot frame's bottom edge: the lowest row that is dark across most of the width.
int64_t frame_bottom(const Image& im) {
  for (int64_t y = im.height - 1; y >= 0; --y) {
    int64_t dark = 0;
    for (int64_t x = 0; x < im.width; ++x) dark += is_dark(im, y, x) ? 1 : 0;
    if (dark > im.width / 2) return y;
  }
  return -1;
}

std::vector<double> ramp(size_t n, double from, double to) {
  std::vector<double> y(n);
  for (size_t i = 0; i < n; ++i)
    y[i] = from + (to - from) * static_cast<double>(i) / static_cast<double>(n - 1);
  return y;
}

void check_values_in_unit_range(const Image& im) {
  const auto outside = std::count_if(im.data.begin(), im.data.end(),
                                     [](float v) { return !(v >= 0.f && v <= 1.f); });
  CHECK(outside == 0);
}

}  // namespace

TEST_CASE("line_chart returns an RGB image of the requested size", "[plot]") {
  LineChartOptions options;
  options.width = 640;
  options.height = 360;
  const Image im = salient::line_chart({{"a", {0.1, 0.5, 0.3}}}, options);
  CHECK(im.channels == 3);
  CHECK(im.height == 360);
  CHECK(im.width == 640);
  REQUIRE(im.data.size() == size_t{3 * 360 * 640});
  check_values_in_unit_range(im);
  CHECK(is_color(im, 0, 0, {1.f, 1.f, 1.f}));  // white background

  const Image default_size = salient::line_chart({{"a", {1, 2}}});
  CHECK(default_size.width == 900);
  CHECK(default_size.height == 500);
}

TEST_CASE("line_chart draws each series in its colour where its values are", "[plot]") {
  // Unlabelled, so no legend: every pixel of these colours belongs to the data.
  const Image im = salient::line_chart({{"", ramp(10, 0, 1)}, {"", ramp(10, 1, 0)}});
  for (size_t s = 0; s < 2; ++s) {
    const Color& color = palette(s);
    const Box all = find_color(im, color);
    INFO("series " << s);
    REQUIRE(all.count > 100);
    CHECK(all.x1 - all.x0 > im.width / 2);  // spans the plot, both ways
    CHECK(all.y1 - all.y0 > im.height / 2);
    // Corners of the series' bounding box: a line rising left to right fills lower-left and
    // upper-right and leaves the other two empty; a falling one the reverse.
    const int64_t w3 = (all.x1 - all.x0) / 3, h3 = (all.y1 - all.y0) / 3;
    const int64_t upper_left =
        find_color(im, color, all.y0, all.y0 + h3, all.x0, all.x0 + w3).count;
    const int64_t lower_left =
        find_color(im, color, all.y1 - h3, all.y1 + 1, all.x0, all.x0 + w3).count;
    const int64_t upper_right =
        find_color(im, color, all.y0, all.y0 + h3, all.x1 - w3, all.x1 + 1).count;
    const int64_t lower_right =
        find_color(im, color, all.y1 - h3, all.y1 + 1, all.x1 - w3, all.x1 + 1).count;
    if (s == 0) {
      CHECK(lower_left > 0);
      CHECK(upper_right > 0);
      CHECK(upper_left == 0);
      CHECK(lower_right == 0);
    } else {
      CHECK(upper_left > 0);
      CHECK(lower_right > 0);
      CHECK(lower_left == 0);
      CHECK(upper_right == 0);
    }
  }
  // The two lines cross in the middle of the plot and share its extent.
  const Box rising = find_color(im, palette(0)), falling = find_color(im, palette(1));
  CHECK(std::abs(rising.x0 - falling.x0) <= 2);
  CHECK(std::abs(rising.x1 - falling.x1) <= 2);
}

TEST_CASE("line_chart places values on the y axis by value", "[plot]") {
  // Two flat series: the larger one is higher in the picture, at the matching fraction.
  LineChartOptions options;
  options.y_min = 0;
  options.y_max = 1;
  const Image im =
      salient::line_chart({{"", {0.25, 0.25, 0.25}}, {"", {0.75, 0.75, 0.75}}}, options);
  const Box low = find_color(im, palette(0)), high = find_color(im, palette(1));
  REQUIRE(low.count > 0);
  REQUIRE(high.count > 0);
  CHECK(high.mean_y < low.mean_y);
  // y = 0 is the frame's bottom, so 0.25 lies three times as far from it as 0.75... from 1.
  const auto bottom = static_cast<double>(frame_bottom(im));
  const double per_unit = (bottom - low.mean_y) / 0.25;
  CHECK(bottom - high.mean_y == Approx(0.75 * per_unit).margin(3));
}

TEST_CASE("line_chart renders the title, axis labels and tick labels as text", "[plot]") {
  LineChartOptions options;
  const Image plain = salient::line_chart({{"", {0, 1, 2}}}, options);
  options.title = "Sanity checks";
  const Image titled = salient::line_chart({{"", {0, 1, 2}}}, options);

  // Without a title nothing is drawn above the frame; with one, text of the title's width sits
  // there, centred-ish, drawn at twice the text scale.
  const int64_t title_band = 30;
  CHECK(find_dark(plain, 0, 8).count == 0);
  const Box title = find_dark(titled, 0, title_band);
  REQUIRE(title.count > 50);
  const int64_t width = salient::detail::plot::text_width("Sanity checks", 2);
  CHECK(title.x1 - title.x0 + 1 <= width);
  CHECK(title.x1 - title.x0 + 1 >= width - 8);
  CHECK(title.y1 - title.y0 + 1 >= 14);  // 7-dot capitals at scale 2
  CHECK(std::abs((title.x0 + title.x1) / 2 - titled.width / 2) < titled.width / 8);

  // A y label reads upwards at the left edge: a tall, narrow run of text.
  options.title.clear();
  options.y_label = "Spearman rank correlation";
  const Image labelled = salient::line_chart({{"", {0, 1, 2}}}, options);
  const Box y_label = find_dark(labelled, 0, labelled.height, 0, 8 + 10);
  REQUIRE(y_label.count > 50);
  CHECK(y_label.y1 - y_label.y0 + 1 >= salient::detail::plot::text_width(options.y_label, 1) - 4);
  CHECK(y_label.x1 - y_label.x0 + 1 <= 10);
  CHECK(find_dark(plain, 0, plain.height, 0, 8).count == 0);

  // A larger text scale makes text larger.
  options.y_label.clear();
  options.title = "T";
  options.text_scale = 3;
  const Image big = salient::line_chart({{"", {0, 1, 2}}}, options);
  const Box big_title = find_dark(big, 0, 4 + 12 + 7 * 6);
  CHECK(big_title.y1 - big_title.y0 + 1 == 7 * 6);
}

TEST_CASE("line_chart draws a legend with every labelled series' colour, in order", "[plot]") {
  // All values missing: no data is drawn, so every coloured pixel is the legend's.
  const std::vector<double> missing(5, kNaN);
  const std::vector<Series> series{
      {"Gradient", missing}, {"Integrated Gradients", missing}, {"Grad-CAM", missing}};
  const Image im = salient::line_chart(series);
  double previous_y = -1;
  for (size_t s = 0; s < series.size(); ++s) {
    INFO("series " << s);
    const Box box = find_color(im, palette(s));
    REQUIRE(box.count > 20);         // a sample line and a marker
    CHECK(box.x0 > im.width / 2);    // right of the plot
    CHECK(box.mean_y > previous_y);  // listed top to bottom in series order
    previous_y = box.mean_y;
  }
  // An unlabelled series is left out of the legend.
  const Image unlabelled = salient::line_chart({{"", missing}, {"shown", missing}});
  CHECK(find_color(unlabelled, palette(0)).count == 0);
  CHECK(find_color(unlabelled, palette(1)).count > 20);
}

TEST_CASE("line_chart uses distinct colours and marker shapes beyond ten series", "[plot]") {
  std::vector<Series> series;
  for (int i = 0; i < 12; ++i) series.push_back({"s" + std::to_string(i), ramp(4, i, i + 1)});
  const Image im = salient::line_chart(series);
  check_values_in_unit_range(im);
  for (size_t i = 0; i < 10; ++i) CHECK(find_color(im, palette(i)).count > 0);
  for (size_t i = 0; i < 10; ++i)
    for (size_t j = i + 1; j < 10; ++j) CHECK(palette(i) != palette(j));
  CHECK(salient::detail::plot::series_marker(10) != salient::detail::plot::series_marker(0));
}

TEST_CASE("line_chart leaves gaps at NaN and infinite values and never draws outside the plot",
          "[plot]") {
  SECTION("gaps") {
    // A point between two gaps still shows, as a marker; nothing joins it to its neighbours.
    const Image im = salient::line_chart({{"", {0.0, kNaN, 0.5, kInf, 1.0}}});
    const Box all = find_color(im, palette(0));
    REQUIRE(all.count > 0);
    const int64_t third = (all.x1 - all.x0) / 3;
    const Box middle = find_color(im, palette(0), 0, im.height, all.x0 + third, all.x1 - third);
    CHECK(middle.count > 0);
    CHECK(middle.count < 80);  // one marker, no lines
    CHECK(middle.x1 - middle.x0 <= 12);
  }
  SECTION("values far outside an explicit range are clipped to the frame") {
    LineChartOptions options;
    options.y_min = 0;
    options.y_max = 1;
    options.title = "clipped";
    const Image im = salient::line_chart(
        {{"", {1e308, -1e308, 0.5, -kInf, 40.0, -7.0, std::numeric_limits<double>::max()}}},
        options);
    check_values_in_unit_range(im);
    const Box data = find_color(im, palette(0));
    REQUIRE(data.count > 0);
    const int64_t bottom = frame_bottom(im);
    CHECK(data.y1 < bottom);      // not below the frame
    CHECK(data.y0 > 4 + 20 + 8);  // not in the title band above it
  }
  SECTION("all values missing, single points and extreme inputs") {
    CHECK(find_color(salient::line_chart({{"", {kNaN, kNaN}}}), palette(0)).count == 0);
    CHECK(find_color(salient::line_chart({{"", {kInf, -kInf}}}), palette(0)).count == 0);
    CHECK(find_color(salient::line_chart({{"", {0.3}}}), palette(0)).count > 0);
    CHECK(find_color(salient::line_chart({{"", {2.0, 2.0, 2.0}}}), palette(0)).count > 0);
    CHECK(find_color(salient::line_chart({{"", {1e-300, 2e-300}}}), palette(0)).count > 0);
    CHECK(find_color(salient::line_chart({{"", {1e300, -1e300}}}), palette(0)).count > 0);
    std::vector<double> many(20000);
    for (size_t i = 0; i < many.size(); ++i) many[i] = std::sin(static_cast<double>(i) * 0.01);
    check_values_in_unit_range(salient::line_chart({{"sine", many}}));
  }
  SECTION("odd text is drawn without reading outside the font") {
    LineChartOptions options;
    options.title = std::string("caf\xc3\xa9 \x01\x7f\n\ttab") + std::string(5000, 'W');
    options.x_label = std::string(3, '\0') + "x";
    options.x_ticks = {"\xff", std::string(10000, 'a')};
    const Image im = salient::line_chart({{std::string(300, '\x80'), {0, 1}}}, options);
    check_values_in_unit_range(im);
  }
  SECTION("tiny charts that still fit") {
    LineChartOptions options;
    options.width = 320;
    options.height = 220;
    options.title = "a title much wider than this small image";
    options.y_label = "y";
    options.x_label = "x";
    options.x_ticks = {"first.layer.name", "second.layer.name", "third"};
    const Image im = salient::line_chart({{"long legend label", {0, 1, 2}}}, options);
    CHECK(im.width == 320);
    CHECK(im.height == 220);
    check_values_in_unit_range(im);
  }
}

TEST_CASE("line_chart keeps long x tick labels apart by turning and thinning them", "[plot]") {
  std::vector<std::string> layers;
  for (int i = 0; i < 14; ++i) layers.push_back("features." + std::to_string(i) + ".conv.3");
  const std::vector<double> values = ramp(14, 1, 0);
  LineChartOptions options;
  options.x_ticks = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n"};
  const int64_t short_bottom = frame_bottom(salient::line_chart({{"", values}}, options));

  // Groups of columns with text below the axis (tick marks excluded), letting gaps of up to 3
  // columns (between letters) join: one group per label, and a group no wider than one line of
  // text means the label stands vertically and nothing overlaps.
  const auto label_groups = [](const Image& im, std::vector<int64_t>& widths) {
    const int64_t top = frame_bottom(im) + 6;  // below the 5-pixel tick marks
    widths.clear();
    int64_t start = -1, last_ink = -100;
    for (int64_t x = 0; x < im.width; ++x) {
      if (find_dark(im, top, im.height, x, x + 1).count == 0) continue;
      if (x - last_ink > 4) {
        if (start >= 0) widths.push_back(last_ink - start + 1);
        start = x;
      }
      last_ink = x;
    }
    if (start >= 0) widths.push_back(last_ink - start + 1);
    return static_cast<int64_t>(widths.size());
  };

  options.x_ticks = layers;
  const Image wide = salient::line_chart({{"", values}}, options);
  std::vector<int64_t> widths;
  CHECK(label_groups(wide, widths) == 14);
  for (int64_t w : widths) CHECK(w <= 10);
  // Vertical labels need a taller strip under the plot.
  CHECK(frame_bottom(wide) < short_bottom - 40);

  // Too narrow for all 14 even when turned: every other one (or fewer) is shown, still apart.
  options.width = 180;
  options.height = 300;
  const Image narrow = salient::line_chart({{"", values}}, options);
  const int64_t shown = label_groups(narrow, widths);
  CHECK(shown >= 2);
  CHECK(shown < 14);
  for (int64_t w : widths) CHECK(w <= 10);

  // Numbered positions stay horizontal and are thinned to a round stride.
  LineChartOptions numbered;
  numbered.width = 300;
  const Image many = salient::line_chart({{"", ramp(200, 0, 1)}}, numbered);
  const int64_t groups = label_groups(many, widths);
  CHECK(groups >= 3);
  CHECK(groups <= 12);
}

TEST_CASE("line_chart rejects bad input with salient::error", "[plot]") {
  using salient::line_chart;
  require_error_mentioning([] { line_chart({}); }, "no series");
  require_error_mentioning([] { line_chart({{"a", {}}}); }, "no values");
  require_error_mentioning([] { line_chart({{"a", {1, 2, 3}}, {"b", {1, 2}}}); }, "'b') has 2");
  LineChartOptions options;
  options.x_ticks = {"only one"};
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "x_ticks");

  options = {};
  options.width = 10;
  options.height = 10;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "plot area");
  options.width = 0;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "image size");
  options.width = 900;
  options.height = -5;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "image size");
  options.height = 1 << 20;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "image size");

  options = {};
  options.text_scale = 0;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "text_scale");
  options.text_scale = 9;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "text_scale");

  options = {};
  options.y_min = 1;
  options.y_max = 1;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "y_min < y_max");
  options.y_min = kNaN;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "finite");
  options.y_min = -1e308;
  options.y_max = 1e308;
  require_error_mentioning([&] { line_chart({{"a", {1, 2}}}, options); }, "too wide");
  options = {};
  require_error_mentioning([&] { line_chart({{"a", {-1e308, 1e308}}}, options); }, "too wide");

  // A single bound beyond the data is fine: the other side keeps the data's span.
  options = {};
  options.y_min = 5;
  CHECK(line_chart({{"a", {1, 2}}}, options).width == 900);
}
