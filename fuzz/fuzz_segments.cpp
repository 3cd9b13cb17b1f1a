// libFuzzer target: the segmentation spec parser (--segments: slic, felzenszwalb, grid, with
// their numbers) and the segmenters it runs, on a small picture made from the same input. The
// input is "SPEC\nHW<pixels...>": the spec, then the picture's height and width (1 to 24) and
// its RGB bytes (repeated to fill it). A label map must hold one label in [0, count) per pixel.
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "salient/segmentation/superpixels.hpp"

#ifndef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

extern "C" int SALIENT_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto newline = text.find('\n');
  if (newline == std::string_view::npos || newline > 64 || size < newline + 3) return 0;
  const std::string_view spec = text.substr(0, newline);
  const int64_t height = 1 + data[newline + 1] % 24, width = 1 + data[newline + 2] % 24;
  salient::Image picture(3, height, width);
  const size_t first = newline + 3, bytes = size - first;
  for (size_t i = 0; i < picture.data.size(); ++i) picture.data[i] = bytes ? data[first + i % bytes] / 255.f : 0.5f;
  try {
    const auto map = salient::segment(spec, picture);
    if (map.height != height || map.width != width || map.labels.size() != static_cast<size_t>(height * width) ||
        map.count < 1)
      __builtin_trap();
    for (const auto label : map.labels)
      if (label < 0 || label >= map.count) __builtin_trap();
  } catch (const salient::error&) {
  }
  return 0;
}
