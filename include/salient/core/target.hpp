#pragma once
// Which scalar of the model output an attribution explains.
//
// A target is the class index for every item, one class index per item, the top-1 class
// of each item, or a custom function mapping the model output [N, ...] to one score per
// item [N] (for multi-label heads, regressions, a margin between two logits, ...).
// Class targets select the raw output (no softmax), as Captum does.
#include <cstdint>
#include <functional>
#include <utility>
#include <variant>
#include <vector>

#include "salient/core/error.hpp"

namespace salient {

struct Top1 {};
inline constexpr Top1 top1{};

template <class Tensor>
class BasicTarget {
 public:
  using Score = std::function<Tensor(const Tensor& output)>;

  BasicTarget() : kind_(Top1{}) {}
  BasicTarget(Top1) : kind_(Top1{}) {}
  BasicTarget(int64_t class_index) : kind_(class_index) {}
  BasicTarget(int class_index) : kind_(static_cast<int64_t>(class_index)) {}
  BasicTarget(std::vector<int64_t> per_item) : kind_(std::move(per_item)) {}
  BasicTarget(Score custom) : kind_(std::move(custom)) {}

  bool is_top1() const { return std::holds_alternative<Top1>(kind_); }
  bool is_custom() const { return std::holds_alternative<Score>(kind_); }
  const Score& custom() const { return std::get<Score>(kind_); }

  // The class index of each of `items` inputs; `top1` supplies the argmax of each item
  // (called only for top-1 targets). Not defined for custom targets.
  template <class Top1Fn>
  std::vector<int64_t> classes(int64_t items, Top1Fn&& top1_classes) const {
    if (auto* index = std::get_if<int64_t>(&kind_)) return std::vector<int64_t>(items, *index);
    if (auto* per_item = std::get_if<std::vector<int64_t>>(&kind_)) {
      if (static_cast<int64_t>(per_item->size()) != items)
        detail::fail("target has ", per_item->size(), " class indices for a batch of ", items,
                     " inputs (expected one per input)");
      return *per_item;
    }
    if (is_top1()) return top1_classes();
    detail::fail("a custom target has no class indices");
  }

 private:
  std::variant<Top1, int64_t, std::vector<int64_t>, Score> kind_;
};

// A target bound to a concrete batch: class indices (one per item) or a custom score.
// Methods resolve top-1 once on the original inputs, so that every perturbed or scaled
// copy of an input explains the same class.
template <class Tensor>
struct ResolvedTarget {
  std::vector<int64_t> classes;                       // empty for custom targets
  typename BasicTarget<Tensor>::Score custom;         // set for custom targets

  bool is_custom() const { return static_cast<bool>(custom); }

  // The target for `inputs` laid out as `copies` blocks of the original batch
  // ([all items, all items, ...]: step-major, as Captum's integrated gradients).
  ResolvedTarget tiled(int64_t copies) const {
    ResolvedTarget out{{}, custom};
    out.classes.reserve(classes.size() * copies);
    for (int64_t c = 0; c < copies; ++c) out.classes.insert(out.classes.end(), classes.begin(), classes.end());
    return out;
  }
  // The target for each item repeated `copies` times in a row ([a, a, b, b]: example-major,
  // as Captum's noise tunnel).
  ResolvedTarget interleaved(int64_t copies) const {
    ResolvedTarget out{{}, custom};
    out.classes.reserve(classes.size() * copies);
    for (int64_t cls : classes) out.classes.insert(out.classes.end(), copies, cls);
    return out;
  }
  // The target of items [begin, end).
  ResolvedTarget slice(int64_t begin, int64_t end) const {
    if (is_custom()) return *this;
    return {std::vector<int64_t>(classes.begin() + begin, classes.begin() + end), custom};
  }
};

namespace detail {
inline void check_class_range(const std::vector<int64_t>& classes, int64_t num_classes) {
  for (int64_t cls : classes)
    if (cls < 0 || cls >= num_classes)
      fail("target class ", cls, " out of range [0, ", num_classes, ")");
}
}  // namespace detail
}  // namespace salient
