#pragma once
// The linear fits behind LIME and KernelSHAP (Eigen, double precision, LibTorch-free).
//
// - weighted_ridge: minimise sum_i w_i (y_i - b - z_i . beta)^2 + alpha |beta|^2, the
//   intercept b not penalised (scikit-learn's Ridge with sample weights): the features and
//   targets are centred on their weighted means and the normal equations solved.
// - efficient_least_squares: minimise sum_i w_i (y_i - y_empty - z_i . phi)^2 subject to
//   sum(phi) = y_full - y_empty (KernelSHAP's efficiency constraint), by eliminating the last
//   coefficient; a minimum-norm solution when the samples do not determine every coefficient.
//
// Both take any Eigen matrix expression of the samples (a block or a map needs no copy); as
// templates they also leave Eigen's solvers uncompiled in code that includes but never fits.
#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "salient/core/error.hpp"

namespace salient {

struct LinearFit {
  std::vector<double> coefficients;  // one per feature
  double intercept = 0;
  double r2 = 0;  // weighted coefficient of determination of the fit on its samples
};

namespace detail {
template <class Samples>
void check_samples(const Eigen::MatrixBase<Samples>& z, const Eigen::VectorXd& y, const Eigen::VectorXd& w) {
  if (z.rows() != y.size() || w.size() != y.size())
    fail("linear fit: ", z.rows(), " samples, ", y.size(), " targets and ", w.size(), " weights");
  if (z.rows() < 1 || z.cols() < 1) fail("linear fit needs at least one sample and one feature");
  if (!z.allFinite() || !y.allFinite() || !w.allFinite()) fail("linear fit: samples, targets or weights not finite");
  if ((w.array() < 0).any() || w.sum() <= 0) fail("linear fit: weights must be non-negative and not all zero");
}

template <class Predicted>
double weighted_r2(const Eigen::VectorXd& y, const Eigen::MatrixBase<Predicted>& predicted, const Eigen::VectorXd& w) {
  const double mean = w.dot(y) / w.sum();
  const double total = (w.array() * (y.array() - mean).square()).sum();
  const double residual = (w.array() * (y - predicted).array().square()).sum();
  return total > 0 ? 1.0 - residual / total : (residual == 0 ? 1.0 : 0.0);
}
}  // namespace detail

template <class Samples>
LinearFit weighted_ridge(const Eigen::MatrixBase<Samples>& z, const Eigen::VectorXd& y, const Eigen::VectorXd& w,
                         double alpha) {
  detail::check_samples(z, y, w);
  if (!(alpha >= 0)) detail::fail("ridge regularisation must be >= 0, got ", alpha);
  const double total = w.sum();
  const Eigen::RowVectorXd z_mean = (w.transpose() * z) / total;
  const double y_mean = w.dot(y) / total;
  const Eigen::MatrixXd zc = z.rowwise() - z_mean;
  const Eigen::VectorXd yc = y.array() - y_mean;
  Eigen::MatrixXd normal = zc.transpose() * w.asDiagonal() * zc;
  normal.diagonal().array() += alpha;
  const Eigen::VectorXd rhs = zc.transpose() * (w.asDiagonal() * yc);
  // Minimum-norm least squares also when alpha = 0 and some feature never varies.
  const Eigen::VectorXd beta = normal.completeOrthogonalDecomposition().solve(rhs);
  LinearFit fit;
  fit.coefficients.assign(beta.data(), beta.data() + beta.size());
  fit.intercept = y_mean - z_mean.dot(beta);
  fit.r2 = detail::weighted_r2(y, ((z * beta).array() + fit.intercept).matrix(), w);
  return fit;
}

template <class Samples>
LinearFit efficient_least_squares(const Eigen::MatrixBase<Samples>& z, const Eigen::VectorXd& y,
                                  const Eigen::VectorXd& w, double y_empty, double y_full) {
  detail::check_samples(z, y, w);
  const int64_t m = z.cols();
  const double total = y_full - y_empty;
  Eigen::VectorXd phi(m);
  if (m == 1) {
    phi(0) = total;
  } else {
    // phi_last = total - sum(others): y - y_empty - z_last * total = (z_j - z_last) . phi_others
    const Eigen::MatrixXd x = z.leftCols(m - 1).colwise() - z.col(m - 1);
    const Eigen::VectorXd target = (y.array() - y_empty).matrix() - z.col(m - 1) * total;
    const Eigen::VectorXd sw = w.array().sqrt();
    const Eigen::VectorXd others = (sw.asDiagonal() * x).completeOrthogonalDecomposition().solve(sw.asDiagonal() * target);
    phi.head(m - 1) = others;
    phi(m - 1) = total - others.sum();
  }
  LinearFit fit;
  fit.coefficients.assign(phi.data(), phi.data() + phi.size());
  fit.intercept = y_empty;
  fit.r2 = detail::weighted_r2(y, ((z * phi).array() + y_empty).matrix(), w);
  return fit;
}

}  // namespace salient
