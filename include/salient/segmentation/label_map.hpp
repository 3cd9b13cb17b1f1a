#pragma once
// Segmentations as label maps, and what every segmenter shares: the checks, relabelling in
// order of first appearance, union-find, 4-connected pieces; regular grids and connected
// components. LibTorch-free.
//
// Every function returns a LabelMap whose labels are 0..count-1, each used at least once,
// numbered in the order of their first pixel in raster order.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/io/image.hpp"

namespace salient {

// A segmentation: labels[y * width + x] in 0..count-1, every label used.
struct LabelMap {
  int64_t height = 0, width = 0, count = 0;
  std::vector<int64_t> labels;
};

namespace detail::superpixels {

// Image checks shared by the segmenters: an RGB image with finite values, small enough for
// 32-bit pixel indices.
inline void check_rgb(const Image& image, std::string_view what) {
  check_image(image, what);
  if (image.channels != 3)
    fail(what, ": expected an RGB image (3 channels), got ", image.channels, " channel",
         image.channels == 1 ? "" : "s", " (", image.channels, "x", image.height, "x", image.width,
         ")");
  if (image.height * image.width > std::numeric_limits<int32_t>::max())
    fail(what, ": image of ", image.height, "x", image.width, " pixels is too large (at most ",
         std::numeric_limits<int32_t>::max(), " pixels)");
  for (const float v : image.data)
    if (!std::isfinite(v)) fail(what, ": the image holds a non-finite value (", v, ")");
}

inline void check_label_map(const LabelMap& map, std::string_view what) {
  if (map.height < 0 || map.width < 0)
    fail(what, ": label map shape ", map.height, "x", map.width, " has a negative size");
  if (map.width != 0 && map.height > std::numeric_limits<int32_t>::max() / map.width)
    fail(what, ": label map of ", map.height, "x", map.width, " pixels is too large (at most ",
         std::numeric_limits<int32_t>::max(), " pixels)");
  if (map.labels.size() != static_cast<size_t>(map.height * map.width))
    fail(what, ": label map holds ", map.labels.size(), " labels but its shape ", map.height, "x",
         map.width, " needs ", map.height * map.width);
}

// ids[i] in [0, id_count) -> a LabelMap numbered by first appearance.
inline LabelMap relabel_ids(const std::vector<int32_t>& ids, int32_t id_count, int64_t height,
                            int64_t width) {
  LabelMap out;
  out.height = height;
  out.width = width;
  out.labels.resize(ids.size());
  std::vector<int32_t> map(static_cast<size_t>(id_count), -1);
  int32_t next = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t& m = map[static_cast<size_t>(ids[i])];
    if (m < 0) m = next++;
    out.labels[i] = m;
  }
  out.count = next;
  return out;
}

// Union-find over 0..n-1 (find with path halving; the caller links roots).
struct DisjointSets {
  std::vector<int32_t> parent;
  explicit DisjointSets(int32_t n) : parent(static_cast<size_t>(n)) {
    for (int32_t i = 0; i < n; ++i) parent[static_cast<size_t>(i)] = i;
  }
  int32_t find(int32_t i) {
    while (parent[static_cast<size_t>(i)] != i) {  // path halving
      int32_t& p = parent[static_cast<size_t>(i)];
      p = parent[static_cast<size_t>(p)];
      i = p;
    }
    return i;
  }
};

// 4-connected pieces of equal label by breadth-first search from each unvisited pixel in raster
// order (neighbours x+1, x-1, y+1, y-1, as skimage's _enforce_label_connectivity_cython). A
// search stops after max_size pixels; the rest of that region starts new pieces. Fills
// piece[pixel], and the pixels of piece p as order[begin[p] .. begin[p+1]). Returns the count.
template <class Label>
int32_t connected_pieces(const Label* labels, int64_t height, int64_t width, int64_t max_size,
                         std::vector<int32_t>& piece, std::vector<int32_t>& order,
                         std::vector<int32_t>& begin) {
  const int64_t n = height * width;
  piece.assign(static_cast<size_t>(n), -1);
  order.resize(static_cast<size_t>(n));
  begin.clear();
  int32_t count = 0;
  size_t tail = 0;
  for (int64_t start = 0; start < n; ++start) {
    if (piece[static_cast<size_t>(start)] >= 0) continue;
    const Label label = labels[start];
    const size_t first = tail;
    begin.push_back(static_cast<int32_t>(first));
    piece[static_cast<size_t>(start)] = count;
    order[tail++] = static_cast<int32_t>(start);
    size_t head = first;
    const auto visit = [&](int64_t q) {
      if (piece[static_cast<size_t>(q)] < 0 && labels[q] == label) {
        piece[static_cast<size_t>(q)] = count;
        order[tail++] = static_cast<int32_t>(q);
      }
      return static_cast<int64_t>(tail - first) < max_size;
    };
    while (head < tail && static_cast<int64_t>(tail - first) < max_size) {
      const int64_t p = order[head++];
      const int64_t y = p / width, x = p - y * width;
      if (x + 1 < width && !visit(p + 1)) break;
      if (x > 0 && !visit(p - 1)) break;
      if (y + 1 < height && !visit(p + width)) break;
      if (y > 0 && !visit(p - width)) break;
    }
    ++count;
  }
  begin.push_back(static_cast<int32_t>(tail));
  return count;
}

// Frees a vector's memory (assigning {} keeps the capacity).
template <class T>
void release(std::vector<T>& v) {
  std::vector<T>().swap(v);
}

}  // namespace detail::superpixels

// Labels renumbered 0..K-1 in order of first appearance (any int64 values in, every label used
// out).
inline LabelMap relabel_consecutive(const LabelMap& map) {
  detail::superpixels::check_label_map(map, "relabel_consecutive");
  LabelMap out;
  out.height = map.height;
  out.width = map.width;
  out.labels.resize(map.labels.size());
  std::unordered_map<int64_t, int64_t> ids;
  int64_t next = 0;
  for (size_t i = 0; i < map.labels.size(); ++i) {
    const auto [it, inserted] = ids.try_emplace(map.labels[i], next);
    if (inserted) ++next;
    out.labels[i] = it->second;
  }
  out.count = next;
  return out;
}

// Square cells of `cell` pixels (the last row and column of cells may be smaller), numbered
// row by row.
inline LabelMap grid_segments(int64_t height, int64_t width, int64_t cell) {
  if (height < 1 || width < 1)
    detail::fail("grid_segments: image size ", height, "x", width, " must be at least 1x1");
  if (height > std::numeric_limits<int32_t>::max() / width)
    detail::fail("grid_segments: image of ", height, "x", width, " pixels is too large");
  if (cell < 1) detail::fail("grid_segments: cell size must be at least 1 pixel, got ", cell);
  const int64_t columns = (width + cell - 1) / cell, rows = (height + cell - 1) / cell;
  LabelMap map;
  map.height = height;
  map.width = width;
  map.count = rows * columns;
  map.labels.resize(static_cast<size_t>(height * width));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      map.labels[static_cast<size_t>(y * width + x)] = (y / cell) * columns + x / cell;
  return map;
}

// 4-connected regions of equal label, each its own label (a segmentation model's argmax
// classes become regions). Input labels may be any int64 values.
inline LabelMap connected_components(const LabelMap& map) {
  detail::superpixels::check_label_map(map, "connected_components");
  std::vector<int32_t> piece, order, begin;
  const int32_t count = detail::superpixels::connected_pieces(
      map.labels.data(), map.height, map.width, std::numeric_limits<int64_t>::max(), piece, order,
      begin);
  LabelMap out;
  out.height = map.height;
  out.width = map.width;
  out.count = count;
  out.labels.assign(piece.begin(), piece.end());
  return out;
}

}  // namespace salient
