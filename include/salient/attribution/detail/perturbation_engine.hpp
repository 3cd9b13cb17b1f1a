#pragma once
// The engine under every forward-only method (attribution/perturbation.hpp, PAMI, the
// deletion/insertion curves): masked copies of one image evaluated through a masker in
// chunks of `batch_size` (the one chunk loop), the target's score of each, and segmentations
// as plain label lists. Masks and maps are made as doubles and become tensors of the model's
// backend (the inputs' element type and device), so the methods are written once for any
// ForwardModel.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include <Eigen/Dense>

#include "salient/core/model.hpp"
#include "salient/masking/masker.hpp"

namespace salient {

// How masked inputs are evaluated.
template <ForwardModel M>
struct PerturbationOptions {
  BasicAnyMasker<M> masker = BasicFillMasker<BackendOf<M>>::zero();  // Captum's default baseline: 0 in model input
  bool probabilities = false;  // score = softmax probability of the target, else its raw output
  int64_t batch_size = 32;     // masked inputs per forward pass
  Progress progress = {};      // (masked inputs evaluated, total)
};

// The fields by name (core/options.hpp); the masker is an object, set directly.
template <class M, class Visit>
void for_each_option(PerturbationOptions<M>& o, Visit&& visit) {
  visit("probabilities", o.probabilities), visit("batch_size", o.batch_size), visit("progress", o.progress);
}

namespace detail {

// Counts masked evaluations across the items of a batch for the progress callback.
class EvaluationCounter {
 public:
  EvaluationCounter(const Progress& progress, int64_t total) : progress_(progress), total_(total) {}
  void add(int64_t n) {
    done_ += n;
    if (progress_) progress_(done_, total_);
  }

 private:
  const Progress& progress_;
  int64_t done_ = 0, total_;
};

// Batch size, height and width of images [N,C,H,W].
struct ImageSize {
  int64_t n = 0, h = 0, w = 0;
};

template <ForwardModel M>
ImageSize check_perturbation_inputs(const TensorOf<M>& inputs, const PerturbationOptions<M>& options) {
  using B = BackendOf<M>;
  check_inputs<B>(inputs);
  const auto shape = B::shape(inputs);
  if (shape.size() != 4) fail("perturbation methods need images [N,C,H,W], got shape ", shape_text(shape));
  if (options.batch_size < 1) fail("batch size must be at least 1, got ", options.batch_size);
  return {shape[0], shape[2], shape[3]};
}

// The target's score in each row of `outputs` (one image's masked copies).
template <TensorBackend B>
std::vector<double> target_scores(const typename B::Tensor& outputs, const ResolvedTarget<typename B::Tensor>& target,
                                  bool probabilities) {
  const auto& rows = target.is_custom() ? target : target.tiled(B::rows(outputs));
  if (probabilities) return B::to_vector(B::select(B::softmax_rows(outputs), rows));
  return B::to_vector(B::select(outputs, rows));
}

// The unmasked score of one image [1,C,H,W].
template <ForwardModel M>
double full_score(M& model, const TensorOf<M>& image, const ResolvedTarget<TensorOf<M>>& target,
                  const PerturbationOptions<M>& options) {
  return target_scores<BackendOf<M>>(model.forward(image), target, options.probabilities).at(0);
}

// Masks [count, 1, H, W] (1 = keep) from doubles, as tensors like `image`.
template <TensorBackend B>
typename B::Tensor mask_tensor(const std::vector<double>& values, int64_t h, int64_t w, const typename B::Tensor& like) {
  return B::from_values(values, {static_cast<int64_t>(values.size()) / (h * w), 1, h, w}, like);
}

// The one chunk loop: the image [1,C,H,W] under masks made chunk by chunk by
// `make_masks(begin, end)` ([end - begin, 1, H, W]), so that no more than one batch of masks
// exists at a time; `use(begin, end, scores)` receives each chunk's target scores.
template <ForwardModel M, class MakeMasks, class Use>
void for_each_masked_chunk(M& model, const TensorOf<M>& image, const ResolvedTarget<TensorOf<M>>& target, int64_t count,
                           MakeMasks&& make_masks, const PerturbationOptions<M>& options, EvaluationCounter& counter,
                           Use&& use) {
  for_each_chunk(count, options.batch_size, [&](int64_t begin, int64_t end) {
    auto outputs = options.masker.outputs(model, image, make_masks(begin, end), {.batch_size = options.batch_size});
    use(begin, end, target_scores<BackendOf<M>>(outputs, target, options.probabilities));
    counter.add(end - begin);
  });
}

// The scores of all `count` masks, in order.
template <ForwardModel M, class MakeMasks>
std::vector<double> masked_scores(M& model, const TensorOf<M>& image, const ResolvedTarget<TensorOf<M>>& target,
                                  int64_t count, MakeMasks&& make_masks, const PerturbationOptions<M>& options,
                                  EvaluationCounter& counter) {
  std::vector<double> scores;
  scores.reserve(static_cast<std::size_t>(count));
  for_each_masked_chunk(model, image, target, count, make_masks, options, counter,
                        [&](int64_t, int64_t, const std::vector<double>& s) { scores.insert(scores.end(), s.begin(), s.end()); });
  return scores;
}

// A segmentation of one image: per pixel (row-major) a label 0..count-1, consecutive in the
// order of the original labels.
struct Segments {
  std::vector<int64_t> labels;
  int64_t count = 0;
};

// Any integer labels per pixel, renumbered 0..K-1 in the order of their values.
inline Segments segments_from_labels(std::vector<int64_t> labels) {
  std::vector<int64_t> values = labels;
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  for (auto& label : labels) label = std::lower_bound(values.begin(), values.end(), label) - values.begin();
  return {std::move(labels), static_cast<int64_t>(values.size())};
}

// The segmentation of item `item` from `segments` [H,W] (one for all items) or [N,H,W].
template <TensorBackend B>
Segments segments_of(const std::optional<typename B::Tensor>& segments, const typename B::Tensor& inputs, int64_t item) {
  if (!segments) fail("this method needs a segmentation: set the options' `segments` to a label map [H,W] or [N,H,W]");
  const auto input_shape = B::shape(inputs), shape = B::shape(*segments);
  const int64_t n = input_shape[0], h = input_shape[2], w = input_shape[3];
  const bool fits = (shape.size() == 2 && shape[0] == h && shape[1] == w) ||
                    (shape.size() == 3 && shape[1] == h && shape[2] == w && (shape[0] == 1 || shape[0] == n));
  if (!fits)
    fail("segments of shape ", shape_text(shape), " do not fit ", n, " images of ", h, "x", w, " (expected [", h, ",",
         w, "] or [", n, ",", h, ",", w, "])");
  const bool per_item = shape.size() == 3 && shape[0] > 1;
  return segments_from_labels(B::labels(per_item ? B::slice_rows(*segments, item, item + 1) : *segments));
}

// Masks (doubles, [rows of z] x pixels) keeping in mask r the segments whose z(r, k) is 1.
inline std::vector<double> coalition_masks(const Eigen::Ref<const Eigen::MatrixXd>& z, const Segments& segments) {
  const auto pixels = segments.labels.size();
  std::vector<double> masks(static_cast<std::size_t>(z.rows()) * pixels);
  for (Eigen::Index r = 0; r < z.rows(); ++r)
    for (std::size_t p = 0; p < pixels; ++p) masks[r * pixels + p] = z(r, segments.labels[p]);
  return masks;
}

// Per-segment values painted onto the pixels.
inline std::vector<double> paint(const std::vector<double>& values, const Segments& segments) {
  std::vector<double> out(segments.labels.size());
  for (std::size_t p = 0; p < out.size(); ++p) out[p] = values[segments.labels[p]];
  return out;
}

// Maps [N,1,H,W] like `inputs` from one vector of H*W doubles per item.
template <TensorBackend B>
typename B::Tensor maps_tensor(const std::vector<std::vector<double>>& maps, int64_t h, int64_t w,
                               const typename B::Tensor& like) {
  std::vector<double> values;
  values.reserve(maps.size() * static_cast<std::size_t>(h * w));
  for (const auto& map : maps) values.insert(values.end(), map.begin(), map.end());
  return B::from_values(values, {static_cast<int64_t>(maps.size()), 1, h, w}, like);
}

}  // namespace detail
}  // namespace salient
