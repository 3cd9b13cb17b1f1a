#pragma once
// Simple charts drawn straight into a salient::Image, without a plotting library:
//  - line_chart: e.g. "rank correlation vs randomised layer, one line per method"
//    (model-parameter randomisation test);
//  - bar_chart: one bar per method for one metric, with optional error bars (e.g. a 95%
//    interval) and a "higher/lower is better" note;
//  - rank_grid: a methods x metrics table of ranks (1 = best), each cell shaded by its rank
//    within its column, with an optional mean-rank column.
// Text uses stb_easy_font (ASCII quads), rasterised here at an integer scale; long tick labels
// and column headers are drawn rotated by 90 degrees (and tick labels thinned) so they never
// overlap.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/io/image.hpp"

// stb_easy_font is all static functions and data, so it compiles into each TU without clashes
// (and keeps a TU's own copy if it included the header first).
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
#if __has_include(<stb_easy_font.h>)
#include <stb_easy_font.h>
#else
#include <stb/stb_easy_font.h>
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace salient {

// One line of a chart. All series share the x positions 0..n-1; a NaN or infinite value leaves
// a gap. A series with an empty label is drawn but left out of the legend.
struct Series {
  std::string label;
  std::vector<double> y;
};

struct LineChartOptions {
  std::string title, x_label, y_label;
  // One label per x position (e.g. layer names); empty: the positions are numbered 0..n-1.
  // Labels that do not fit side by side are drawn vertically, and every k-th only if need be.
  std::vector<std::string> x_ticks;
  // The y axis range; by default the finite data's range plus a 5% margin.
  std::optional<double> y_min, y_max;
  int64_t width = 900, height = 500;
  // Pixel size of the 5x7 font's dots for labels (1..8); the title is drawn twice as large.
  int text_scale = 1;
};

// One bar of a bar chart: a method's score on one metric. low/high: an error bar (e.g. a 95%
// interval), both NaN for none. A NaN value leaves an empty slot marked "n/a" (the method has
// no score); its error bar, if any, is not drawn.
struct Bar {
  std::string label;
  double value = std::numeric_limits<double>::quiet_NaN();
  double low = std::numeric_limits<double>::quiet_NaN();
  double high = std::numeric_limits<double>::quiet_NaN();
};

struct BarChartOptions {
  std::string title, y_label;
  // The y axis range; by default the finite values and error bar ends, and 0, plus a 5% margin
  // (none below 0 when nothing is negative, none above when nothing is positive).
  std::optional<double> y_min, y_max;
  int64_t width = 900, height = 500;
  // Pixel size of the 5x7 font's dots for labels (1..8); the title is drawn twice as large.
  int text_scale = 1;
  // When set, a note under the title says "higher is better" or "lower is better".
  std::optional<bool> higher_is_better;
};

struct RankGridOptions {
  std::string title;
  // A last column with each row's mean over its finite ranks.
  bool mean_column = true;
  // Cell size in pixels (4..1024); 0: from the text size.
  int64_t cell_width = 0, cell_height = 0;
  // Pixel size of the 5x7 font's dots for labels (1..8); the title is drawn twice as large.
  int text_scale = 1;
};

namespace detail::plot {

using Color = std::array<float, 3>;

// matplotlib's tab10: distinct, colour-blind-friendlier than primaries, familiar from papers.
inline constexpr std::array<Color, 10> kPalette{{
    {0.122f, 0.467f, 0.706f},
    {1.000f, 0.498f, 0.055f},
    {0.173f, 0.627f, 0.173f},
    {0.839f, 0.153f, 0.157f},
    {0.580f, 0.404f, 0.741f},
    {0.549f, 0.337f, 0.294f},
    {0.890f, 0.467f, 0.761f},
    {0.498f, 0.498f, 0.498f},
    {0.737f, 0.741f, 0.133f},
    {0.090f, 0.745f, 0.812f},
}};
inline constexpr Color kBackground{1.f, 1.f, 1.f};
inline constexpr Color kInk{0.1f, 0.1f, 0.1f};
inline constexpr Color kGrid{0.88f, 0.88f, 0.88f};
inline constexpr Color kLegendBorder{0.75f, 0.75f, 0.75f};
inline constexpr Color kNote{0.4f, 0.4f, 0.4f};
// The rank grid's sequential scale, from rank 1 to the worst rank of a column (ColorBrewer
// greens: dark enough to tell from white, light enough for ink text), and a missing rank.
inline constexpr Color kRankBest{0.353f, 0.682f, 0.380f};
inline constexpr Color kRankWorst{0.929f, 0.973f, 0.914f};
inline constexpr Color kRankMissing{0.8f, 0.8f, 0.8f};

// Series beyond the palette reuse its colours with another marker shape.
enum class Marker { circle, square, diamond };

inline Color series_color(size_t i) { return kPalette[i % kPalette.size()]; }
inline Marker series_marker(size_t i) { return static_cast<Marker>((i / kPalette.size()) % 3); }

// Every write goes through here, so nothing can land outside the image whatever the input.
struct Canvas {
  Image& image;
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // writable rectangle [x0, x1) x [y0, y1)

  explicit Canvas(Image& im) : image(im), x1(im.width), y1(im.height) {}
  Canvas(Image& im, int64_t cx0, int64_t cy0, int64_t cx1, int64_t cy1)
      : image(im),
        x0(std::max<int64_t>(cx0, 0)),
        y0(std::max<int64_t>(cy0, 0)),
        x1(std::min(cx1, im.width)),
        y1(std::min(cy1, im.height)) {}

  void fill(int64_t fx0, int64_t fy0, int64_t fx1, int64_t fy1, const Color& color) {
    fx0 = std::max(fx0, x0);
    fy0 = std::max(fy0, y0);
    fx1 = std::min(fx1, x1);
    fy1 = std::min(fy1, y1);
    const int64_t plane = image.height * image.width;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = fy0; y < fy1; ++y)
        for (int64_t x = fx0; x < fx1; ++x)
          image.data[static_cast<size_t>(c * plane + y * image.width + x)] =
              color[static_cast<size_t>(c)];
  }
  void pixel(int64_t x, int64_t y, const Color& color) { fill(x, y, x + 1, y + 1, color); }
};

// ---- text ------------------------------------------------------------------------------------

// stb_easy_font indexes its glyph table with (char - 32) unchecked: keep to printable ASCII.
inline std::string printable(std::string_view text) {
  std::string out(text);
  for (char& ch : out)
    if (ch == '\n' || ch == '\t' || ch == '\r')
      ch = ' ';
    else if (ch < 32 || ch > 126)
      ch = '?';
  return out;
}

inline int64_t char_advance(char ch) {
  char one[2] = {ch, '\0'};
  return stb_easy_font_width(one);
}

// Width in pixels at `scale`; the text must already be printable().
inline int64_t text_width(std::string_view text, int scale) {
  int64_t w = 0;
  for (char ch : text) w += char_advance(ch);
  return w * scale;
}

// Glyphs span 7 font pixels above the baseline and 2 below; a line takes 10.
inline int64_t cap_height(int scale) { return 7 * int64_t{scale}; }
inline int64_t line_height(int scale) { return 10 * int64_t{scale}; }

// Printable text cut to at most max_px pixels, ending in ".." when shortened.
inline std::string fit_text(std::string_view raw, int64_t max_px, int scale) {
  std::string text = printable(raw);
  if (text_width(text, scale) <= max_px) return text;
  const int64_t budget = max_px - text_width("..", scale);
  int64_t w = 0;
  size_t n = 0;
  while (n < text.size() && w + char_advance(text[n]) * scale <= budget) {
    w += char_advance(text[n]) * scale;
    ++n;
  }
  return budget > 0 ? text.substr(0, n) + ".." : std::string();
}

// Draws printable text. Horizontal: (x, y) is the top-left corner. Vertical (rotated 90 degrees
// counter-clockwise, read bottom to top): (x, y) is the corner where the text starts, so glyph
// tops face left and the text occupies columns [x, x + line_height) and rows [y - width, y).
inline void draw_text(Canvas& canvas, const std::string& text, int64_t x, int64_t y, int scale,
                      const Color& color, bool vertical = false) {
  if (text.empty()) return;
  std::string buffer = text;  // stb takes a mutable char*
  // 16 bytes per vertex, 4 vertices per quad, at most 11 quads per glyph; stb truncates (never
  // overflows) if this were ever short. Floats keep the vertex writes aligned.
  std::vector<float> vertices(text.size() * 12 * 16);
  const int quads = stb_easy_font_print(0.f, 0.f, buffer.data(), nullptr, vertices.data(),
                                        static_cast<int>(vertices.size() * sizeof(float)));
  for (int q = 0; q < quads; ++q) {
    const float* v = &vertices[static_cast<size_t>(q) * 16];
    float u0 = v[0], u1 = v[0], w0 = v[1], w1 = v[1];  // u along the text, w down the glyph
    for (int k = 1; k < 4; ++k) {
      u0 = std::min(u0, v[k * 4]);
      u1 = std::max(u1, v[k * 4]);
      w0 = std::min(w0, v[k * 4 + 1]);
      w1 = std::max(w1, v[k * 4 + 1]);
    }
    const int64_t a0 = static_cast<int64_t>(std::llround(u0)) * scale,
                  a1 = static_cast<int64_t>(std::llround(u1)) * scale;
    const int64_t b0 = static_cast<int64_t>(std::llround(w0)) * scale,
                  b1 = static_cast<int64_t>(std::llround(w1)) * scale;
    if (vertical)
      canvas.fill(x + b0, y - a1, x + b1, y - a0, color);
    else
      canvas.fill(x + a0, y + b0, x + a1, y + b1, color);
  }
}

// Text centred over columns [x0, x1) at row y (its top), but kept inside the image's margins.
inline void draw_centred(Canvas& canvas, const std::string& text, int64_t x0, int64_t x1, int64_t y,
                         int64_t pad, int scale, const Color& color) {
  if (text.empty()) return;
  const int64_t w = text_width(text, scale);
  const int64_t x = std::clamp((x0 + x1 - w) / 2, pad, std::max(pad, canvas.image.width - pad - w));
  draw_text(canvas, text, x, y, scale, color);
}

// ---- checks shared by the figures ------------------------------------------------------------

inline void check_text_scale(std::string_view what, int scale) {
  if (scale < 1 || scale > 8) fail(what, ": text_scale = ", scale, ", expected 1..8");
}

inline void check_image_size(std::string_view what, int64_t width, int64_t height,
                             int64_t max_side) {
  if (width < 1 || height < 1 || width > max_side || height > max_side)
    fail(what, ": image size ", width, "x", height, " is outside 1..", max_side,
         " pixels per side");
}

inline void check_y_bounds(std::string_view what, const std::optional<double>& y_min,
                           const std::optional<double>& y_max) {
  if ((y_min && !std::isfinite(*y_min)) || (y_max && !std::isfinite(*y_max)))
    fail(what, ": y_min and y_max must be finite");
}

// ---- axes ------------------------------------------------------------------------------------

struct Range {
  double lo = 0, hi = 1;
};

// The finite data's [lo, hi] (lo > hi: there is none) widened by a 5% margin each side.
inline Range padded_range(double lo, double hi) {
  if (lo > hi) {  // no finite data at all
    lo = 0;
    hi = 1;
  }
  // A flat line, or one that varies below double precision, gets a visible band around it.
  const double magnitude = std::max(std::abs(lo), std::abs(hi));
  const double min_span = std::max(magnitude * 1e-9, 1e-290);
  if (hi - lo < min_span) {
    const double mid = lo / 2 + hi / 2;
    const double half = magnitude > 0 ? std::max(magnitude * 0.1, min_span) : 1.0;
    lo = mid - half;
    hi = mid + half;
  }
  const double margin = hi / 20 - lo / 20;  // halved before subtracting: no overflow near max
  return {lo - margin, hi + margin};
}

// The default range r with the user's y_min / y_max applied and checked.
inline Range apply_y_bounds(std::string_view what, Range r, const std::optional<double>& y_min,
                            const std::optional<double>& y_max) {
  const double default_span = r.hi - r.lo;
  if (y_min) r.lo = *y_min;
  if (y_max) r.hi = *y_max;
  if (y_min && y_max && !(r.hi > r.lo))
    fail(what, ": y_min = ", r.lo, " and y_max = ", r.hi, "; expected y_min < y_max");
  // A single bound beyond the data keeps the data's span on the open side.
  if (!(r.hi > r.lo)) {
    if (y_min) r.hi = r.lo + default_span;
    if (y_max) r.lo = r.hi - default_span;
  }
  const double span = r.hi - r.lo;
  if (!std::isfinite(span))
    fail(what, ": y range [", r.lo, ", ", r.hi,
         "] is too wide to plot; set y_min and y_max to a narrower range");
  if (!(span >= std::max(std::max(std::abs(r.lo), std::abs(r.hi)) * 1e-12, 1e-290)))
    fail(what, ": y range [", r.lo, ", ", r.hi, "] is too narrow to plot");
  return r;
}

inline Range y_range(const std::vector<Series>& series, const LineChartOptions& options) {
  const double inf = std::numeric_limits<double>::infinity();
  double lo = inf, hi = -inf;
  for (const Series& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  return apply_y_bounds("line_chart", padded_range(lo, hi), options.y_min, options.y_max);
}

// Row of value v in a plot spanning rows [y0, y1]. Far-off values (an explicit y range) are
// pinned a long way outside, so their segments still leave the plot at the right angle, without
// overflowing the raster arithmetic.
inline double y_pixel(double v, const Range& r, int64_t y0, int64_t y1) {
  const double t = (v - r.lo) / (r.hi - r.lo);
  const double y = static_cast<double>(y1) - t * static_cast<double>(y1 - y0);
  return std::clamp(y, -1e9, 1e9);
}

struct Tick {
  double value = 0;
  std::string label;
};

// About five intervals of 1, 2, 2.5 or 5 times a power of ten, labelled with as many decimals as
// the step needs (or in %g form for very large or small numbers).
inline std::vector<Tick> nice_ticks(const Range& r) {
  const double raw = (r.hi - r.lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double mantissa = norm < 1.5 ? 1 : norm < 2.25 ? 2 : norm < 3.5 ? 2.5 : norm < 7.5 ? 5 : 10;
  const double step = mantissa * mag;
  const double first = std::ceil(r.lo / step - 1e-9), last = std::floor(r.hi / step + 1e-9);
  std::vector<double> values;
  for (double k = first; k <= last && values.size() < 50; k += 1) {
    const double v = k * step;
    values.push_back(std::abs(v) < step * 1e-6 ? 0.0 : v);  // no "-0.0"
  }
  double max_abs = 0;
  for (double v : values) max_abs = std::max(max_abs, std::abs(v));
  int decimals = 0;
  for (double scaled = step; decimals < 12; ++decimals, scaled *= 10)
    if (std::abs(scaled - std::round(scaled)) <= 1e-6 * scaled) break;
  const bool fixed = max_abs < 1e6 && decimals <= 5;
  int precision = 1;
  if (!fixed && max_abs > 0)
    precision = static_cast<int>(std::clamp(
        std::floor(std::log10(max_abs)) - std::floor(std::log10(step)) + (mantissa == 2.5 ? 2 : 1),
        1.0, 15.0));
  std::vector<Tick> ticks;
  for (double v : values) {
    char text[64];
    if (fixed)
      std::snprintf(text, sizeof text, "%.*f", decimals, v);
    else
      std::snprintf(text, sizeof text, "%.*g", precision, v);
    ticks.push_back({v, text});
  }
  return ticks;
}

// Smallest stride from 1, 2, 5, 10, 20, 50, ... that is at least `need`, for numbered x ticks.
inline int64_t nice_stride(int64_t need) {
  for (int64_t base = 1;; base *= 10)
    for (int64_t m : {1, 2, 5})
      if (m * base >= need) return m * base;
}

inline int64_t ceil_div(double a, double b) {
  const double q = std::ceil(a / b);
  return q < 1 ? 1 : q > 1e15 ? int64_t{1000000000000000} : static_cast<int64_t>(q);
}

// Widest tick label: with the y label it fixes the left margin.
inline int64_t tick_label_width(const std::vector<Tick>& ticks, int s) {
  int64_t w = 0;
  for (const Tick& t : ticks) w = std::max(w, text_width(t.label, s));
  return w;
}

// Room left of the plot: the vertical y label (if any), tick labels and tick marks.
inline int64_t left_margin(int64_t pad, bool has_y_label, int64_t tick_label_w, int64_t tick_len,
                           int s) {
  return pad + (has_y_label ? line_height(s) + pad : 0) + tick_label_w + tick_len + 3 * int64_t{s};
}

// Horizontal grid lines, tick marks and labels left of the plot [x0, x1) x [y0, y1], thinned
// so that tick labels never overlap. A tick on the frame's bottom row is labelled only when
// `bottom_tick` (a bar chart's 0 there).
inline void draw_y_grid(Canvas& canvas, const std::vector<Tick>& yticks, const Range& yr,
                        int64_t x0, int64_t x1, int64_t y0, int64_t y1, int64_t tick_len, int s,
                        bool bottom_tick = false) {
  const double ytick_px =
      static_cast<double>(y1 - y0) *
      (yticks.size() > 1 ? (yticks[1].value - yticks[0].value) / (yr.hi - yr.lo) : 1.0);
  const int64_t ystride =
      ceil_div(static_cast<double>(line_height(s) + 2), std::max(ytick_px, 1e-3));
  for (size_t k = 0; k < yticks.size(); k += static_cast<size_t>(ystride)) {
    const auto y = static_cast<int64_t>(std::llround(y_pixel(yticks[k].value, yr, y0, y1)));
    if (y < y0 || y > y1 || (y == y1 && !bottom_tick)) continue;
    canvas.fill(x0, y, x1, y + 1, kGrid);
    canvas.fill(x0 - tick_len, y, x0, y + 1, kInk);
    const int64_t w = text_width(yticks[k].label, s);
    draw_text(canvas, yticks[k].label, x0 - tick_len - 2 * int64_t{s} - w, y - cap_height(s) / 2,
              s, kInk);
  }
}

// A y axis label reading upwards at the left edge, centred on the plot's rows [y0, y1].
inline void draw_y_label(Canvas& canvas, const std::string& label, int64_t top, int64_t y0,
                         int64_t y1, int64_t pad, int s) {
  if (label.empty()) return;
  const int64_t w = text_width(label, s);
  const int64_t y =
      std::clamp((y0 + y1 + w) / 2, top + w, std::max(top + w, canvas.image.height - pad));
  draw_text(canvas, label, pad, y, s, kInk, true);
}

// How labels spaced `spacing` pixels apart along the x axis are drawn: side by side when the
// widest (label_w) fits, else vertical; every stride-th only if even that is too crowded.
// Numbered positions stay horizontal and use a round stride instead of turning.
struct XLabelLayout {
  bool vertical = false;
  int64_t stride = 1;
};

inline XLabelLayout x_label_layout(int64_t label_w, double spacing, int s, bool numbered) {
  const int64_t gap = 3 * int64_t{s} + 2;
  const int64_t side_by_side = ceil_div(static_cast<double>(label_w + gap), spacing);
  if (numbered) return {false, nice_stride(side_by_side)};
  if (side_by_side == 1) return {false, 1};
  return {true, ceil_div(static_cast<double>(cap_height(s) + gap), spacing)};
}

// Height under the plot taken by tick marks and x labels.
inline int64_t x_label_band(int64_t label_w, bool vertical, int64_t tick_len, int s) {
  return tick_len + 3 * int64_t{s} + (vertical ? label_w : line_height(s));
}

// One x tick label under column x of the axis at row axis_y.
inline void draw_x_label(Canvas& canvas, const std::string& label, int64_t x, int64_t axis_y,
                         int64_t tick_len, int s, bool vertical) {
  const int64_t w = text_width(label, s);
  const int64_t below = axis_y + tick_len + 2 * int64_t{s};
  if (vertical)  // reads upwards and ends just under the axis, like matplotlib's rotation=90
    draw_text(canvas, label, x - cap_height(s) / 2, below + w, s, kInk, true);
  else
    draw_text(canvas, label, x - w / 2, below, s, kInk);
}

// ---- lines and markers -----------------------------------------------------------------------

// Liang-Barsky: cuts the segment to the rectangle; false when nothing of it is inside.
inline bool clip_segment(double& ax, double& ay, double& bx, double& by, double x0, double y0,
                         double x1, double y1) {
  double t0 = 0, t1 = 1;
  const double dx = bx - ax, dy = by - ay;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {ax - x0, x1 - ax, ay - y0, y1 - ay};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
      continue;
    }
    const double t = q[i] / p[i];
    if (p[i] < 0)
      t0 = std::max(t0, t);
    else
      t1 = std::min(t1, t);
    if (t0 > t1) return false;
  }
  const double sx = ax, sy = ay;
  ax = sx + t0 * dx;
  ay = sy + t0 * dy;
  bx = sx + t1 * dx;
  by = sy + t1 * dy;
  return true;
}

// A 2-pixel-thick line: a 2x2 stamp every pixel along the longer axis.
inline void draw_line(Canvas& canvas, double ax, double ay, double bx, double by,
                      const Color& color) {
  if (!clip_segment(ax, ay, bx, by, static_cast<double>(canvas.x0) - 1,
                    static_cast<double>(canvas.y0) - 1, static_cast<double>(canvas.x1) + 1,
                    static_cast<double>(canvas.y1) + 1))
    return;
  const double length = std::max(std::abs(bx - ax), std::abs(by - ay));
  const auto steps = static_cast<int64_t>(std::ceil(length));
  for (int64_t i = 0; i <= steps; ++i) {
    const double t = steps == 0 ? 0.0 : static_cast<double>(i) / static_cast<double>(steps);
    const auto x = static_cast<int64_t>(std::floor(ax + (bx - ax) * t - 0.5));
    const auto y = static_cast<int64_t>(std::floor(ay + (by - ay) * t - 0.5));
    canvas.fill(x, y, x + 2, y + 2, color);
  }
}

inline void draw_marker(Canvas& canvas, double cx, double cy, int64_t radius, Marker shape,
                        const Color& color) {
  const auto x = static_cast<int64_t>(std::llround(cx)), y = static_cast<int64_t>(std::llround(cy));
  const double r = static_cast<double>(radius);
  for (int64_t dy = -radius - 1; dy <= radius + 1; ++dy)
    for (int64_t dx = -radius - 1; dx <= radius + 1; ++dx) {
      const auto fx = static_cast<double>(dx), fy = static_cast<double>(dy);
      const bool inside = shape == Marker::circle   ? fx * fx + fy * fy <= (r + 0.5) * (r + 0.5)
                          : shape == Marker::square ? std::max(std::abs(fx), std::abs(fy)) <= r
                                                    : std::abs(fx) + std::abs(fy) <= r + 1;
      if (inside) canvas.pixel(x + dx, y + dy, color);
    }
}

inline void draw_rect_outline(Canvas& canvas, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                              const Color& color) {
  canvas.fill(x0, y0, x1, y0 + 1, color);
  canvas.fill(x0, y1 - 1, x1, y1, color);
  canvas.fill(x0, y0, x0 + 1, y1, color);
  canvas.fill(x1 - 1, y0, x1, y1, color);
}

// ---- rank grid -------------------------------------------------------------------------------

// Whole ranks as integers, tied or mean ranks with up to two decimals ("2.5", "1.67"), "-" for
// none.
inline std::string format_rank(double rank) {
  if (std::isnan(rank)) return "-";
  char text[64];
  if (std::abs(rank) >= 1e6)
    std::snprintf(text, sizeof text, "%.3g", rank);
  else if (std::abs(rank - std::round(rank)) < 1e-9)
    std::snprintf(text, sizeof text, "%.0f", rank);
  else
    std::snprintf(text, sizeof text, "%.2f", rank);
  std::string out = text;
  if (out.find('.') != std::string::npos && out.find('e') == std::string::npos) {
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
  }
  return out;
}

// Rank 1 gets kRankBest, the column's worst rank kRankWorst (both exactly), linear in between.
inline Color rank_color(double rank, double worst) {
  if (std::isnan(rank)) return kRankMissing;
  const double t = worst > 1 ? std::clamp((rank - 1) / (worst - 1), 0.0, 1.0) : 0.0;
  const auto u = static_cast<float>(t);
  Color c{};
  for (size_t k = 0; k < 3; ++k) c[k] = (1.f - u) * kRankBest[k] + u * kRankWorst[k];
  return c;
}

}  // namespace detail::plot

// A line chart of the series over shared x positions 0..n-1 as a 3-channel image on white:
// y grid and "nice" tick labels, x tick labels, one tab10 colour (and markers) per series, a
// legend right of the plot, title and axis labels. Throws salient::error for no series, an
// empty series, series of different lengths, x_ticks of the wrong count, a bad y range or text
// scale, or an image too small to hold the plot. Labels too long for their space are shortened.
inline Image line_chart(const std::vector<Series>& series, const LineChartOptions& options = {}) {
  namespace p = detail::plot;
  using detail::fail;
  if (series.empty()) fail("line_chart: no series given, expected at least one");
  const size_t n = series.front().y.size();
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].y.empty())
      fail("line_chart: series ", i, " ('", series[i].label, "') has no values");
    if (series[i].y.size() != n)
      fail("line_chart: series ", i, " ('", series[i].label, "') has ", series[i].y.size(),
           " values but series 0 ('", series.front().label, "') has ", n,
           "; all series share the same x positions");
  }
  if (!options.x_ticks.empty() && options.x_ticks.size() != n)
    fail("line_chart: ", options.x_ticks.size(), " x_ticks for ", n,
         " x positions; give one label per position or none");
  p::check_text_scale("line_chart", options.text_scale);
  p::check_image_size("line_chart", options.width, options.height, 16384);
  p::check_y_bounds("line_chart", options.y_min, options.y_max);

  const int s = options.text_scale, ts = 2 * s;  // label and title scales
  const int64_t W = options.width, H = options.height;
  const int64_t pad = 4 + 4 * int64_t{s};
  const int64_t tick_len = 4 + int64_t{s};
  const int64_t line_h = p::line_height(s);
  const int64_t marker_r = 2 + int64_t{s};

  // Vertical budget first: title on top.
  const std::string title = p::fit_text(options.title, W - 2 * pad, ts);
  const int64_t top = pad + (title.empty() ? 0 : p::line_height(ts) + pad);

  // y ticks depend only on the range, so their label width fixes the left margin.
  const p::Range yr = p::y_range(series, options);
  const std::vector<p::Tick> yticks = p::nice_ticks(yr);
  const std::string y_label = p::fit_text(options.y_label, H - top - pad, s);
  const int64_t left =
      p::left_margin(pad, !y_label.empty(), p::tick_label_width(yticks, s), tick_len, s);

  // Legend right of the plot, at most a third of the width.
  std::vector<std::string> legend_labels(series.size());
  int64_t legend_text_w = 0;
  const int64_t sample_w = 24 + 4 * int64_t{s};
  for (size_t i = 0; i < series.size(); ++i) {
    legend_labels[i] = p::fit_text(series[i].label, W / 3 - sample_w - 3 * pad, s);
    legend_text_w = std::max(legend_text_w, p::text_width(legend_labels[i], s));
  }
  const bool has_legend = legend_text_w > 0;
  const int64_t legend_w = has_legend ? pad + sample_w + pad / 2 + legend_text_w + pad : 0;
  int64_t right = pad + (has_legend ? legend_w + pad : 0);

  // x tick labels: side by side when they fit, else vertical; thinned to every k-th if even
  // that is too crowded. Numbered positions use a round stride instead of turning.
  std::vector<std::string> xlabels(n);
  for (size_t i = 0; i < n; ++i)
    xlabels[i] = options.x_ticks.empty()
                     ? std::to_string(i)
                     : p::fit_text(options.x_ticks[i], std::max<int64_t>(H * 2 / 5, 1), s);
  int64_t x_label_w = 0;
  for (const std::string& l : xlabels) x_label_w = std::max(x_label_w, p::text_width(l, s));
  const std::string x_label = p::fit_text(options.x_label, W - 2 * pad, s);

  bool vertical = false;
  int64_t stride = 1, x0 = 0, x1 = 0, bottom = 0;
  double xpad = 0, spacing = 0;
  for (int pass = 0; pass < 2; ++pass) {  // pass 2 reserves room for a centred last label
    x0 = left;
    x1 = W - right;
    xpad = std::max(static_cast<double>(marker_r + 4), 0.03 * static_cast<double>(x1 - x0));
    spacing = n > 1 ? (static_cast<double>(x1 - x0) - 2 * xpad) / static_cast<double>(n - 1)
                    : static_cast<double>(x1 - x0);
    spacing = std::max(spacing, 1e-3);
    const p::XLabelLayout layout =
        p::x_label_layout(x_label_w, spacing, s, options.x_ticks.empty());
    vertical = layout.vertical;
    stride = layout.stride;
    bottom = p::x_label_band(x_label_w, vertical, tick_len, s) +
             (x_label.empty() ? 0 : pad + line_h) + pad;
    if (vertical || pass == 1) break;
    const size_t last = (n - 1) / static_cast<size_t>(stride) * static_cast<size_t>(stride);
    const int64_t overhang =
        p::text_width(xlabels[last], s) / 2 - static_cast<int64_t>(xpad) - right + 2;
    if (overhang <= 0) break;
    right += overhang;
  }
  const int64_t y0 = top, y1 = H - bottom;
  constexpr int64_t min_plot = 32;
  if (x1 - x0 < min_plot || y1 - y0 < min_plot)
    fail("line_chart: a ", W, "x", H, " image leaves a ", x1 - x0, "x", y1 - y0,
         " plot area, expected at least ", min_plot, "x", min_plot,
         "; enlarge the image or lower text_scale");

  Image image(3, H, W, 1.f);
  p::Canvas canvas(image);
  const auto px = [&](size_t i) {
    return n > 1 ? static_cast<double>(x0) + xpad + static_cast<double>(i) * spacing
                 : static_cast<double>(x0 + x1) / 2;
  };
  const auto py = [&](double v) { return p::y_pixel(v, yr, y0, y1); };

  // Grid, thinned with the labels so that tick labels never overlap.
  p::draw_y_grid(canvas, yticks, yr, x0, x1, y0, y1, tick_len, s);
  for (size_t i = 0; i < n; i += static_cast<size_t>(stride)) {
    const auto x = static_cast<int64_t>(std::llround(px(i)));
    canvas.fill(x, y0, x + 1, y1, p::kGrid);
    canvas.fill(x, y1, x + 1, y1 + tick_len, p::kInk);
    p::draw_x_label(canvas, xlabels[i], x, y1, tick_len, s, vertical);
  }
  p::draw_rect_outline(canvas, x0, y0, x1 + 1, y1 + 1, p::kInk);

  // Data, clipped to the inside of the frame.
  p::Canvas plot(image, x0 + 1, y0 + 1, x1, y1);
  const bool markers = n == 1 || spacing >= static_cast<double>(3 * marker_r);
  for (size_t si = 0; si < series.size(); ++si) {
    const std::vector<double>& y = series[si].y;
    const p::Color color = p::series_color(si);
    for (size_t i = 0; i + 1 < n; ++i)
      if (std::isfinite(y[i]) && std::isfinite(y[i + 1]))
        p::draw_line(plot, px(i), py(y[i]), px(i + 1), py(y[i + 1]), color);
    // A point between two gaps has no line, so it always gets a marker.
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(y[i])) continue;
      const bool isolated =
          (i == 0 || !std::isfinite(y[i - 1])) && (i + 1 == n || !std::isfinite(y[i + 1]));
      if (markers || isolated)
        p::draw_marker(plot, px(i), py(y[i]), marker_r, p::series_marker(si), color);
    }
  }

  // Title centred over the plot (but kept inside the image), axis labels centred on their axes.
  p::draw_centred(canvas, title, x0, x1, pad, pad, ts, p::kInk);
  p::draw_centred(canvas, x_label, x0, x1, H - pad - line_h, pad, s, p::kInk);
  p::draw_y_label(canvas, y_label, top, y0, y1, pad, s);

  // Legend: a sample line with its marker, then the label; rows that do not fit are cut.
  if (has_legend) {
    const int64_t row_h = std::max(line_h, 2 * marker_r + 2) + 2 * int64_t{s};
    std::vector<size_t> rows;
    for (size_t i = 0; i < series.size(); ++i)
      if (!legend_labels[i].empty()) rows.push_back(i);
    const int64_t max_rows = std::max<int64_t>((H - y0 - 2 * pad) / row_h, 1);
    const auto shown =
        static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(rows.size()), max_rows));
    const int64_t lx0 = x1 + pad, ly0 = y0;
    const int64_t lx1 = lx0 + legend_w, ly1 = ly0 + pad + static_cast<int64_t>(shown) * row_h;
    canvas.fill(lx0, ly0, lx1, ly1, p::kBackground);
    p::draw_rect_outline(canvas, lx0, ly0, lx1, ly1, p::kLegendBorder);
    for (size_t r = 0; r < shown; ++r) {
      const size_t i = rows[r];
      const int64_t cy = ly0 + pad / 2 + static_cast<int64_t>(r) * row_h + row_h / 2;
      const int64_t sx = lx0 + pad;
      if (r + 1 == shown && shown < rows.size()) {  // no room for the rest: say how many
        const std::string more = "(+" + std::to_string(rows.size() - r) + " more)";
        p::draw_text(canvas, p::fit_text(more, legend_w - 2 * pad, s), sx,
                     cy - p::cap_height(s) / 2, s, p::kInk);
        break;
      }
      const p::Color color = p::series_color(i);
      p::draw_line(canvas, static_cast<double>(sx), static_cast<double>(cy) + 0.5,
                   static_cast<double>(sx + sample_w), static_cast<double>(cy) + 0.5, color);
      p::draw_marker(canvas, static_cast<double>(sx + sample_w / 2), static_cast<double>(cy),
                     marker_r, p::series_marker(i), color);
      p::draw_text(canvas, legend_labels[i], sx + sample_w + pad / 2, cy - p::cap_height(s) / 2, s,
                   p::kInk);
    }
  }
  return image;
}

// A bar chart of one score per method as a 3-channel image on white: one tab10 colour per bar
// (bar i takes the palette's colour i), labels under the bars (vertical, and thinned, when they
// do not fit side by side), y grid and "nice" ticks, bars grown from the zero line (from the
// axis bottom when an explicit y range leaves 0 out), error bars in ink with caps, an "n/a"
// slot for a NaN value, the title and an optional "higher/lower is better" note under it.
// Throws salient::error for no bars (or more than 4096), an infinite value or error bar end,
// an error bar with one end NaN or low > high, a bad y range or text scale, or an image too
// small for the plot or for 3 pixels per bar.
inline Image bar_chart(const std::vector<Bar>& bars, const BarChartOptions& options = {}) {
  namespace p = detail::plot;
  using detail::fail;
  constexpr size_t max_bars = 4096;
  if (bars.empty()) fail("bar_chart: no bars given, expected at least one");
  if (bars.size() > max_bars)
    fail("bar_chart: ", bars.size(), " bars given, expected at most ", max_bars);
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    if (std::isinf(b.value))
      fail("bar_chart: bar ", i, " ('", b.label, "') has value ", b.value,
           "; expected a finite value, or NaN for a missing one");
    if (std::isinf(b.low) || std::isinf(b.high))
      fail("bar_chart: bar ", i, " ('", b.label, "') has error bar [", b.low, ", ", b.high,
           "]; expected finite ends, or both NaN for none");
    if (std::isnan(b.low) != std::isnan(b.high))
      fail("bar_chart: bar ", i, " ('", b.label, "') has error bar [", b.low, ", ", b.high,
           "]; give both ends, or both NaN for none");
    if (b.low > b.high)
      fail("bar_chart: bar ", i, " ('", b.label, "') has error bar low = ", b.low,
           " above high = ", b.high);
  }
  p::check_text_scale("bar_chart", options.text_scale);
  p::check_image_size("bar_chart", options.width, options.height, 16384);
  p::check_y_bounds("bar_chart", options.y_min, options.y_max);

  const int s = options.text_scale, ts = 2 * s;  // label and title scales
  const int64_t W = options.width, H = options.height;
  const int64_t pad = 4 + 4 * int64_t{s};
  const int64_t tick_len = 4 + int64_t{s};
  const int64_t line_h = p::line_height(s);
  const size_t n = bars.size();

  // Title, then the note just under it.
  const std::string title = p::fit_text(options.title, W - 2 * pad, ts);
  const std::string note =
      options.higher_is_better
          ? p::fit_text(*options.higher_is_better ? "higher is better" : "lower is better",
                        W - 2 * pad, s)
          : std::string();
  const int64_t note_y = pad + (title.empty() ? 0 : p::line_height(ts) + 2 * int64_t{s});
  const int64_t top =
      note.empty() ? pad + (title.empty() ? 0 : p::line_height(ts) + pad) : note_y + line_h + pad;

  // The range holds every drawn value and error bar end, and 0 (where the bars start).
  double lo = 0, hi = 0;
  for (const Bar& b : bars) {
    if (std::isnan(b.value)) continue;
    for (double v : {b.value, b.low, b.high})
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  }
  p::Range data = p::padded_range(lo, hi);
  // Bars stand on the frame when all lie on one side of 0, as with matplotlib's bar().
  if (lo == 0 && hi > 0) data.lo = 0;
  if (hi == 0 && lo < 0) data.hi = 0;
  const p::Range yr = p::apply_y_bounds("bar_chart", data, options.y_min, options.y_max);
  const std::vector<p::Tick> yticks = p::nice_ticks(yr);
  const std::string y_label = p::fit_text(options.y_label, H - top - pad, s);
  const int64_t left =
      p::left_margin(pad, !y_label.empty(), p::tick_label_width(yticks, s), tick_len, s);

  // One slot per bar; labels centred under the slots never reach past the plot's sides.
  const int64_t x0 = left, x1 = W - pad;
  const double spacing =
      std::max(static_cast<double>(x1 - x0) / static_cast<double>(n), 1e-3);
  std::vector<std::string> labels(n);
  int64_t label_w = 0;
  for (size_t i = 0; i < n; ++i) {
    labels[i] = p::fit_text(bars[i].label, std::max<int64_t>(H * 2 / 5, 1), s);
    label_w = std::max(label_w, p::text_width(labels[i], s));
  }
  const p::XLabelLayout layout = p::x_label_layout(label_w, spacing, s, false);
  const int64_t y0 = top, y1 = H - pad - p::x_label_band(label_w, layout.vertical, tick_len, s);
  constexpr int64_t min_plot = 32;
  if (x1 - x0 < min_plot || y1 - y0 < min_plot)
    fail("bar_chart: a ", W, "x", H, " image leaves a ", x1 - x0, "x", y1 - y0,
         " plot area, expected at least ", min_plot, "x", min_plot,
         "; enlarge the image or lower text_scale");
  if (spacing < 3)
    fail("bar_chart: ", n, " bars in a ", x1 - x0,
         "-pixel-wide plot leave under 3 pixels per bar; enlarge the image or show fewer bars");

  Image image(3, H, W, 1.f);
  p::Canvas canvas(image);
  const auto py = [&](double v) { return p::y_pixel(v, yr, y0, y1); };
  const auto centre = [&](size_t i) {
    return static_cast<double>(x0) + (static_cast<double>(i) + 0.5) * spacing;
  };
  p::draw_y_grid(canvas, yticks, yr, x0, x1, y0, y1, tick_len, s, true);

  // Bars, clipped to the inside of the frame.
  p::Canvas plot(image, x0 + 1, y0 + 1, x1, y1);
  const bool zero_in_view = yr.lo <= 0 && 0 <= yr.hi;
  const int64_t base = zero_in_view ? static_cast<int64_t>(std::llround(py(0))) : y1;
  const double half_bar = 0.35 * spacing;
  for (size_t i = 0; i < n; ++i) {
    const double c = centre(i);
    const auto bx0 = static_cast<int64_t>(std::llround(c - half_bar));
    const auto bx1 = std::max(bx0 + 1, static_cast<int64_t>(std::llround(c + half_bar)));
    if (std::isnan(bars[i].value)) {
      // Above the base line when there is room, else below it.
      const std::string na = p::fit_text("n/a", static_cast<int64_t>(spacing) - 2, s);
      const int64_t above = base - 2 * int64_t{s} - p::cap_height(s);
      const int64_t y = above > y0 + 2 * int64_t{s} ? above : base + 2 * int64_t{s};
      p::draw_text(plot, na, static_cast<int64_t>(std::llround(c)) - p::text_width(na, s) / 2, y,
                   s, p::kInk);
      continue;
    }
    const auto yv = static_cast<int64_t>(std::llround(py(bars[i].value)));
    plot.fill(bx0, std::min(yv, base), bx1, std::max(yv, base), p::series_color(i));
  }
  if (zero_in_view) canvas.fill(x0, base, x1, base + 1, p::kInk);

  // Error bars: a vertical ink line from low to high with a cap at each end, over the bar.
  const int64_t lw = std::max<int64_t>(2, s);
  for (size_t i = 0; i < n; ++i) {
    const Bar& b = bars[i];
    if (std::isnan(b.value) || std::isnan(b.low)) continue;
    const auto xc = static_cast<int64_t>(std::llround(centre(i)));
    const auto ytop = static_cast<int64_t>(std::llround(py(b.high)));
    const auto ybottom = static_cast<int64_t>(std::llround(py(b.low)));
    // Caps half as wide as the bar, but visible on thin bars.
    const auto cap = static_cast<int64_t>(std::min(std::max(half_bar / 2, 1.0 + s), half_bar));
    plot.fill(xc - lw / 2, ytop - lw / 2, xc - lw / 2 + lw, ybottom - lw / 2 + lw, p::kInk);
    for (const int64_t y : {ytop, ybottom})
      plot.fill(xc - cap, y - lw / 2, xc + cap + 1, y - lw / 2 + lw, p::kInk);
  }
  p::draw_rect_outline(canvas, x0, y0, x1 + 1, y1 + 1, p::kInk);

  for (size_t i = 0; i < n; i += static_cast<size_t>(layout.stride)) {
    const auto x = static_cast<int64_t>(std::llround(centre(i)));
    canvas.fill(x, y1, x + 1, y1 + tick_len, p::kInk);
    p::draw_x_label(canvas, labels[i], x, y1, tick_len, s, layout.vertical);
  }
  p::draw_centred(canvas, title, x0, x1, pad, pad, ts, p::kInk);
  p::draw_centred(canvas, note, x0, x1, note_y, pad, s, p::kNote);
  p::draw_y_label(canvas, y_label, top, y0, y1, pad, s);
  return image;
}

// A table figure of ranks, rows (e.g. methods) by columns (e.g. metrics), ranks[row][column]
// with 1 = best: each cell shaded from kRankBest (rank 1) to kRankWorst (the worst rank in its
// column) with its rank written in it, "-" on grey for a NaN rank; row labels on the left,
// column headers on top (vertical when one does not fit its cell), optionally a last
// "mean rank" column (each row's mean over its finite ranks, shaded the same way), and a title.
// The image size follows from the counts, the cell size and text_scale. Throws salient::error
// for no rows or columns (or more than 200 of either), a ranks matrix of another shape, a rank
// below 1 or infinite, a bad cell size or text scale, or a figure over 4096x4096 pixels.
inline Image rank_grid(const std::vector<std::string>& rows,
                       const std::vector<std::string>& columns,
                       const std::vector<std::vector<double>>& ranks,
                       const RankGridOptions& options = {}) {
  namespace p = detail::plot;
  using detail::fail;
  constexpr size_t max_count = 200;
  constexpr int64_t max_side = 4096, max_cell = 1024;
  if (rows.empty() || columns.empty())
    fail("rank_grid: ", rows.size(), " rows and ", columns.size(),
         " columns given, expected at least one of each");
  if (rows.size() > max_count || columns.size() > max_count)
    fail("rank_grid: ", rows.size(), " rows and ", columns.size(),
         " columns given, expected at most ", max_count, " of each");
  if (ranks.size() != rows.size())
    fail("rank_grid: ", ranks.size(), " rows of ranks for ", rows.size(), " row labels");
  for (size_t r = 0; r < rows.size(); ++r) {
    if (ranks[r].size() != columns.size())
      fail("rank_grid: row ", r, " ('", rows[r], "') has ", ranks[r].size(), " ranks for ",
           columns.size(), " columns");
    for (size_t c = 0; c < columns.size(); ++c) {
      const double v = ranks[r][c];
      if (!std::isnan(v) && !(std::isfinite(v) && v >= 1))
        fail("rank_grid: rank ", v, " at row ", r, " ('", rows[r], "'), column ", c, " ('",
             columns[c], "'); expected a finite rank >= 1 (1 = best), or NaN for none");
    }
  }
  p::check_text_scale("rank_grid", options.text_scale);
  for (const int64_t size : {options.cell_width, options.cell_height})
    if (size != 0 && (size < 4 || size > max_cell))
      fail("rank_grid: cell size ", options.cell_width, "x", options.cell_height,
           " (width x height), expected 0 (from the text) or 4..", max_cell, " pixels each");

  // The values shown, with the mean-rank column appended.
  const size_t R = rows.size(), C = columns.size() + (options.mean_column ? 1 : 0);
  std::vector<std::vector<double>> values = ranks;
  if (options.mean_column)
    for (std::vector<double>& row : values) {
      double sum = 0;
      size_t count = 0;
      for (double v : row)
        if (!std::isnan(v)) {
          sum += v;
          ++count;
        }
      row.push_back(count > 0 ? sum / static_cast<double>(count)
                              : std::numeric_limits<double>::quiet_NaN());
    }
  std::vector<double> worst(C, 1.0);
  for (const std::vector<double>& row : values)
    for (size_t c = 0; c < C; ++c)
      if (!std::isnan(row[c])) worst[c] = std::max(worst[c], row[c]);

  const int s = options.text_scale, ts = 2 * s;
  const int64_t pad = 4 + 4 * int64_t{s};
  const int64_t line_h = p::line_height(s);
  const int64_t gap = 2 * int64_t{s};
  const int64_t max_label_px = 200 * int64_t{s};  // about 33 characters

  int64_t text_w = 0;
  for (const std::vector<double>& row : values)
    for (double v : row) text_w = std::max(text_w, p::text_width(p::format_rank(v), s));
  const int64_t cell_h =
      options.cell_height != 0 ? options.cell_height : line_h + 6 + 4 * int64_t{s};
  const int64_t cell_w =
      options.cell_width != 0 ? options.cell_width : std::max(2 * cell_h, text_w + 2 * pad);

  std::vector<std::string> headers(C), row_labels(R);
  int64_t header_w = 0, row_w = 0;
  for (size_t c = 0; c < C; ++c) {
    headers[c] = p::fit_text(c < columns.size() ? std::string_view(columns[c]) : "mean rank",
                             max_label_px, s);
    header_w = std::max(header_w, p::text_width(headers[c], s));
  }
  for (size_t r = 0; r < R; ++r) {
    row_labels[r] = p::fit_text(rows[r], max_label_px, s);
    row_w = std::max(row_w, p::text_width(row_labels[r], s));
  }
  const bool vertical = header_w + gap > cell_w;
  const int64_t header_h = vertical ? header_w : line_h;

  // The mean column stands a little apart from the metrics.
  const int64_t grid_x0 = pad + (row_w > 0 ? row_w + pad : 0);
  const auto column_x = [&](size_t c) {
    return grid_x0 + static_cast<int64_t>(c) * cell_w + (c >= columns.size() ? pad : 0);
  };
  const int64_t grid_x1 = column_x(C - 1) + cell_w;
  const std::string full_title = p::printable(options.title);
  int64_t W = grid_x1 + pad;
  if (!full_title.empty())
    W = std::max(W, std::min(p::text_width(full_title, ts) + 2 * pad, max_side));
  const int64_t header_top = pad + (full_title.empty() ? 0 : p::line_height(ts) + pad);
  const int64_t grid_y0 = header_top + header_h + gap;
  const int64_t H = grid_y0 + static_cast<int64_t>(R) * cell_h + pad;
  if (W > max_side || H > max_side)
    fail("rank_grid: ", R, " rows x ", columns.size(), " columns need a ", W, "x", H,
         " image, more than ", max_side, "x", max_side,
         " pixels; lower cell_width, cell_height or text_scale, or split the table");

  Image image(3, H, W, 1.f);
  p::Canvas canvas(image);
  p::draw_centred(canvas, p::fit_text(full_title, W - 2 * pad, ts), grid_x0, grid_x1, pad, pad, ts,
                  p::kInk);
  for (size_t c = 0; c < C; ++c) {
    const int64_t cx = column_x(c) + (cell_w - 1) / 2;
    if (vertical)  // reads upwards and ends just above the grid
      p::draw_text(canvas, headers[c], cx - p::cap_height(s) / 2, grid_y0 - gap, s, p::kInk, true);
    else
      p::draw_text(canvas, headers[c], cx - p::text_width(headers[c], s) / 2,
                   grid_y0 - gap - p::cap_height(s), s, p::kInk);
  }
  // Cells leave a 1-pixel white seam on their right and bottom.
  for (size_t r = 0; r < R; ++r) {
    const int64_t y = grid_y0 + static_cast<int64_t>(r) * cell_h;
    p::draw_text(canvas, row_labels[r], pad, y + (cell_h - 1 - p::cap_height(s)) / 2, s, p::kInk);
    for (size_t c = 0; c < C; ++c) {
      const int64_t x = column_x(c);
      canvas.fill(x, y, x + cell_w - 1, y + cell_h - 1, p::rank_color(values[r][c], worst[c]));
      const std::string text = p::fit_text(p::format_rank(values[r][c]), cell_w - 3, s);
      p::draw_text(canvas, text, x + (cell_w - 1 - p::text_width(text, s)) / 2,
                   y + (cell_h - 1 - p::cap_height(s)) / 2, s, p::kInk);
    }
  }
  return image;
}

// A white RGB tile with `text` centred (shortened with ".." if it does not fit): row and
// column headers for figure grids (io/heatmap.hpp's grid()).
inline Image text_tile(std::string_view text, int64_t height, int64_t width, int text_scale = 1) {
  namespace p = detail::plot;
  if (height < 1 || width < 1 || height > 16384 || width > 16384)
    detail::fail("text_tile: size ", height, "x", width, " is outside 1..16384 per side");
  if (text_scale < 1 || text_scale > 8) detail::fail("text_tile: text_scale ", text_scale, " is outside 1..8");
  Image image(3, height, width, 1.f);
  p::Canvas canvas(image);
  const auto fitted = p::fit_text(text, width - 2, text_scale);
  p::draw_text(canvas, fitted, (width - p::text_width(fitted, text_scale)) / 2,
               (height - p::cap_height(text_scale)) / 2, text_scale, p::kInk);
  return image;
}

}  // namespace salient
