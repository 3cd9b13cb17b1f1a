#pragma once
// Images in and out (PNG/JPEG/BMP through stb) and the classic ImageNet preprocessing
// (resize shorter side, centre crop, mean/std normalisation) without LibTorch.
// Resampling reproduces PIL's antialiased bilinear filter, because the reference predictions
// for the sample photos were measured with torchvision + PIL.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/io/detail/files.hpp"

namespace salient::detail {
// stb reports broken internal invariants through STBI_ASSERT; by default that is assert(),
// which would abort the process on a hostile file. Throwing keeps "bad input never crashes".
[[noreturn]] inline void stb_check_failed(const char* what) {
  fail_io("image codec internal check failed (", what, "); the file is probably corrupt");
}
}  // namespace salient::detail

// stb is compiled into every translation unit that includes this header, as static functions:
// a header-only library has no .cpp to own one copy, and internal linkage cannot clash with
// other TUs or with a copy of stb the application links itself. A TU that already included
// stb_image.h / stb_image_write.h before this header keeps its own declarations instead.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#pragma GCC diagnostic ignored "-Wpedantic"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wduplicated-branches"
#endif
#endif

#ifndef STBI_INCLUDE_STB_IMAGE_H
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO  // files are read with C++ streams so that errors can name the cause
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_ASSERT(x) ((x) ? (void)0 : ::salient::detail::stb_check_failed(#x))
#if __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#include <stb/stb_image.h>
#endif
#undef STB_IMAGE_STATIC
#undef STB_IMAGE_IMPLEMENTATION
#undef STBI_ONLY_PNG
#undef STBI_ONLY_JPEG
#undef STBI_ONLY_BMP
#undef STBI_NO_STDIO
#undef STBI_NO_LINEAR
#undef STBI_NO_HDR
#endif

#ifndef INCLUDE_STB_IMAGE_WRITE_H
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#define STBIW_ASSERT(x) ((x) ? (void)0 : ::salient::detail::stb_check_failed(#x))
#if __has_include(<stb_image_write.h>)
#include <stb_image_write.h>
#else
#include <stb/stb_image_write.h>
#endif
#undef STB_IMAGE_WRITE_STATIC
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef STBI_WRITE_NO_STDIO
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace salient {

// A float image, planar CHW, row-major: data[(c * height + y) * width + x].
// Photos from load_image() are RGB in [0, 1].
struct Image {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<float> data;

  Image() = default;
  Image(int64_t channels_, int64_t height_, int64_t width_, float fill = 0.f);

  // Bounds-checked access (throws salient::error); loops over many pixels index data directly.
  float& at(int64_t c, int64_t y, int64_t x) { return data[index(c, y, x)]; }
  float at(int64_t c, int64_t y, int64_t x) const { return data[index(c, y, x)]; }
  size_t size() const { return data.size(); }
  bool empty() const { return data.empty(); }

 private:
  size_t index(int64_t c, int64_t y, int64_t x) const {
    if (c < 0 || c >= channels || y < 0 || y >= height || x < 0 || x >= width)
      detail::fail("pixel (c=", c, ", y=", y, ", x=", x, ") is outside the ", channels, "x", height,
                   "x", width, " image");
    return static_cast<size_t>((c * height + y) * width + x);
  }
};

namespace detail {

// Element count of a shape, with a clear error instead of a silent overflow.
inline size_t checked_count(std::string_view what, int64_t channels, int64_t height,
                            int64_t width) {
  if (channels < 0 || height < 0 || width < 0)
    fail(what, ": image shape ", channels, "x", height, "x", width,
         " has a negative size (expected channels, height, width >= 0)");
  constexpr int64_t limit = int64_t{1} << 40;  // far beyond any real image; keeps products exact
  if ((height != 0 && width > limit / height) ||
      (channels != 0 && height * width > limit / channels))
    fail(what, ": image shape ", channels, "x", height, "x", width, " is too large");
  return static_cast<size_t>(channels * height * width);
}

// Functions receive Images whose public fields may have been set by hand: check that the shape
// and the data agree before indexing, so a mismatch is an error rather than a heap overflow.
inline void check_image(const Image& image, std::string_view what) {
  const size_t expected = checked_count(what, image.channels, image.height, image.width);
  if (image.data.size() != expected)
    fail(what, ": image data holds ", image.data.size(), " values but its shape ", image.channels,
         "x", image.height, "x", image.width, " needs ", expected);
  if (expected == 0)
    fail(what, ": image is empty (", image.channels, "x", image.height, "x", image.width,
         "); expected at least one channel and pixel");
}

// An uncompressed BMP (BI_RGB or BI_BITFIELDS) whose rows do not fit in the file: stb decodes
// the missing rows as black, so a 174-byte file could claim 18 million pixels (1.4 s and 220 MB
// to decode). Returns the bytes the header's rows need, or 0 when the file holds them (or is
// not such a BMP: RLE and embedded JPEG/PNG compress). `width` x `height` were checked by then.
inline uint64_t bmp_bytes_missing(const unsigned char* p, size_t n) {
  if (n < 26 || p[0] != 'B' || p[1] != 'M') return 0;
  const auto u16 = [&](size_t i) { return uint32_t{p[i]} | uint32_t{p[i + 1]} << 8; };
  const auto u32 = [&](size_t i) { return u16(i) | u16(i + 2) << 16; };
  const uint64_t offset = u32(10), header = u32(14);
  uint64_t width = 0, height = 0, bits = 0, compression = 0;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER
    width = u16(18), height = u16(20), bits = u16(24);
  } else if (header >= 40 && n >= 34) {
    const auto magnitude = [](uint32_t v) { return static_cast<uint64_t>(std::abs(static_cast<int64_t>(static_cast<int32_t>(v)))); };
    width = magnitude(u32(18)), height = magnitude(u32(22)), bits = u16(28), compression = u32(30);
  } else {
    return 0;
  }
  if ((compression != 0 && compression != 3) || width > (uint64_t{1} << 31) || height > (uint64_t{1} << 31) || bits > 32) return 0;
  const uint64_t needed = offset + (bits * width + 31) / 32 * 4 * height;  // rows padded to 4 bytes
  return needed > n ? needed : 0;
}

// stb_image 2.27 (Debian 12's) trusts the code counts of a JPEG Huffman table (DHT segment) and
// writes past its 256-entry arrays when they add up to more; stb 2.28 rejects such files. Reject
// them here first. Segments up to the first scan are walked the way stb reads them; after it,
// every FF C4 is checked, since valid entropy-coded data never holds one but stb may take it for
// a marker when the data is corrupt.
inline bool jpeg_huffman_tables_ok(const unsigned char* p, size_t n) {
  const auto byte = [&](size_t i) -> unsigned { return i < n ? p[i] : 0u; };  // stb reads 0 at EOF
  const auto dht_ok = [&](size_t i) {  // i: the segment's length field, just after FF C4
    int64_t left = static_cast<int64_t>(byte(i) << 8 | byte(i + 1)) - 2;
    i += 2;
    while (left > 0 && i < n) {
      const unsigned q = byte(i++);
      if ((q >> 4) > 1 || (q & 15) > 3) return true;  // stb rejects this table itself
      unsigned count = 0;
      for (int k = 0; k < 16; ++k) count += byte(i++);
      if (count > 256) return false;
      i += count;
      left -= 17 + static_cast<int64_t>(count);
    }
    return true;
  };
  size_t i = 0;
  const auto next_marker = [&]() -> unsigned {  // as stb: skip to an FF, then past fill FFs
    while (i < n && p[i] != 0xFF) ++i;
    while (i < n && p[i] == 0xFF) ++i;
    return i < n ? p[i++] : 0u;
  };
  if (n < 2 || p[0] != 0xFF || next_marker() != 0xD8) return true;  // not a JPEG
  while (true) {
    const unsigned m = next_marker();
    if (m == 0xDA) break;  // first scan
    const bool has_length = (m >= 0xC0 && m <= 0xC4) || m == 0xDB || m == 0xDC || m == 0xDD ||
                            (m >= 0xE0 && m <= 0xEF) || m == 0xFE;
    if (!has_length) return true;  // end of image, or a marker stb refuses
    if (m == 0xC4 && !dht_ok(i)) return false;
    if (i + 2 > n) return true;
    i += size_t{p[i]} << 8 | p[i + 1];
  }
  for (size_t k = i; k + 1 < n; ++k)
    if (p[k] == 0xFF && p[k + 1] == 0xC4 && !dht_ok(k + 2)) return false;
  return true;
}

inline uint8_t to_u8(float v) {
  if (!(v > 0.f)) return 0;  // also maps NaN to 0 instead of an undefined cast
  if (v >= 1.f) return 255;
  return static_cast<uint8_t>(std::lround(v * 255.f));
}

inline void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  const auto* bytes = static_cast<const unsigned char*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

// Interleaved uint8 copy of an image, for the encoders, which accept 1..max_channels channels.
inline std::vector<unsigned char> interleave_u8(const Image& image, std::string_view what,
                                                const std::filesystem::path& path,
                                                int64_t max_channels, bool allow_two) {
  check_image(image, what);
  const int64_t n = image.channels;
  if (n < 1 || n > max_channels || (n == 2 && !allow_two))
    fail("cannot write image '", path.string(), "': ", n, " channels, expected ",
         max_channels == 4 ? "1, 2, 3 or 4" : "1 or 3");
  // JPEG stores sides in 16 bits, and stb_image_write computes buffer sizes in int.
  if (image.width > 65535 || image.height > 65535 ||
      (image.width * n + 1) * image.height > std::numeric_limits<int>::max() / 2)
    fail("cannot write image '", path.string(), "': ", n, "x", image.height, "x", image.width,
         " is too large for the encoder (at most 65535 pixels per side and 1 GiB of pixels)");
  const int64_t plane = image.height * image.width;
  std::vector<unsigned char> pixels(static_cast<size_t>(plane * image.channels));
  for (int64_t c = 0; c < image.channels; ++c)
    for (int64_t i = 0; i < plane; ++i)
      pixels[static_cast<size_t>(i * image.channels + c)] =
          to_u8(image.data[static_cast<size_t>(c * plane + i)]);
  return pixels;
}

// PIL's resampling (Pillow, src/libImaging/Resample.c): for each output index, the first input
// index and the normalised weights of a triangle filter whose support grows with the downscale
// factor (that is the antialiasing). Reproduced step by step, including the int truncations.
struct ResampleCoeffs {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;  // per output index
  std::vector<double> weights;        // out_size * ksize
};

inline ResampleCoeffs precompute_coeffs(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // bilinear = triangle filter of support 1
  ResampleCoeffs r;
  r.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  r.first.resize(static_cast<size_t>(out_size));
  r.count.resize(static_cast<size_t>(out_size));
  r.weights.assign(static_cast<size_t>(out_size * r.ksize), 0.0);
  const double ss = 1.0 / filterscale;
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    // (int) casts truncate toward zero, as in the C original.
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t xmax = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
    double* k = &r.weights[static_cast<size_t>(xx * r.ksize)];
    double total = 0.0;
    for (int64_t x = 0; x < xmax - xmin; ++x) {
      const double arg = std::abs((static_cast<double>(x + xmin) - center + 0.5) * ss);
      k[x] = arg < 1.0 ? 1.0 - arg : 0.0;
      total += k[x];
    }
    if (total != 0.0)
      for (int64_t x = 0; x < xmax - xmin; ++x) k[x] /= total;
    r.first[static_cast<size_t>(xx)] = xmin;
    r.count[static_cast<size_t>(xx)] = xmax - xmin;
  }
  return r;
}

// PIL's 8-bit path: weights in fixed point with 22 fractional bits, rounded sums clipped to uint8.
constexpr int kPilPrecisionBits = 32 - 8 - 2;

inline std::vector<int32_t> fixed_point_weights(const ResampleCoeffs& r) {
  std::vector<int32_t> k(r.weights.size());
  for (size_t i = 0; i < k.size(); ++i) {
    const double w = r.weights[i] * static_cast<double>(1 << kPilPrecisionBits);
    k[i] = static_cast<int32_t>(w < 0 ? w - 0.5 : w + 0.5);
  }
  return k;
}

inline uint8_t pil_clip8(int64_t sum) {
  if (sum >= (int64_t{1} << kPilPrecisionBits << 8)) return 255;
  if (sum <= 0) return 0;
  return static_cast<uint8_t>(sum >> kPilPrecisionBits);
}

// One separable pass over a planar [planes][rows][cols] buffer, along rows (horizontal) or
// columns (vertical). T is float (PIL "F" mode: double sums) or uint8_t (PIL 8-bit mode).
template <class T>
std::vector<T> resample_pass(const std::vector<T>& in, int64_t planes, int64_t rows, int64_t cols,
                             bool horizontal, int64_t out_len, const ResampleCoeffs& r,
                             const std::vector<int32_t>& fixed) {
  const int64_t out_rows = horizontal ? rows : out_len;
  const int64_t out_cols = horizontal ? out_len : cols;
  std::vector<T> out(static_cast<size_t>(planes * out_rows * out_cols));
  for (int64_t p = 0; p < planes; ++p) {
    const T* src = in.data() + p * rows * cols;
    T* dst = out.data() + p * out_rows * out_cols;
    for (int64_t y = 0; y < out_rows; ++y)
      for (int64_t x = 0; x < out_cols; ++x) {
        const int64_t o = horizontal ? x : y;  // output index along the resampled axis
        const int64_t first = r.first[static_cast<size_t>(o)];
        const int64_t n = r.count[static_cast<size_t>(o)];
        const size_t kbase = static_cast<size_t>(o * r.ksize);
        const T* line = horizontal ? src + y * cols + first : src + first * cols + x;
        const int64_t stride = horizontal ? 1 : cols;
        if constexpr (std::is_same_v<T, uint8_t>) {
          int64_t sum = int64_t{1} << (kPilPrecisionBits - 1);
          for (int64_t i = 0; i < n; ++i)
            sum += int64_t{line[i * stride]} * fixed[kbase + static_cast<size_t>(i)];
          dst[y * out_cols + x] = pil_clip8(sum);
        } else {
          double sum = 0.0;
          for (int64_t i = 0; i < n; ++i)
            sum +=
                static_cast<double>(line[i * stride]) * r.weights[kbase + static_cast<size_t>(i)];
          dst[y * out_cols + x] = static_cast<T>(sum);
        }
      }
  }
  return out;
}

// Horizontal pass first, then vertical, each only when that size changes (as PIL does).
template <class T>
std::vector<T> resample_planes(std::vector<T> buf, int64_t planes, int64_t in_h, int64_t in_w,
                               int64_t out_h, int64_t out_w) {
  constexpr bool fixed_point = std::is_same_v<T, uint8_t>;
  if (out_w != in_w) {
    const auto r = precompute_coeffs(in_w, out_w);
    const auto k = fixed_point ? fixed_point_weights(r) : std::vector<int32_t>{};
    buf = resample_pass(buf, planes, in_h, in_w, true, out_w, r, k);
  }
  if (out_h != in_h) {
    const auto r = precompute_coeffs(in_h, out_h);
    const auto k = fixed_point ? fixed_point_weights(r) : std::vector<int32_t>{};
    buf = resample_pass(buf, planes, in_h, out_w, false, out_h, r, k);
  }
  return buf;
}

// Python's round() on x / 2 (ties to even), which torchvision's centre crop uses.
inline int64_t half_round_even(int64_t d) {
  const int64_t lower = d / 2;
  if (d % 2 == 0) return lower;
  return lower % 2 == 0 ? lower : lower + 1;
}

}  // namespace detail

inline Image::Image(int64_t channels_, int64_t height_, int64_t width_, float fill)
    : channels(channels_),
      height(height_),
      width(width_),
      data(detail::checked_count("Image", channels_, height_, width_), fill) {}

// Loads a PNG, JPEG or BMP file as RGB in [0, 1]: grey is expanded to three channels, an alpha
// channel is dropped (not composited), like PIL's convert("RGB"). 16-bit PNGs are cut to 8 bits.
inline Image load_image(const std::filesystem::path& path) {
  const std::vector<unsigned char> bytes = detail::read_file_bytes(path, "image");
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    detail::fail_io("cannot read image '", path.string(), "': the file is larger than 2 GiB");
  if (!detail::jpeg_huffman_tables_ok(bytes.data(), bytes.size()))
    detail::fail_io("cannot read image '", path.string(),
                 "': corrupt JPEG (a Huffman table declares more than 256 codes)");
  // A corrupt or hostile header can claim any size; refuse before allocating for it.
  constexpr int64_t max_pixels = int64_t{1} << 27;  // 134 megapixels, 1.6 GB as float RGB
  int w = 0, h = 0, channels_in_file = 0;
  if (stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h,
                            &channels_in_file) &&
      int64_t{w} * h > max_pixels)
    detail::fail_io("cannot read image '", path.string(), "': ", w, "x", h,
                 " pixels is more than the supported ", max_pixels, " pixels");
  if (const auto needed = detail::bmp_bytes_missing(bytes.data(), bytes.size()))
    detail::fail_io("cannot read image '", path.string(), "': truncated BMP (its ", w, "x", h, " pixels need ", needed,
                    " bytes, the file has ", bytes.size(), ")");
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &channels_in_file,
                            3),
      stbi_image_free);
  if (!pixels) {
    // The reason may quote bytes of the file (an unknown PNG chunk's type): printable ones only.
    std::string reason;
    for (const char* c = stbi_failure_reason(); c && *c; ++c)
      reason += (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    if (reason.empty()) reason = "no reason given";
    detail::fail_io("cannot read image '", path.string(), "': not a valid PNG, JPEG or BMP image (decoder says: ", reason, ")");
  }
  if (w <= 0 || h <= 0)
    detail::fail_io("cannot read image '", path.string(), "': it has zero size (", w, "x", h, ")");
  Image image(3, h, w);
  const int64_t plane = int64_t{h} * w;
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c)
      image.data[static_cast<size_t>(c * plane + i)] =
          static_cast<float>(pixels.get()[i * 3 + c]) / 255.f;
  return image;
}

// Writes 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels as an 8-bit PNG; values are
// clamped to [0, 1] and rounded to the nearest of 256 levels (NaN becomes 0).
inline void save_png(const Image& image, const std::filesystem::path& path) {
  const auto pixels = detail::interleave_u8(image, "save_png", path, 4, true);
  std::vector<unsigned char> encoded;
  const int w = static_cast<int>(image.width), h = static_cast<int>(image.height);
  const int comp = static_cast<int>(image.channels);
  const int ok =
      stbi_write_png_to_func(detail::append_bytes, &encoded, w, h, comp, pixels.data(), w * comp);
  if (ok == 0) detail::fail_io("cannot write image '", path.string(), "': PNG encoding failed");
  detail::write_file_bytes(path, encoded.data(), encoded.size(), "image");
}

// Writes 1 or 3 channels as a baseline JPEG (quality 1..100); smaller files for reports.
inline void save_jpeg(const Image& image, const std::filesystem::path& path, int quality = 90) {
  if (quality < 1 || quality > 100)
    detail::fail("cannot write image '", path.string(), "': JPEG quality ", quality,
                 " is outside 1..100");
  const auto pixels = detail::interleave_u8(image, "save_jpeg", path, 3, false);
  std::vector<unsigned char> encoded;
  if (stbi_write_jpg_to_func(detail::append_bytes, &encoded, static_cast<int>(image.width),
                             static_cast<int>(image.height), static_cast<int>(image.channels),
                             pixels.data(), quality) == 0)
    detail::fail_io("cannot write image '", path.string(), "': JPEG encoding failed");
  detail::write_file_bytes(path, encoded.data(), encoded.size(), "image");
}

// How resize() does its arithmetic.
//   float32:   PIL's float ("F" mode) path: double sums, no rounding. For maps and float data.
//   pil_uint8: PIL's 8-bit path bit for bit: values rounded to k/255 first, 22-bit fixed-point
//              weights, uint8 after each pass. Use it for photos to reproduce torchvision + PIL
//              (Resize on a PIL image, then ToTensor) exactly; the result stays on the k/255 grid.
enum class ResizeArithmetic { float32, pil_uint8 };

// PIL's Image.resize((width, height), BILINEAR): separable triangle filter, centre-aligned pixels
// (input position of output x is (x + 0.5) * in / out), support widened by the downscale factor
// so downscaling averages instead of aliasing. Same size returns a copy.
inline Image resize(const Image& image, int64_t height, int64_t width,
                    ResizeArithmetic arithmetic = ResizeArithmetic::float32) {
  detail::check_image(image, "resize");
  if (height < 1 || width < 1)
    detail::fail("resize: target size ", height, "x", width, " must be at least 1x1");
  detail::checked_count("resize", image.channels, height, width);
  Image out;
  out.channels = image.channels;
  out.height = height;
  out.width = width;
  if (arithmetic == ResizeArithmetic::float32) {
    out.data = detail::resample_planes(image.data, image.channels, image.height, image.width,
                                       height, width);
    return out;
  }
  std::vector<uint8_t> levels(image.data.size());
  std::transform(image.data.begin(), image.data.end(), levels.begin(), detail::to_u8);
  levels = detail::resample_planes(std::move(levels), image.channels, image.height, image.width,
                                   height, width);
  out.data.resize(levels.size());
  std::transform(levels.begin(), levels.end(), out.data.begin(),
                 [](uint8_t v) { return static_cast<float>(v) / 255.f; });
  return out;
}

// torchvision's Resize(size) with an int: the shorter side becomes `size`, the longer one
// int(size * long / short) (truncated, as Python's int() does).
inline Image resize_shorter_side(const Image& image, int64_t size,
                                 ResizeArithmetic arithmetic = ResizeArithmetic::float32) {
  detail::check_image(image, "resize_shorter_side");
  if (size < 1) detail::fail("resize_shorter_side: size ", size, " must be at least 1");
  const int64_t h = image.height, w = image.width;
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  if (longer > (int64_t{1} << 40) / size)
    detail::fail("resize_shorter_side: size ", size, " is too large for a ", h, "x", w, " image");
  const auto new_long =
      static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  // A 5000x1 strip at size 224 would become 1120000x224: the result is bounded like a decoded image.
  constexpr int64_t max_pixels = int64_t{1} << 25;
  if (new_long > max_pixels / size)
    detail::fail("resize_shorter_side: a ", h, "x", w, " image with its shorter side resized to ", size, " would be ", new_long,
                 " pixels long (", new_long * size, " pixels, more than the supported ", max_pixels,
                 "); its aspect ratio is too extreme");
  return w <= h ? resize(image, new_long, size, arithmetic)
                : resize(image, size, new_long, arithmetic);
}

// The height x width window whose top-left corner is (top, left).
inline Image crop(const Image& image, int64_t top, int64_t left, int64_t height, int64_t width) {
  detail::check_image(image, "crop");
  if (height < 1 || width < 1 || top < 0 || left < 0 || top > image.height - height ||
      left > image.width - width)
    detail::fail("crop: window ", height, "x", width, " at (top=", top, ", left=", left,
                 ") does not fit in the ", image.height, "x", image.width, " image");
  Image out(image.channels, height, width);
  for (int64_t c = 0; c < image.channels; ++c)
    for (int64_t y = 0; y < height; ++y) {
      const auto src = image.data.begin() + ((c * image.height + top + y) * image.width + left);
      std::copy(src, src + width, out.data.begin() + (c * height + y) * width);
    }
  return out;
}

// torchvision's CenterCrop: top = round((H - h) / 2), left = round((W - w) / 2), with Python's
// ties-to-even rounding. Unlike torchvision it does not pad: a crop larger than the image is
// an error.
inline Image center_crop(const Image& image, int64_t height, int64_t width) {
  detail::check_image(image, "center_crop");
  if (height < 1 || width < 1 || height > image.height || width > image.width)
    detail::fail("center_crop: crop ", height, "x", width, " does not fit in the ", image.height,
                 "x", image.width, " image (expected 1 <= crop <= image size)");
  return crop(image, detail::half_round_even(image.height - height),
              detail::half_round_even(image.width - width), height, width);
}

// Per-channel (x - mean) / std, as torchvision's Normalize.
struct Normalization {
  std::array<float, 3> mean{0.f, 0.f, 0.f}, std{1.f, 1.f, 1.f};

  static Normalization imagenet() { return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}}; }
  static Normalization none() { return {}; }
  bool is_identity() const {
    return mean == std::array<float, 3>{0.f, 0.f, 0.f} &&
           std == std::array<float, 3>{1.f, 1.f, 1.f};
  }
  // The grey level v (0 = black, 1 = white) as model input, per channel; channels past the
  // third use the third's statistics.
  std::vector<float> level(float v, int64_t channels) const {
    std::vector<float> values(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      const auto k = static_cast<size_t>(std::min<int64_t>(c, 2));
      values[static_cast<size_t>(c)] = (v - mean[k]) / std[k];
    }
    return values;
  }
};

namespace detail {
// (x - mean) / std per channel, or its inverse. 1-channel images use entry 0; other channel
// counts only pass through an identity normalisation.
inline Image affine_channels(const Image& image, const Normalization& norm, bool inverse,
                             std::string_view what) {
  check_image(image, what);
  for (size_t c = 0; c < 3; ++c)
    if (!(norm.std[c] > 0.f) || !std::isfinite(norm.std[c]) || !std::isfinite(norm.mean[c]))
      fail(what, ": std[", c, "] = ", norm.std[c], ", mean[", c, "] = ", norm.mean[c],
           "; expected finite values and std > 0");
  if (norm.is_identity()) return image;
  if (image.channels != 1 && image.channels != 3)
    fail(what, ": image has ", image.channels,
         " channels; a mean/std normalisation needs 1 or 3 channels");
  Image out = image;
  const int64_t plane = image.height * image.width;
  for (int64_t c = 0; c < image.channels; ++c) {
    const float m = norm.mean[static_cast<size_t>(c)], s = norm.std[static_cast<size_t>(c)];
    float* p = out.data.data() + c * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = inverse ? p[i] * s + m : (p[i] - m) / s;
  }
  return out;
}
}  // namespace detail

inline Image normalize(const Image& image, const Normalization& norm) {
  return detail::affine_channels(image, norm, false, "normalize");
}

// Inverse of normalize(): x * std + mean, e.g. to display a preprocessed input.
inline Image denormalize(const Image& image, const Normalization& norm) {
  return detail::affine_channels(image, norm, true, "denormalize");
}

// The RGB photo in [0, 1] of one model input as an image (channels x height x width, in
// model-input units): normalisation undone, grey repeated to 3 channels, values clamped.
inline Image input_photo(Image input, const Normalization& normalization) {
  if (input.channels == 3) input = denormalize(input, normalization);
  if (input.channels == 1) {
    Image rgb(3, input.height, input.width);
    for (int64_t c = 0; c < 3; ++c) std::copy(input.data.begin(), input.data.end(), rgb.data.begin() + c * input.data.size());
    input = rgb;
  }
  if (input.channels != 3) detail::fail("cannot segment an input with ", input.channels, " channels (expected 1 or 3)");
  for (auto& v : input.data) v = std::clamp(v, 0.f, 1.f);
  return input;
}

// "imagenet" or "none" (command-line spelling).
inline Normalization parse_normalization(std::string_view name) {
  if (name == "imagenet") return Normalization::imagenet();
  if (name == "none") return Normalization::none();
  detail::fail("unknown normalization '", name, "'; expected 'imagenet' or 'none'");
}

}  // namespace salient
