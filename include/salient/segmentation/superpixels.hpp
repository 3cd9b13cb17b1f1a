#pragma once
// Superpixels without OpenCV or LibTorch: segment(spec) for the command-line spellings
// "slic:50", "felzenszwalb:100" and "grid:16", over the segmenters (segmentation/slic.hpp,
// felzenszwalb.hpp, label_map.hpp: grids and connected components). Drawing segment borders
// on a photo: mark_boundaries in io/heatmap.hpp.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/io/image.hpp"
#include "salient/segmentation/felzenszwalb.hpp"
#include "salient/segmentation/label_map.hpp"
#include "salient/segmentation/slic.hpp"

namespace salient {
namespace detail::superpixels {

inline constexpr std::string_view spec_forms =
    "slic:N[:COMPACTNESS], felzenszwalb:SCALE[:SIGMA:MIN_SIZE] or grid:CELL";

template <class T>
T parse_spec_number(std::string_view spec, std::string_view text, std::string_view what) {
  T value{};
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (text.empty() || ec != std::errc() || end != last)
    fail("bad segmentation spec '", spec, "': ", what, " '", text, "' is not ",
         std::is_integral_v<T> ? "an integer" : "a number", " (expected ", spec_forms, ")");
  if constexpr (std::is_floating_point_v<T>)
    if (!std::isfinite(value))
      fail("bad segmentation spec '", spec, "': ", what, " '", text, "' is not finite (expected ",
           spec_forms, ")");
  return value;
}

}  // namespace detail::superpixels

// A segmentation by command-line spec:
//   slic:N[:COMPACTNESS]                   slic() with n_segments N (compactness 10)
//   felzenszwalb:SCALE[:SIGMA:MIN_SIZE]    felzenszwalb() (sigma 0.8, min_size 20)
//   grid:CELL                              grid_segments() with square cells of CELL pixels
//                                          (any channel count: only the size is used)
inline LabelMap segment(std::string_view spec, const Image& rgb) {
  namespace sp = detail::superpixels;
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon == std::string_view::npos ? colon : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  const auto bad = [&](auto&&... reason) {
    detail::fail("bad segmentation spec '", spec, "': ", reason..., " (expected ", sp::spec_forms,
                 ")");
  };
  const std::string_view name = parts[0];
  const size_t args = parts.size() - 1;
  // Option errors are reported with the spec they came from.
  const auto checked = [&](auto&& check) {
    try {
      check();
    } catch (const error& e) {
      bad(e.what());
    }
  };
  if (name == "slic") {
    if (args < 1 || args > 2) bad("slic takes 1 or 2 values, got ", args);
    SlicOptions options;
    options.n_segments = sp::parse_spec_number<int64_t>(spec, parts[1], "segment count");
    if (args == 2)
      options.compactness = sp::parse_spec_number<double>(spec, parts[2], "compactness");
    checked([&] { sp::check_slic_options(options); });
    return slic(rgb, options);
  }
  if (name == "felzenszwalb") {
    if (args != 1 && args != 3) bad("felzenszwalb takes 1 or 3 values, got ", args);
    FelzenszwalbOptions options;
    options.scale = sp::parse_spec_number<double>(spec, parts[1], "scale");
    if (args == 3) {
      options.sigma = sp::parse_spec_number<double>(spec, parts[2], "sigma");
      options.min_size = sp::parse_spec_number<int64_t>(spec, parts[3], "min_size");
    }
    checked([&] { sp::check_felzenszwalb_options(options); });
    return felzenszwalb(rgb, options);
  }
  if (name == "grid") {
    if (args != 1) bad("grid takes 1 value, got ", args);
    const auto cell = sp::parse_spec_number<int64_t>(spec, parts[1], "cell size");
    if (cell < 1) bad("grid cell size must be at least 1 pixel, got ", cell);
    detail::check_image(rgb, "segment");
    return grid_segments(rgb.height, rgb.width, cell);
  }
  bad("unknown method '", name, "'");
  return {};  // not reached
}

}  // namespace salient
