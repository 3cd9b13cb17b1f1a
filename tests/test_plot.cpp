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

// ---- bar charts --------------------------------------------------------------------------------

namespace {
using salient::Bar;
using salient::BarChartOptions;
using salient::RankGridOptions;

// The plot frame's top edge: the highest row that is dark across most of the width.
int64_t frame_top(const Image& im) {
  for (int64_t y = 0; y < im.height; ++y) {
    int64_t dark = 0;
    for (int64_t x = 0; x < im.width; ++x) dark += is_dark(im, y, x) ? 1 : 0;
    if (dark > im.width / 2) return y;
  }
  return -1;
}

// The row of value v in a frame from `top` (value 1) to `bottom` (value 0), as the chart rounds.
int64_t row_of(double v, int64_t top, int64_t bottom) {
  return static_cast<int64_t>(
      std::llround(static_cast<double>(bottom) - v * static_cast<double>(bottom - top)));
}

BarChartOptions unit_range() {
  BarChartOptions options;
  options.y_min = 0;
  options.y_max = 1;
  return options;
}
}  // namespace

TEST_CASE("bar_chart returns an RGB image of the requested size", "[plot][bar_chart]") {
  BarChartOptions options;
  options.width = 640;
  options.height = 360;
  const Image im = salient::bar_chart({{"a", 0.3}, {"b", 0.6, 0.5, 0.7}}, options);
  CHECK(im.channels == 3);
  CHECK(im.height == 360);
  CHECK(im.width == 640);
  REQUIRE(im.data.size() == size_t{3 * 360 * 640});
  check_values_in_unit_range(im);
  CHECK(is_color(im, 0, 0, {1.f, 1.f, 1.f}));

  const Image default_size = salient::bar_chart({{"a", 1}});
  CHECK(default_size.width == 900);
  CHECK(default_size.height == 500);
}

TEST_CASE("bar_chart draws each bar in its colour from the zero line up to its value",
          "[plot][bar_chart]") {
  const std::vector<double> values{0.25, 0.75, 0.5};
  const Image im = salient::bar_chart({{"", values[0]}, {"", values[1]}, {"", values[2]}},
                                      unit_range());
  const int64_t top = frame_top(im), bottom = frame_bottom(im);
  REQUIRE(top >= 0);
  REQUIRE(bottom > top + 100);
  std::vector<Box> boxes;
  for (size_t i = 0; i < values.size(); ++i) {
    INFO("bar " << i);
    const Box box = find_color(im, palette(i));
    REQUIRE(box.count > 100);
    // Rows from just under the value's row down to the zero line (the frame's bottom).
    CHECK(std::abs(box.y0 - row_of(values[i], top, bottom)) <= 1);
    CHECK(box.y1 == bottom - 1);
    const int64_t xc = (box.x0 + box.x1) / 2;
    for (int64_t y = row_of(values[i], top, bottom) + 1; y < bottom; ++y)
      if (!is_color(im, y, xc, palette(i)))
        FAIL("row " << y << " of bar " << i << " is not its colour");
    CHECK_FALSE(is_color(im, row_of(values[i], top, bottom) - 2, xc, palette(i)));
    // Solid: the bounding box is filled.
    CHECK(box.count == (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1));
    boxes.push_back(box);
  }
  // Left to right in order, equally wide; a taller value gives a proportionally taller bar.
  CHECK(boxes[0].x1 < boxes[1].x0);
  CHECK(boxes[1].x1 < boxes[2].x0);
  CHECK(std::abs((boxes[0].x1 - boxes[0].x0) - (boxes[1].x1 - boxes[1].x0)) <= 1);
  const auto height = [](const Box& b) { return static_cast<double>(b.y1 - b.y0 + 1); };
  CHECK(height(boxes[1]) > height(boxes[2]));
  CHECK(height(boxes[2]) > height(boxes[0]));
  CHECK(height(boxes[1]) == Approx(3 * height(boxes[0])).margin(2));
}

TEST_CASE("bar_chart grows negative bars down from the zero line and clips to an explicit range",
          "[plot][bar_chart]") {
  SECTION("positive and negative bars meet at the zero line") {
    const Image im = salient::bar_chart({{"", 0.5}, {"", -0.5}});
    const Box up = find_color(im, palette(0)), down = find_color(im, palette(1));
    REQUIRE(up.count > 100);
    REQUIRE(down.count > 100);
    // Default range: [-0.5, 0.5] plus 5% each side, so zero sits half way down the frame.
    const int64_t top = frame_top(im), bottom = frame_bottom(im);
    CHECK(std::abs(up.y1 + 1 - (top + bottom) / 2) <= 1);
    CHECK(down.y0 - up.y1 <= 3);  // only the 1-pixel ink zero line between them
    CHECK(down.y0 > up.y1);
    CHECK(std::abs((up.y1 - up.y0) - (down.y1 - down.y0)) <= 2);
    CHECK(is_dark(im, up.y1 + 1, (up.x0 + up.x1) / 2));  // the zero line
  }
  SECTION("all positive: no room below zero by default") {
    const Image im = salient::bar_chart({{"", 2.0}, {"", 1.0}});
    const Box box = find_color(im, palette(0));
    CHECK(box.y1 == frame_bottom(im) - 1);
    // 2.0 plus a 5% margin of the [0, 2] span: the bar fills 2 / 2.1 of the frame's height.
    const double frame_h = static_cast<double>(frame_bottom(im) - frame_top(im));
    CHECK(static_cast<double>(box.y1 - box.y0 + 1) == Approx(frame_h * 2 / 2.1).margin(2));
  }
  SECTION("0 outside an explicit range: bars start at the axis bottom") {
    BarChartOptions options;
    options.y_min = 0.5;
    options.y_max = 1.0;
    const Image im = salient::bar_chart({{"", 0.75}, {"", 3.0}, {"", 0.2}}, options);
    const int64_t top = frame_top(im), bottom = frame_bottom(im);
    const Box half = find_color(im, palette(0)), over = find_color(im, palette(1));
    CHECK(half.y1 == bottom - 1);
    CHECK(std::abs(half.y0 - row_of(0.5, top, bottom)) <= 1);  // 0.75 is half way up
    CHECK(over.y0 == top + 1);                                 // clipped to the frame
    CHECK(over.y1 == bottom - 1);
    CHECK(find_color(im, palette(2)).count == 0);  // below the range: nothing shows
  }
}

TEST_CASE("bar_chart draws error bars in ink from low to high", "[plot][bar_chart]") {
  const Image im = salient::bar_chart({{"", 0.5, 0.2, 0.9}, {"", 0.6}}, unit_range());
  const int64_t top = frame_top(im), bottom = frame_bottom(im);
  const Box bar = find_color(im, palette(0)), plain = find_color(im, palette(1));
  REQUIRE(bar.count > 100);
  const Box ink = find_dark(im, top + 1, bottom, bar.x0, bar.x1 + 1);
  REQUIRE(ink.count > 0);
  // The line with its caps (2 pixels thick, centred on the end rows) spans low..high.
  CHECK(std::abs(ink.y0 - row_of(0.9, top, bottom)) <= 1);
  CHECK(std::abs(ink.y1 - row_of(0.2, top, bottom)) <= 1);
  // Centred on the bar, narrower than it, and capped: wider at the ends than in the middle.
  CHECK(std::abs((ink.x0 + ink.x1) / 2 - (bar.x0 + bar.x1) / 2) <= 1);
  CHECK(ink.x1 - ink.x0 < bar.x1 - bar.x0);
  const int64_t mid = row_of(0.55, top, bottom);
  const Box middle = find_dark(im, mid - 2, mid + 3, bar.x0, bar.x1 + 1);
  const Box cap = find_dark(im, ink.y0, ink.y0 + 2, bar.x0, bar.x1 + 1);
  CHECK(middle.x1 - middle.x0 + 1 == 2);
  CHECK(cap.x1 - cap.x0 > 3 * (middle.x1 - middle.x0 + 1));
  // A bar without an interval has no ink over it.
  CHECK(find_dark(im, top + 1, bottom, plain.x0, plain.x1 + 1).count == 0);
}

TEST_CASE("bar_chart leaves an empty slot marked n/a for a NaN value", "[plot][bar_chart]") {
  const Image im =
      salient::bar_chart({{"a", 0.5}, {"b", kNaN, 0.1, 0.9}, {"c", 0.7}}, unit_range());
  CHECK(find_color(im, palette(1)).count == 0);
  const Box a = find_color(im, palette(0)), c = find_color(im, palette(2));
  REQUIRE(a.count > 0);
  REQUIRE(c.count > 0);
  // In the empty slot, inside the frame: a short "n/a" just above the zero line, no error bar.
  const int64_t top = frame_top(im), bottom = frame_bottom(im);
  const Box text = find_dark(im, top + 1, bottom, a.x1 + 1, c.x0);
  REQUIRE(text.count > 5);
  CHECK(text.y1 - text.y0 + 1 <= 7);
  CHECK(text.y1 < bottom);
  CHECK(bottom - text.y1 <= 6);
  CHECK(text.x1 - text.x0 + 1 <= salient::detail::plot::text_width("n/a", 1));
  // All missing: nothing coloured at all, and no error.
  const Image none = salient::bar_chart({{"a", kNaN}, {"b", kNaN}});
  for (size_t i = 0; i < 2; ++i) CHECK(find_color(none, palette(i)).count == 0);
}

TEST_CASE("bar_chart labels the bars, turning long labels, and notes the better direction",
          "[plot][bar_chart]") {
  SECTION("short labels side by side under their bars") {
    const Image im = salient::bar_chart({{"IG", 1}, {"CAM", 2}}, unit_range());
    const int64_t bottom = frame_bottom(im);
    for (size_t i = 0; i < 2; ++i) {
      const Box bar = find_color(im, palette(i));
      const Box label = find_dark(im, bottom + 7, im.height, bar.x0, bar.x1 + 1);
      REQUIRE(label.count > 10);
      CHECK(label.y1 - label.y0 + 1 <= 7);  // one horizontal line of text
      CHECK(std::abs((label.x0 + label.x1) / 2 - (bar.x0 + bar.x1) / 2) <= 3);
    }
  }
  SECTION("long labels are drawn vertically under their bars") {
    std::vector<Bar> bars;
    for (int i = 0; i < 8; ++i)
      bars.push_back({"Integrated Gradients variant " + std::to_string(i), 0.1 * (i + 1)});
    const Image im = salient::bar_chart(bars);
    const int64_t bottom = frame_bottom(im);
    for (size_t i = 0; i < bars.size(); ++i) {
      INFO("bar " << i);
      const Box bar = find_color(im, palette(i));
      const Box label = find_dark(im, bottom + 7, im.height, bar.x0, bar.x1 + 1);
      REQUIRE(label.count > 10);
      CHECK(label.x1 - label.x0 + 1 <= 10);
      CHECK(label.y1 - label.y0 + 1 >= salient::detail::plot::text_width(bars[i].label, 1) - 6);
    }
  }
  SECTION("higher / lower is better under the title") {
    BarChartOptions options;
    options.title = "Faithfulness";
    const Image plain = salient::bar_chart({{"a", 1}}, options);
    CHECK(find_color(plain, salient::detail::plot::kNote).count == 0);
    options.higher_is_better = true;
    const Image higher = salient::bar_chart({{"a", 1}}, options);
    options.higher_is_better = false;
    const Image lower = salient::bar_chart({{"a", 1}}, options);
    const Box up = find_color(higher, salient::detail::plot::kNote);
    const Box down = find_color(lower, salient::detail::plot::kNote);
    REQUIRE(up.count > 20);
    REQUIRE(down.count > 20);
    // The note's own text, at the label scale, between the title and the frame.
    CHECK(up.x1 - up.x0 + 1 <= salient::detail::plot::text_width("higher is better", 1));
    CHECK(up.x1 - up.x0 + 1 >= salient::detail::plot::text_width("higher is better", 1) - 4);
    CHECK(down.x1 - down.x0 + 1 <= salient::detail::plot::text_width("lower is better", 1));
    CHECK(down.x1 - down.x0 + 1 >= salient::detail::plot::text_width("lower is better", 1) - 4);
    const Box title = find_dark(higher, 0, up.y0, 0, higher.width);
    REQUIRE(title.count > 50);
    CHECK(title.y1 < up.y0);
    CHECK(up.y1 < frame_top(higher));
  }
}

TEST_CASE("bar_chart rejects bad input with salient::error", "[plot][bar_chart]") {
  using salient::bar_chart;
  require_error_mentioning([] { bar_chart({}); }, "no bars");
  require_error_mentioning([] { bar_chart(std::vector<Bar>(4097, Bar{"a", 1})); }, "at most 4096");
  require_error_mentioning([] { bar_chart({{"a", 1}, {"b", kInf}}); }, "bar 1 ('b') has value inf");
  require_error_mentioning([] { bar_chart({{"a", 1, 0, kInf}}); }, "finite ends");
  require_error_mentioning([] { bar_chart({{"a", 1, kNaN, 2}}); }, "both NaN");
  require_error_mentioning([] { bar_chart({{"a", 1, 2, 0.5}}); }, "low = 2 above high = 0.5");
  require_error_mentioning([] { bar_chart(std::vector<Bar>(1000, Bar{"a", 1})); },
                           "3 pixels per bar");
  BarChartOptions options;
  options.text_scale = 9;
  require_error_mentioning([&] { bar_chart({{"a", 1}}, options); }, "text_scale");
  options = {};
  options.width = 0;
  require_error_mentioning([&] { bar_chart({{"a", 1}}, options); }, "image size");
  options.width = 20;
  options.height = 20;
  require_error_mentioning([&] { bar_chart({{"a", 1}}, options); }, "plot area");
  options = {};
  options.y_max = kInf;
  require_error_mentioning([&] { bar_chart({{"a", 1}}, options); }, "finite");
  options.y_min = 1;
  options.y_max = 0;
  require_error_mentioning([&] { bar_chart({{"a", 1}}, options); }, "y_min < y_max");
  options = {};
  require_error_mentioning([&] { bar_chart({{"a", -1e308}, {"b", 1e308}}, options); }, "too wide");
}

// ---- rank grids --------------------------------------------------------------------------------

namespace {
// Cells drawn with a fixed size: the grid is the bounding box of the non-white, non-ink pixels;
// metric cell (r, c) starts at (x0 + c * w, y0 + r * h), the mean column ends at x1.
struct Grid {
  int64_t x0, y0, x1, y1, w, h;
  int64_t cell_x(size_t c) const { return x0 + static_cast<int64_t>(c) * w; }
  int64_t cell_y(size_t r) const { return y0 + static_cast<int64_t>(r) * h; }
  int64_t mean_x() const { return x1 + 1 - w; }
};

Grid find_grid(const Image& im, int64_t w, int64_t h) {
  const Box box = find(im, [&](int64_t y, int64_t x) {
    return !is_dark(im, y, x) && !is_color(im, y, x, {1.f, 1.f, 1.f});
  });
  return {box.x0, box.y0, box.x1, box.y1, w, h};
}

const Color& best() { return salient::detail::plot::kRankBest; }
const Color& worst() { return salient::detail::plot::kRankWorst; }

RankGridOptions fixed_cells() {
  RankGridOptions options;
  options.cell_width = 60;
  options.cell_height = 30;
  return options;
}
}  // namespace

TEST_CASE("rank_grid shades each cell by its rank within its column", "[plot][rank_grid]") {
  // Column m1: ranks 1, 2, 3; column m2: 3, 1, 2 (worst 3). Means: 2, 1.5, 2.5 (worst 2.5).
  const Image im = salient::rank_grid({"A", "B", "C"}, {"m1", "m2"}, {{1, 3}, {2, 1}, {3, 2}},
                                      fixed_cells());
  check_values_in_unit_range(im);
  const Grid g = find_grid(im, 60, 30);
  CHECK(g.y1 - g.y0 + 1 == 3 * 30 - 1);   // three rows, the last seam is white
  CHECK(g.x1 - g.x0 + 1 > 3 * 60 - 1);    // two metric columns and the mean column, apart
  CHECK(g.x1 - g.x0 + 1 < 3 * 60 + 60);
  const auto corner = [&](size_t r, int64_t x) { return std::pair{g.cell_y(r) + 2, x + 2}; };
  const auto color_at = [&](size_t r, int64_t x, const Color& c) {
    const auto [y, xx] = corner(r, x);
    return is_color(im, y, xx, c);
  };
  CHECK(color_at(0, g.cell_x(0), best()));
  CHECK(color_at(1, g.cell_x(1), best()));
  CHECK(color_at(2, g.cell_x(0), worst()));
  CHECK(color_at(0, g.cell_x(1), worst()));
  CHECK(color_at(2, g.mean_x(), worst()));  // 2.5 is the mean column's worst
  // Rank 2 of 3 lies half way between; mean 1.5 of worst 2.5 a third of the way.
  for (size_t k = 0; k < 3; ++k) {
    const auto [y, x] = corner(1, g.cell_x(0));
    CHECK(channel(im, static_cast<int64_t>(k), y, x) ==
          Approx((best()[k] + worst()[k]) / 2).margin(1e-6));
    const auto [ym, xm] = corner(1, g.mean_x());
    CHECK(channel(im, static_cast<int64_t>(k), ym, xm) ==
          Approx(best()[k] * 2 / 3 + worst()[k] / 3).margin(1e-6));
  }
  // The cells with each colour: rank 1 twice, the worst three times.
  CHECK(find_color(im, best()).count > 2 * 50 * 20);
  CHECK(find_color(im, best()).count < 2 * 60 * 30);
}

TEST_CASE("rank_grid writes the ranks, row labels and column headers", "[plot][rank_grid]") {
  namespace p = salient::detail::plot;
  const std::vector<std::vector<double>> ranks{{1, 2.5}, {2, 2.5}};
  const Image im = salient::rank_grid({"Saliency", "Grad-CAM"}, {"m1", "m2"}, ranks, fixed_cells());
  const Grid g = find_grid(im, 60, 30);
  // Each cell's text, centred in it: "1", "2.5", "2", "2.5", and the means "1.75", "2.25".
  const std::vector<std::vector<std::string>> texts{{"1", "2.5", "1.75"}, {"2", "2.5", "2.25"}};
  for (size_t r = 0; r < 2; ++r)
    for (size_t c = 0; c < 3; ++c) {
      INFO("cell " << r << ", " << c << ": " << texts[r][c]);
      const int64_t x = c < 2 ? g.cell_x(c) : g.mean_x(), y = g.cell_y(r);
      const Box ink = find_dark(im, y, y + 29, x, x + 59);
      REQUIRE(ink.count > 5);
      CHECK(ink.y1 - ink.y0 + 1 == 7);
      CHECK(ink.x1 - ink.x0 + 1 <= p::text_width(texts[r][c], 1));
      CHECK(ink.x1 - ink.x0 + 1 >= p::text_width(texts[r][c], 1) - 3);
      CHECK(std::abs((ink.x0 + ink.x1) / 2 - (x + 29)) <= 3);
      CHECK(std::abs((ink.y0 + ink.y1) / 2 - (y + 14)) <= 2);
    }
  // Row labels left of their rows, headers above their columns, horizontal when they fit.
  for (size_t r = 0; r < 2; ++r) {
    const Box label = find_dark(im, g.cell_y(r), g.cell_y(r) + 29, 0, g.x0);
    REQUIRE(label.count > 10);
    CHECK(label.x1 - label.x0 + 1 >= p::text_width(r == 0 ? "Saliency" : "Grad-CAM", 1) - 4);
  }
  for (size_t c = 0; c < 3; ++c) {
    const int64_t x = c < 2 ? g.cell_x(c) : g.mean_x();
    const Box header = find_dark(im, 0, g.y0, x, x + 59);
    REQUIRE(header.count > 5);
    if (c < 2) CHECK(header.y1 - header.y0 + 1 <= 10);  // "m1", "m2" fit side by side
  }
  // "mean rank" is wider than a 40-pixel cell: every header then stands vertically.
  RankGridOptions narrow = fixed_cells();
  narrow.cell_width = 40;
  const Image turned = salient::rank_grid({"a"}, {"m1", "m2"}, {{1, 2}}, narrow);
  const Grid t = find_grid(turned, 40, 30);
  const Box mean_header = find_dark(turned, 0, t.y0, t.mean_x(), t.x1 + 1);
  REQUIRE(mean_header.count > 10);
  CHECK(mean_header.x1 - mean_header.x0 + 1 <= 10);
  CHECK(mean_header.y1 - mean_header.y0 + 1 >= p::text_width("mean rank", 1) - 4);
}

TEST_CASE("rank_grid's mean column averages the finite ranks; NaN cells are grey with a dash",
          "[plot][rank_grid]") {
  namespace p = salient::detail::plot;
  // Row A: {1, NaN} -> mean 1 (best); row B: {2, 1} -> 1.5; row C: all NaN -> no mean.
  const Image im = salient::rank_grid({"A", "B", "C"}, {"m1", "m2"},
                                      {{1, kNaN}, {2, 1}, {kNaN, kNaN}}, fixed_cells());
  const Grid g = find_grid(im, 60, 30);
  CHECK(is_color(im, g.cell_y(0) + 2, g.mean_x() + 2, best()));
  CHECK(is_color(im, g.cell_y(1) + 2, g.mean_x() + 2, worst()));
  // Row A's mean reads "1" (over its one finite rank), row B's "1.5".
  for (size_t r = 0; r < 2; ++r) {
    const Box ink = find_dark(im, g.cell_y(r), g.cell_y(r) + 29, g.mean_x(), g.x1 + 1);
    const std::string text = r == 0 ? "1" : "1.5";
    INFO("row " << r);
    CHECK(ink.x1 - ink.x0 + 1 <= p::text_width(text, 1));
    CHECK(ink.x1 - ink.x0 + 1 >= p::text_width(text, 1) - 3);
  }
  CHECK(is_color(im, g.cell_y(0) + 2, g.cell_x(1) + 2, p::kRankMissing));
  CHECK(is_color(im, g.cell_y(2) + 2, g.cell_x(0) + 2, p::kRankMissing));
  CHECK(is_color(im, g.cell_y(2) + 2, g.mean_x() + 2, p::kRankMissing));
  // "-": a short ink dash in the middle of a missing cell.
  const Box dash = find_dark(im, g.cell_y(2), g.cell_y(2) + 29, g.cell_x(0), g.cell_x(0) + 59);
  REQUIRE(dash.count > 0);
  CHECK(dash.y1 - dash.y0 + 1 <= 2);
  CHECK(dash.x1 - dash.x0 + 1 <= 6);
  // Without the mean column the grid ends after the metrics.
  RankGridOptions options = fixed_cells();
  options.mean_column = false;
  const Image plain = salient::rank_grid({"A", "B", "C"}, {"m1", "m2"},
                                         {{1, kNaN}, {2, 1}, {kNaN, kNaN}}, options);
  const Grid pg = find_grid(plain, 60, 30);
  CHECK(pg.x1 - pg.x0 + 1 == 2 * 60 - 1);
  CHECK(plain.width < im.width - 60);
  CHECK(plain.height == im.height);
}

TEST_CASE("rank_grid sizes the image from the counts", "[plot][rank_grid]") {
  RankGridOptions options = fixed_cells();
  options.mean_column = false;
  const Image two = salient::rank_grid({"a", "b"}, {"m"}, {{1}, {2}}, options);
  const Image four = salient::rank_grid({"a", "b", "c", "d"}, {"m"}, {{1}, {2}, {3}, {4}}, options);
  const Image wide =
      salient::rank_grid({"a", "b"}, {"m", "n", "o"}, {{1, 1, 1}, {2, 2, 2}}, options);
  CHECK(four.height - two.height == 2 * 30);
  CHECK(four.width == two.width);
  CHECK(wide.width - two.width == 2 * 60);
  // From the text: a larger scale makes a larger figure; a title widens a narrow one.
  const Image small = salient::rank_grid({"a"}, {"m"}, {{1}});
  RankGridOptions big;
  big.text_scale = 2;
  const Image large = salient::rank_grid({"a"}, {"m"}, {{1}}, big);
  CHECK(large.width > small.width);
  CHECK(large.height > small.height);
  big.title = "A long title for a one-cell table";
  const Image titled = salient::rank_grid({"a"}, {"m"}, {{1}}, big);
  CHECK(titled.width >= salient::detail::plot::text_width(big.title, 4));
  check_values_in_unit_range(titled);
}

TEST_CASE("rank_grid rejects bad input with salient::error", "[plot][rank_grid]") {
  using salient::rank_grid;
  require_error_mentioning([] { rank_grid({}, {"m"}, {}); }, "at least one");
  require_error_mentioning([] { rank_grid({"a"}, {}, {{}}); }, "at least one");
  require_error_mentioning(
      [] {
        rank_grid(std::vector<std::string>(201, "r"), {"m"},
                  std::vector<std::vector<double>>(201, {1.0}));
      },
      "at most 200");
  require_error_mentioning([] { rank_grid({"a", "b"}, {"m"}, {{1}}); }, "1 rows of ranks for 2");
  require_error_mentioning([] { rank_grid({"a", "b"}, {"m"}, {{1}, {1, 2}}); },
                           "row 1 ('b') has 2 ranks for 1 columns");
  require_error_mentioning([] { rank_grid({"a"}, {"m"}, {{0}}); }, "rank 0 at row 0");
  require_error_mentioning([] { rank_grid({"a"}, {"m"}, {{kInf}}); }, "rank inf");
  RankGridOptions options;
  options.text_scale = 0;
  require_error_mentioning([&] { rank_grid({"a"}, {"m"}, {{1}}, options); }, "text_scale");
  options = {};
  options.cell_width = 2;
  require_error_mentioning([&] { rank_grid({"a"}, {"m"}, {{1}}, options); }, "cell size");
  options.cell_width = 0;
  options.cell_height = 5000;
  require_error_mentioning([&] { rank_grid({"a"}, {"m"}, {{1}}, options); }, "cell size");
  // 200 rows of 30-pixel cells need a 6000-pixel-tall image.
  options.cell_height = 30;
  require_error_mentioning(
      [&] {
        rank_grid(std::vector<std::string>(200, "r"), {"m"},
                  std::vector<std::vector<double>>(200, {1.0}), options);
      },
      "more than 4096x4096");
}
