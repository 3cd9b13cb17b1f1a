#pragma once
// Sobol attribution (Fel, Cadène, Chalvidal, Cord, Vigouroux, Serre 2021, "Look at the
// Variance! Efficient Black-box Explanations with Sobol-based Sensitivity Analysis"), with
// Xplique's definitions (SobolAttributionMethod, JansenEstimator):
//
// The image is cut into a grid x grid of cells, each a variable m_i in [0, 1] that scales the
// cell (through any masker: m = 1 keeps it, 0 removes it, between blends; layer masking
// included). Two quasi-Monte Carlo matrices A and B (`designs` rows, grid^2 columns) come from
// one Sobol' sequence of 2 grid^2 dimensions (A the first half of each point, B the second),
// and C_i is A with column i taken from B. With f the target score of the masked image, the
// total-order index of cell i is Jansen's estimator
//
//   ST_i = sum_n (f(A_n) - f(C_i,n))^2 / (2 N Var(f(A))),   Var with ddof 1 (at least 1e-12)
//
// ST_i is the share of the score's variance that involves cell i, alone or with others. The
// grid of indices is upsampled to the image by bicubic interpolation (OpenCV's INTER_CUBIC,
// as Xplique), its undershoot below 0 clamped (Xplique keeps it; an index is never negative). Masks are upsampled to the image by nearest neighbour (TensorFlow's, half-pixel
// centres). Cost: designs x (grid^2 + 1) masked forwards (Xplique also evaluates B, which
// Jansen's estimator does not use).
//
// The Sobol' points: the Gray-code construction (Bratley & Fox 1988) with 32-bit direction
// numbers, dimension 1 the van der Corput sequence, dimension j > 1 the (j-1)-th primitive
// polynomial over GF(2) in order of degree and coefficients (found by the order of x, not read
// from a table); the free initial direction numbers m_k (odd, < 2^k) are drawn from salient's
// seeded generator instead of Joe & Kuo's optimised table that SciPy uses, so the masks are
// not SciPy's point for point (every 1-D projection is still a (0,1)-sequence: with a power
// of two designs each column is stratified exactly).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "salient/attribution/detail/perturbation_engine.hpp"
#include "salient/core/random.hpp"
#include "salient/core/resample.hpp"

namespace salient {

template <ForwardModel M>
struct SobolOptions {
  int64_t grid = 8;      // cells per side (Xplique's grid_size)
  int64_t designs = 32;  // rows of A and B (Xplique's nb_design); a power of two keeps the points balanced
  PerturbationOptions<M> evaluation = {};
};

template <class M, class Visit>
void for_each_option(SobolOptions<M>& o, Visit&& visit) {
  visit("grid", o.grid), visit("designs", o.designs);
  for_each_option(o.evaluation, visit);
}

namespace detail {
// Carry-less product of two polynomials over GF(2) (degree < 32) modulo `modulus`.
inline uint64_t gf2_mulmod(uint64_t a, uint64_t b, uint64_t modulus, int degree) {
  uint64_t product = 0;
  for (; b; b >>= 1) {
    if (b & 1) product ^= a;
    a <<= 1;
    if (a >> degree & 1) a ^= modulus;
  }
  return product;
}
inline uint64_t gf2_powmod_x(uint64_t exponent, uint64_t modulus, int degree) {
  uint64_t result = 1, base = degree == 1 ? (2 ^ modulus) : 2;  // x mod the modulus
  for (; exponent; exponent >>= 1) {
    if (exponent & 1) result = gf2_mulmod(result, base, modulus, degree);
    base = gf2_mulmod(base, base, modulus, degree);
  }
  return result;
}
// Primitive: x has order exactly 2^s - 1 modulo the polynomial (then it is also irreducible).
inline bool gf2_primitive(uint64_t polynomial, int degree) {
  const uint64_t order = (uint64_t{1} << degree) - 1;
  if (gf2_powmod_x(order, polynomial, degree) != 1) return false;
  uint64_t rest = order;
  for (uint64_t q = 2; q * q <= rest; ++q) {
    if (rest % q) continue;
    while (rest % q == 0) rest /= q;
    if (gf2_powmod_x(order / q, polynomial, degree) == 1) return false;
  }
  return rest == 1 || gf2_powmod_x(order / rest, polynomial, degree) != 1;
}

// `count` points of the `dims`-dimensional Sobol' sequence (first point 0), row-major.
inline std::vector<double> sobol_points(int64_t dims, int64_t count) {
  constexpr int bits = 32;
  std::vector<std::vector<uint32_t>> directions;
  directions.reserve(static_cast<std::size_t>(dims));
  directions.push_back({});
  for (int k = 1; k <= bits; ++k) directions[0].push_back(uint32_t{1} << (bits - k));
  Random random(0x50b01);
  for (int degree = 1; static_cast<int64_t>(directions.size()) < dims && degree < bits; ++degree)
    for (uint64_t middle = 0; middle < (uint64_t{1} << (degree - 1)) && static_cast<int64_t>(directions.size()) < dims; ++middle) {
      const uint64_t polynomial = uint64_t{1} << degree | middle << 1 | 1;
      if (!gf2_primitive(polynomial, degree)) continue;
      std::vector<uint64_t> m(bits + 1);
      for (int k = 1; k <= degree && k <= bits; ++k)
        m[k] = 2 * static_cast<uint64_t>(random.uniform() * static_cast<double>(uint64_t{1} << (k - 1))) + 1;
      for (int k = degree + 1; k <= bits; ++k) {  // m_k = xor_j 2^j a_j m_{k-j}, a_s = 1, then m_{k-s}
        uint64_t value = m[k - degree] ^ (m[k - degree] << degree);
        for (int j = 1; j < degree; ++j)
          if (polynomial >> (degree - j) & 1) value ^= m[k - j] << j;
        m[k] = value;
      }
      std::vector<uint32_t> v;
      for (int k = 1; k <= bits; ++k) v.push_back(static_cast<uint32_t>(m[k] << (bits - k)));
      directions.push_back(std::move(v));
    }
  std::vector<double> points(static_cast<std::size_t>(dims * count), 0.0);
  std::vector<uint32_t> x(static_cast<std::size_t>(dims), 0);
  for (int64_t i = 1; i < count; ++i) {
    int lowest_zero = 0;  // of i - 1: the Gray code changes that bit
    for (uint64_t c = static_cast<uint64_t>(i - 1); c & 1; c >>= 1) ++lowest_zero;
    for (int64_t d = 0; d < dims; ++d) {
      x[d] ^= directions[d][lowest_zero];
      points[i * dims + d] = static_cast<double>(x[d]) / 4294967296.0;
    }
  }
  return points;
}

// Jansen's total-order estimator from f(A) (N values) and f(C_i) (dims x N values).
inline std::vector<double> jansen_total_indices(const std::vector<double>& f_a, const std::vector<double>& f_c) {
  const auto n = static_cast<int64_t>(f_a.size());
  const int64_t dims = static_cast<int64_t>(f_c.size()) / n;
  double mean = 0;
  for (const double f : f_a) mean += f;
  mean /= static_cast<double>(n);
  double squares = 0;
  for (const double f : f_a) squares += (f - mean) * (f - mean);
  const double variance = std::max(squares / std::max<double>(static_cast<double>(n - 1), 1.0), 1e-12);
  std::vector<double> indices(static_cast<std::size_t>(dims));
  for (int64_t i = 0; i < dims; ++i) {
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) sum += (f_a[k] - f_c[i * n + k]) * (f_a[k] - f_c[i * n + k]);
    indices[i] = sum / (2.0 * static_cast<double>(n) * variance);
  }
  return indices;
}
}  // namespace detail

// The total-order Sobol' index of each grid cell, per item (grid x grid values, row-major).
template <ForwardModel M>
std::vector<std::vector<double>> sobol_total_indices(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target,
                                                     const SobolOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto& evaluation = options.evaluation;
  const auto image_size = detail::check_perturbation_inputs(inputs, evaluation);
  if (options.grid < 1 || options.grid > 64) detail::fail("Sobol attribution grid must be in [1, 64] cells per side, got ", options.grid);
  if (options.designs < 2 || options.designs > 65'536)
    detail::fail("Sobol attribution designs must be in [2, 65536], got ", options.designs);
  const int64_t n = image_size.n, h = image_size.h, w = image_size.w, grid = options.grid, dims = grid * grid;
  const int64_t designs = options.designs, count = designs * (dims + 1);  // A, then C_1 .. C_dims
  const auto points = detail::sobol_points(2 * dims, designs);
  // Row r of the design: A_r for r < N, else C_i,k with i = r / N - 1, k = r % N; float32 as Xplique.
  const auto cell_value = [&](int64_t r, int64_t cell) {
    const int64_t k = r % designs, i = r / designs - 1;
    return static_cast<double>(static_cast<float>(points[k * 2 * dims + cell + (cell == i ? dims : 0)]));
  };
  // Nearest-neighbour upsampling with half-pixel centres: the cell of each pixel row / column.
  const auto cells_along = [&](int64_t size) {
    std::vector<int64_t> cell(static_cast<std::size_t>(size));
    for (int64_t i = 0; i < size; ++i)
      cell[i] = std::min(grid - 1, static_cast<int64_t>((static_cast<double>(i) + 0.5) * static_cast<double>(grid) / static_cast<double>(size)));
    return cell;
  };
  const auto cell_row = cells_along(h), cell_col = cells_along(w);
  const auto resolved = resolve_target(model, inputs, target);
  detail::EvaluationCounter counter(evaluation.progress, n * count);
  std::vector<std::vector<double>> indices;
  for (int64_t item = 0; item < n; ++item) {
    const auto scores = detail::masked_scores(
        model, B::slice_rows(inputs, item, item + 1), resolved.slice(item, item + 1), count,
        [&](int64_t begin, int64_t end) {
          std::vector<double> masks(static_cast<std::size_t>((end - begin) * h * w));
          std::vector<double> cells(static_cast<std::size_t>(dims));
          for (int64_t r = begin; r < end; ++r) {
            for (int64_t cell = 0; cell < dims; ++cell) cells[cell] = cell_value(r, cell);  // once per mask, not per pixel
            for (int64_t y = 0; y < h; ++y)
              for (int64_t x = 0; x < w; ++x) masks[((r - begin) * h + y) * w + x] = cells[cell_row[y] * grid + cell_col[x]];
          }
          return detail::mask_tensor<B>(masks, h, w, inputs);
        },
        evaluation, counter);
    const std::vector<double> f_a(scores.begin(), scores.begin() + designs), f_c(scores.begin() + designs, scores.end());
    indices.push_back(detail::jansen_total_indices(f_a, f_c));
  }
  return indices;
}

// The indices upsampled to the image (bicubic, OpenCV's INTER_CUBIC as Xplique, clamped at 0):
// [N, 1, H, W].
template <ForwardModel M>
TensorOf<M> sobol_attribution(M& model, const TensorOf<M>& inputs, const TargetOf<M>& target, const SobolOptions<M>& options = {}) {
  using B = BackendOf<M>;
  const auto indices = sobol_total_indices(model, inputs, target, options);
  const auto shape = B::shape(inputs);
  std::vector<std::vector<double>> maps;
  for (const auto& grid : indices) {
    maps.push_back(detail::resize_bicubic(grid, 1, options.grid, options.grid, shape[2], shape[3]));
    for (auto& v : maps.back()) v = std::max(v, 0.0);
  }
  return detail::maps_tensor<B>(maps, shape[2], shape[3], inputs);
}

}  // namespace salient
