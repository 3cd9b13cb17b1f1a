#pragma once
// numpy.argsort's default order, for reproducing NumPy-based libraries (skimage's
// Felzenszwalb, Quantus' feature orders) tie for tie. LibTorch-free.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace salient::detail {

// numpy.argsort(values) with its default kind as numpy 1.24 runs it for float64 (the
// introsort of npysort/quicksort.cpp: median of three, insertion sort below 16 elements,
// heapsort past depth 2 log2 n), so that equal values come out in numpy's order. The same
// introsort sorts float32, so float maps widened to double sort alike.
inline std::vector<int64_t> numpy_argsort(const std::vector<double>& v) {
  // Sorted as (value, index) pairs compared by value alone: the same moves as numpy's
  // indirect sort, with the values at hand.
  struct Item {
    double value;
    int64_t index;
  };
  const auto less = [](const Item& a, const Item& b) { return a.value < b.value; };  // finite values only
  const auto n = static_cast<int64_t>(v.size());
  std::vector<Item> items(v.size());
  for (int64_t i = 0; i < n; ++i) items[i] = {v[i], i};
  const auto heapsort = [&](Item* first, int64_t count) {
    Item* a = first - 1;  // 1-based
    const auto sift = [&](Item top, int64_t i, int64_t size) {
      for (int64_t j = i << 1; j <= size;) {
        if (j < size && less(a[j], a[j + 1])) ++j;
        if (!less(top, a[j])) break;
        a[i] = a[j], i = j, j += j;
      }
      a[i] = top;
    };
    for (int64_t l = count >> 1; l > 0; --l) sift(a[l], l, count);
    for (; count > 1;) {
      const Item top = a[count];
      a[count] = a[1];
      sift(top, 1, --count);
    }
  };
  int depth_limit = 0;
  for (auto u = static_cast<uint64_t>(n); u >>= 1;) ++depth_limit;
  Item *pl = items.data(), *pr = items.data() + n - 1;
  std::vector<Item*> stack;
  std::vector<int> depths;
  int depth = depth_limit * 2;
  for (; n > 1;) {
    if (depth < 0) {
      heapsort(pl, pr - pl + 1);
    } else {
      while (pr - pl > 15) {
        Item* pm = pl + ((pr - pl) >> 1);
        if (less(*pm, *pl)) std::swap(*pm, *pl);
        if (less(*pr, *pm)) std::swap(*pr, *pm);
        if (less(*pm, *pl)) std::swap(*pm, *pl);
        const Item pivot = *pm;
        Item *pi = pl, *pj = pr - 1;
        std::swap(*pm, *pj);
        for (;;) {
          do ++pi; while (less(*pi, pivot));
          do --pj; while (less(pivot, *pj));
          if (pi >= pj) break;
          std::swap(*pi, *pj);
        }
        std::swap(*pi, *(pr - 1));
        if (pi - pl < pr - pi) {  // the larger side waits on the stack
          stack.push_back(pi + 1), stack.push_back(pr);
          pr = pi - 1;
        } else {
          stack.push_back(pl), stack.push_back(pi - 1);
          pl = pi + 1;
        }
        depths.push_back(--depth);
      }
      for (Item* pi = pl + 1; pi <= pr; ++pi) {  // insertion sort
        const Item vi = *pi;
        Item *pj = pi, *pk = pi - 1;
        while (pj > pl && less(vi, *pk)) *pj-- = *pk--;
        *pj = vi;
      }
    }
    if (stack.empty()) break;
    pr = stack.back(), stack.pop_back();
    pl = stack.back(), stack.pop_back();
    depth = depths.back(), depths.pop_back();
  }
  std::vector<int64_t> index(v.size());
  for (int64_t i = 0; i < n; ++i) index[i] = items[i].index;
  return index;
}

}  // namespace salient::detail
