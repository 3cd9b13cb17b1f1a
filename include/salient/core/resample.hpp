#pragma once
// Bilinear and bicubic resampling of planes of doubles on the host (PyTorch's `interpolate`
// conventions), for the maps and masks the backend-neutral methods make: RISE's grids, CAM
// upsampling, Score-CAM's channel masks, Sobol attribution's index grids.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace salient::detail {

// An output position's two source positions and their weights.
struct BilinearTap {
  int64_t i0, i1;
  double w0, w1;
};

// The taps of `out` positions resampled from `in`: align_corners = false maps pixel centres
// (source = (o + 0.5) * in / out - 0.5, clamped at 0), true maps the corner pixels onto each
// other (source = o * (in - 1) / (out - 1)).
inline std::vector<BilinearTap> bilinear_taps(int64_t in, int64_t out, bool align_corners) {
  std::vector<BilinearTap> taps;
  taps.reserve(static_cast<std::size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    double source;
    if (align_corners)
      source = out > 1 ? static_cast<double>(o) * static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
    else
      source = std::max(0.0, static_cast<double>(in) / static_cast<double>(out) * (static_cast<double>(o) + 0.5) - 0.5);
    const auto i0 = std::min(static_cast<int64_t>(source), in - 1);
    const int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
    const double w1 = source - static_cast<double>(i0);
    taps.push_back({i0, i1, 1.0 - w1, w1});
  }
  return taps;
}

// `planes` planes of h x w (row-major, one after another) resampled to out_h x out_w.
inline std::vector<double> resize_bilinear(const std::vector<double>& values, int64_t planes, int64_t h, int64_t w,
                                           int64_t out_h, int64_t out_w, bool align_corners) {
  const auto rows = bilinear_taps(h, out_h, align_corners), cols = bilinear_taps(w, out_w, align_corners);
  std::vector<double> out(static_cast<std::size_t>(planes * out_h * out_w));
  for (int64_t p = 0; p < planes; ++p) {
    const double* g = values.data() + p * h * w;
    double* o = out.data() + p * out_h * out_w;
    for (int64_t y = 0; y < out_h; ++y) {
      const auto& r = rows[static_cast<std::size_t>(y)];
      for (int64_t x = 0; x < out_w; ++x) {
        const auto& c = cols[static_cast<std::size_t>(x)];
        const double top = c.w0 * g[r.i0 * w + c.i0] + c.w1 * g[r.i0 * w + c.i1];
        const double bottom = c.w0 * g[r.i1 * w + c.i0] + c.w1 * g[r.i1 * w + c.i1];
        o[y * out_w + x] = r.w0 * top + r.w1 * bottom;
      }
    }
  }
  return out;
}

// PyTorch's interpolate(mode = "bicubic", align_corners = false), which is also OpenCV's
// INTER_CUBIC when upsampling: Keys' cubic with a = -0.75, source = (o + 0.5) * in / out - 0.5
// (not clamped), the four taps around it with indices clamped to the plane.
inline std::vector<double> resize_bicubic(const std::vector<double>& values, int64_t planes, int64_t h, int64_t w,
                                          int64_t out_h, int64_t out_w) {
  struct CubicTap {
    int64_t index[4];
    double weight[4];
  };
  const auto taps = [](int64_t in, int64_t out) {
    constexpr double a = -0.75;
    std::vector<CubicTap> result(static_cast<std::size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      const double source = static_cast<double>(in) / static_cast<double>(out) * (static_cast<double>(o) + 0.5) - 0.5;
      const double floor = std::floor(source), t = source - floor;
      const auto near = [&](double x) { return ((a + 2) * x - (a + 3)) * x * x + 1; };     // |x| <= 1
      const auto far = [&](double x) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; };  // 1 < |x| < 2
      const double weights[4] = {far(t + 1), near(t), near(1 - t), far(2 - t)};
      for (int k = 0; k < 4; ++k) {
        result[o].index[k] = std::clamp<int64_t>(static_cast<int64_t>(floor) - 1 + k, 0, in - 1);
        result[o].weight[k] = weights[k];
      }
    }
    return result;
  };
  const auto rows = taps(h, out_h), cols = taps(w, out_w);
  std::vector<double> out(static_cast<std::size_t>(planes * out_h * out_w));
  for (int64_t p = 0; p < planes; ++p) {
    const double* g = values.data() + p * h * w;
    double* o = out.data() + p * out_h * out_w;
    for (int64_t y = 0; y < out_h; ++y)
      for (int64_t x = 0; x < out_w; ++x) {
        double sum = 0;
        for (int i = 0; i < 4; ++i) {
          double row = 0;
          for (int j = 0; j < 4; ++j) row += cols[x].weight[j] * g[rows[y].index[i] * w + cols[x].index[j]];
          sum += rows[y].weight[i] * row;
        }
        o[y * out_w + x] = sum;
      }
  }
  return out;
}

}  // namespace salient::detail
