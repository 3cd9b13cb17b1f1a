#pragma once
// The arithmetic of layer masking (Balasubramanian & Feizi 2023, "Towards Improved Input
// Masking for Convolutional Neural Networks", CVPR 2023), written once over plain arrays so
// that any backend drives it: graph/masked_rules.hpp applies it to TorchScript models,
// core/analytic_cnn.hpp to the analytic CNN of the tests.
//
// A binary mask (1 = keep) travels with every activation, one plane per item. Per op:
// - convolution: removed input positions are first filled from kept neighbours
//   (neighbour_fill, planned once per mask by plan_neighbour_fill); the output's mask is the
//   input's max-pooled with the convolution's window (pool_mask).
// - max pooling over kept positions only (masked_max_pool); average pooling over kept
//   positions only, scaled so that an all-ones mask gives exactly the plain op
//   (masked_average_pool). A window with no kept position gives 0 and is removed.
// - element-wise ops: the op itself, the masks of the operands multiplied.
// - the end of the mask (flatten into a linear head): removed positions become 0.
// Planes are row-major h x w arrays; a mask plane holds 0 or 1.
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"

namespace salient::masking {

// A pooling or convolution window per spatial dimension (rows, columns); floor mode.
struct Window {
  std::array<int64_t, 2> kernel{1, 1};
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};

  int64_t output_size(int64_t size, int d) const {
    const int64_t reach = dilation[d] * (kernel[d] - 1) + 1;
    const int64_t padded = size + 2 * padding[d];
    if (padded < reach) detail::fail("layer masking: a window of ", reach, " does not fit ", size, " positions");
    return (padded - reach) / stride[d] + 1;
  }
  // An output position's window start (may be negative: padding).
  int64_t first(int64_t out, int d) const { return out * stride[d] - padding[d]; }
  bool pointwise() const {
    return kernel == std::array<int64_t, 2>{1, 1} && stride == std::array<int64_t, 2>{1, 1} &&
           padding == std::array<int64_t, 2>{0, 0};
  }
};

// The rounds of neighbour fill a convolution needs: a kept output's window reaches at most
// (kernel - 1) * dilation positions away from the kept input that keeps it, so deeper fills
// are never read (the paper's reference implementation runs `kernel size` rounds; for
// undilated kernels the kept outputs are the same).
inline int64_t fill_rounds(const Window& w) {
  return std::max((w.kernel[0] - 1) * w.dilation[0], (w.kernel[1] - 1) * w.dilation[1]);
}

// The mask of a window op's output: a position is kept when its window holds any kept input
// (padding is not kept). Separable: rows, then columns. `mask` is h x w, `out` the window's
// output size.
template <class T>
void pool_mask(const T* mask, int64_t h, int64_t w, const Window& window, T* out) {
  const int64_t oh = window.output_size(h, 0), ow = window.output_size(w, 1);
  std::vector<T> rows(static_cast<std::size_t>(oh * w), T(0));  // pooled along rows first
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t k = 0; k < window.kernel[0]; ++k) {
      const int64_t sy = window.first(y, 0) + k * window.dilation[0];
      if (sy < 0 || sy >= h) continue;
      for (int64_t x = 0; x < w; ++x) rows[y * w + x] = std::max(rows[y * w + x], mask[sy * w + x]);
    }
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t x = 0; x < ow; ++x) {
      T best = 0;
      for (int64_t k = 0; k < window.kernel[1]; ++k) {
        const int64_t sx = window.first(x, 1) + k * window.dilation[1];
        if (sx >= 0 && sx < w) best = std::max(best, rows[y * w + sx]);
      }
      out[y * ow + x] = best;
    }
}

// Neighbour fill, planned: which removed positions each round fills and from which kept
// neighbours. Each round, every removed position next to a known one (3x3) takes the mean of
// its known neighbours, and counts as known from then on. A function of the mask alone, so it
// is planned once per mask plane and replayed on every channel. Only the ring of removed
// positions next to kept ones is touched, so a convolution whose windows see no removed
// position costs nothing extra.
struct FillPlan {
  struct Entry {
    int32_t position;  // y * width + x
    int32_t count;     // known neighbours
    double weight;     // 1 / count
    std::array<int32_t, 8> neighbours;
  };
  std::vector<std::vector<Entry>> rounds;
  std::vector<std::pair<int32_t, int32_t>> removed_runs;  // (start, length) in row order
};

template <class T>
FillPlan plan_neighbour_fill(const T* mask, int64_t h, int64_t w, int64_t rounds) {
  if (h * w > std::numeric_limits<int32_t>::max()) detail::fail("layer masking: a ", h, "x", w, " plane is too large");
  FillPlan plan;
  std::vector<uint8_t> known(static_cast<std::size_t>(h * w)), queued(static_cast<std::size_t>(h * w), 0);
  for (int64_t i = 0; i < h * w; ++i) {
    known[i] = mask[i] > T(0);
    if (known[i]) continue;
    auto& runs = plan.removed_runs;
    if (!runs.empty() && runs.back().first + runs.back().second == i)
      ++runs.back().second;
    else
      runs.emplace_back(static_cast<int32_t>(i), 1);
  }
  auto for_neighbours = [&](int64_t position, auto&& visit) {
    const int64_t y = position / w, x = position % w;
    for (int64_t ny = std::max<int64_t>(y - 1, 0); ny <= std::min(y + 1, h - 1); ++ny)
      for (int64_t nx = std::max<int64_t>(x - 1, 0); nx <= std::min(x + 1, w - 1); ++nx) visit(ny * w + nx);
  };
  std::vector<int32_t> candidates;  // the next round's positions, in row order
  for (auto [start, length] : plan.removed_runs)
    for (int32_t i = start; i < start + length; ++i) {
      bool near = false;
      for_neighbours(i, [&](int64_t n) { near = near || known[n]; });
      if (near) candidates.push_back(i);
    }
  for (int64_t round = 0; round < rounds && !candidates.empty(); ++round) {
    std::vector<FillPlan::Entry> entries;
    entries.reserve(candidates.size());
    for (int32_t position : candidates) {
      FillPlan::Entry entry{position, 0, 0.0, {}};
      for_neighbours(position, [&](int64_t n) {
        if (known[n]) entry.neighbours[entry.count++] = static_cast<int32_t>(n);
      });
      entry.weight = 1.0 / entry.count;
      entries.push_back(entry);
    }
    for (const auto& entry : entries) known[entry.position] = 1;
    // Positions first reached next round: unknown neighbours of this round's.
    candidates.clear();
    for (const auto& entry : entries)
      for_neighbours(entry.position, [&](int64_t n) {
        if (!known[n] && !queued[n]) {
          queued[n] = 1;
          candidates.push_back(static_cast<int32_t>(n));
        }
      });
    std::sort(candidates.begin(), candidates.end());  // row order reads the plane in order
    plan.rounds.push_back(std::move(entries));
  }
  return plan;
}

// Replays a plan on one channel plane in place. With `zero_removed` the removed positions
// are first set to 0 (whatever they held: NaN and inf included), so no removed value reaches
// a kept one; positions the fill does not reach stay 0. A round writes only positions that
// none of its entries reads (they read known positions and write unknown ones), so it needs
// no buffer.
template <class T>
void neighbour_fill(T* plane, const FillPlan& plan, bool zero_removed) {
  if (zero_removed)
    for (auto [start, length] : plan.removed_runs) std::fill_n(plane + start, length, T(0));
  for (const auto& entries : plan.rounds)
    for (const auto& entry : entries) {
      T sum = 0;
      for (int32_t j = 0; j < entry.count; ++j) sum += plane[entry.neighbours[j]];
      plane[entry.position] = sum * static_cast<T>(entry.weight);
    }
}

// Max pooling over kept positions only, one channel plane: removed positions (and padding)
// take no part; a window with no kept position gives 0. The output's mask is pool_mask's.
template <class T, class M>
void masked_max_pool(const T* x, const M* mask, int64_t h, int64_t w, const Window& window, T* out) {
  const int64_t oh = window.output_size(h, 0), ow = window.output_size(w, 1);
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t xx = 0; xx < ow; ++xx) {
      bool any = false;
      T best = 0;
      for (int64_t ky = 0; ky < window.kernel[0]; ++ky) {
        const int64_t sy = window.first(y, 0) + ky * window.dilation[0];
        if (sy < 0 || sy >= h) continue;
        for (int64_t kx = 0; kx < window.kernel[1]; ++kx) {
          const int64_t sx = window.first(xx, 1) + kx * window.dilation[1];
          if (sx < 0 || sx >= w || !(mask[sy * w + sx] > M(0))) continue;
          const T v = x[sy * w + sx];
          if (!any || v > best) best = v;
          any = true;
        }
      }
      out[y * ow + xx] = best;
    }
}

// Average pooling over kept positions only, one channel plane (dilation 1). As the masked
// rule for every averaging op, op(x * m) * op(1) / op(m): with count_include_pad the plain
// op divides by the kernel size, so this is sum_kept(x) * real / (kept * kernel size);
// without, sum_kept(x) / kept. An all-ones mask gives the plain op; a window with no kept
// position gives 0.
template <class T, class M>
void masked_average_pool(const T* x, const M* mask, int64_t h, int64_t w, const Window& window, bool count_include_pad,
                         T* out) {
  if (window.dilation != std::array<int64_t, 2>{1, 1}) detail::fail("layer masking: average pooling has no dilation");
  const int64_t oh = window.output_size(h, 0), ow = window.output_size(w, 1);
  for (int64_t y = 0; y < oh; ++y)
    for (int64_t xx = 0; xx < ow; ++xx) {
      T sum = 0;
      int64_t kept = 0, real = 0, covered = 0;  // covered: positions inside the padded input
      for (int64_t ky = 0; ky < window.kernel[0]; ++ky) {
        const int64_t sy = window.first(y, 0) + ky;
        if (sy >= h + window.padding[0]) continue;
        for (int64_t kx = 0; kx < window.kernel[1]; ++kx) {
          const int64_t sx = window.first(xx, 1) + kx;
          if (sx >= w + window.padding[1]) continue;
          ++covered;
          if (sy < 0 || sx < 0 || sy >= h || sx >= w) continue;
          ++real;
          if (!(mask[sy * w + sx] > M(0))) continue;
          ++kept;
          sum += x[sy * w + sx];
        }
      }
      out[y * ow + xx] = kept == 0 ? T(0)
                         : count_include_pad
                             ? sum * static_cast<T>(real) / static_cast<T>(kept * covered)
                             : sum / static_cast<T>(kept);
    }
}

}  // namespace salient::masking
