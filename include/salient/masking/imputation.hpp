#pragma once
// Noisy linear imputation (Rong, Leemann et al. 2022, "A Consistent and Efficient Evaluation
// Strategy for Attribution Methods", ROAD; Quantus' `noisy_linear_imputation`): a removed
// pixel becomes the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12
// for the diagonals; neighbours outside the image drop out and the weights of the rest are
// not renormalised to 1 but divided by their sum), removed neighbours being unknowns too, plus
// N(0, noise^2) per value. Each channel solves one sparse symmetric positive definite system
// (at least one pixel kept; the 8-neighbour grid is connected), here by a sparse Cholesky
// (Eigen's SimplicialLDLT: exact, like the SuperLU solve of Quantus' scipy.sparse.linalg.spsolve).
// Unlike a constant fill, the removed region neither carries a colour nor a sharp mask edge
// the classifier could read.
//
// A masker (masking/masker.hpp) like any other: usable by deletion curves, occlusion, LIME and
// ROAD alike. Masks are binarised at 0.5 (1 = keep). The noise of a masked copy is seeded by
// the masker's seed and the mask itself, so results do not depend on batch size or order.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>

#include "salient/core/error.hpp"
#include "salient/core/model.hpp"
#include "salient/core/random.hpp"
#include "salient/masking/masker.hpp"

namespace salient {

namespace detail {
// Image `values` [C,H,W] (row-major) with the pixels where keep[p] is false imputed in place.
inline void impute_linearly(std::vector<double>& values, const std::vector<bool>& keep, int64_t channels, int64_t h,
                            int64_t w, double noise, uint64_t seed) {
  const int64_t pixels = h * w;
  std::vector<int64_t> unknown_of(static_cast<std::size_t>(pixels), -1), removed;
  for (int64_t p = 0; p < pixels; ++p)
    if (!keep[p]) unknown_of[p] = static_cast<int64_t>(removed.size()), removed.push_back(p);
  const auto n = static_cast<int64_t>(removed.size());
  if (n == 0) return;
  if (n == pixels) fail("noisy linear imputation needs at least one kept pixel; the mask removes all ", pixels);
  struct Offset {
    int dy, dx;
    double weight;
  };
  static constexpr Offset offsets[] = {{1, 1, 1.0 / 12}, {0, 1, 1.0 / 6},  {-1, 1, 1.0 / 12}, {1, -1, 1.0 / 12},
                                       {0, -1, 1.0 / 6}, {-1, -1, 1.0 / 12}, {1, 0, 1.0 / 6},  {-1, 0, 1.0 / 6}};
  // K v = b with K = diag(sum of in-image neighbour weights) - (weights between unknowns),
  // b = the weighted kept neighbours.
  std::vector<Eigen::Triplet<double>> entries;
  entries.reserve(static_cast<std::size_t>(n) * 9);
  Eigen::MatrixXd b = Eigen::MatrixXd::Zero(n, channels);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = removed[i] / w, x = removed[i] % w;
    double diagonal = 0;
    for (const auto& o : offsets) {
      const int64_t ny = y + o.dy, nx = x + o.dx;
      if (ny < 0 || ny >= h || nx < 0 || nx >= w) continue;
      diagonal += o.weight;
      const int64_t q = ny * w + nx;
      if (keep[q]) {
        for (int64_t c = 0; c < channels; ++c) b(i, c) += o.weight * values[c * pixels + q];
      } else {
        entries.emplace_back(i, unknown_of[q], -o.weight);
      }
    }
    entries.emplace_back(i, i, diagonal);
  }
  Eigen::SparseMatrix<double> system(n, n);
  system.setFromTriplets(entries.begin(), entries.end());
  Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> solver(system);
  if (solver.info() != Eigen::Success) fail("noisy linear imputation: the system of ", n, " removed pixels is singular");
  const Eigen::MatrixXd solution = solver.solve(b);
  Random random(seed);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < n; ++i) values[c * pixels + removed[i]] = solution(i, c) + noise * random.normal();
}

// A seed from a binary mask's bits (FNV-1a over the removed positions).
inline uint64_t mask_seed(const std::vector<bool>& keep, uint64_t seed) {
  uint64_t hash = 1469598103934665603ull;
  for (std::size_t p = 0; p < keep.size(); ++p)
    if (!keep[p]) hash = (hash ^ static_cast<uint64_t>(p)) * 1099511628211ull;
  return mix_seed(seed, hash, 0);
}
}  // namespace detail

template <TensorBackend B>
class BasicImputationMasker {
 public:
  using Tensor = typename B::Tensor;
  // noise: standard deviation of the noise added to imputed values, in model-input units
  // (Quantus' default 0.01).
  explicit BasicImputationMasker(double noise = 0.01, uint64_t seed = 0) : noise_(noise), seed_(seed) {
    if (!(noise >= 0) || !std::isfinite(noise)) detail::fail("imputation noise must be finite and >= 0, got ", noise);
  }
  std::string name() const { return "noisy_linear_imputation"; }

  // The imputed inputs [M,C,H,W] for one image (or one per mask).
  Tensor masked_inputs(const Tensor& image, const Tensor& masks) const {
    detail::check_inputs<B>(image);
    const auto m = detail::check_masks<B>(masks, image);
    detail::check_image_count<B>(image, B::rows(m));
    return impute(image, m, 0, B::rows(m));
  }

  template <ForwardModel M>
    requires std::same_as<BackendOf<M>, B>
  Tensor outputs(M& model, const Tensor& image, const Tensor& masks, const MaskerOptions& options = {}) const {
    detail::check_inputs<B>(image);
    const auto m = detail::check_masks<B>(masks, image);
    detail::check_image_count<B>(image, B::rows(m));
    return detail::masked_chunks<B>(B::rows(m), options, [&](int64_t begin, int64_t end) {
      return Tensor(model.forward(impute(image, m, begin, end)));
    });
  }

 private:
  Tensor impute(const Tensor& image, const Tensor& masks, int64_t begin, int64_t end) const {
    const auto shape = B::shape(image);
    const int64_t channels = shape[1], h = shape[2], w = shape[3], per_image = channels * h * w;
    const auto mask_values = B::to_vector(B::slice_rows(masks, begin, end));
    const auto images = B::to_vector(detail::rows_for<B>(image, begin, end));
    std::vector<double> out(static_cast<std::size_t>((end - begin) * per_image));
    for (int64_t r = 0; r < end - begin; ++r) {
      const std::size_t source = B::rows(image) == 1 ? 0 : static_cast<std::size_t>(r * per_image);
      std::vector<double> values(images.begin() + source, images.begin() + source + per_image);
      std::vector<bool> keep(static_cast<std::size_t>(h * w));
      for (int64_t p = 0; p < h * w; ++p) keep[p] = mask_values[r * h * w + p] >= 0.5;
      detail::impute_linearly(values, keep, channels, h, w, noise_, detail::mask_seed(keep, seed_));
      std::copy(values.begin(), values.end(), out.begin() + r * per_image);
    }
    return B::from_values(out, {end - begin, channels, h, w}, image);
  }

  double noise_;
  uint64_t seed_;
};

}  // namespace salient
