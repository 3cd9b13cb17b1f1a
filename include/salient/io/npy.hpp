#pragma once
// Float arrays to and from NumPy's .npy format (version 1.0, dtype '<f4', C order), so that
// attributions can be compared with Python implementations and plotted there.
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "salient/core/error.hpp"
#include "salient/io/detail/files.hpp"

namespace salient {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // C order
};

namespace detail {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLength = 6;

// Elements in a shape; an error instead of an overflow for absurd shapes.
inline size_t npy_count(const std::vector<int64_t>& shape, std::string_view what,
                        const std::string& name) {
  size_t count = 1;
  for (const int64_t d : shape) {
    if (d < 0) fail(what, " '", name, "': shape has a negative dimension ", d);
    if (d != 0 && count > (size_t{1} << 40) / static_cast<size_t>(d))
      fail(what, " '", name, "': shape is too large");
    count *= static_cast<size_t>(d);
  }
  return count;
}

// Python's repr() of a tuple of ints: "()", "(5,)", "(1, 3, 2, 2)".
inline std::string npy_shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

inline void store_le_f32(float v, unsigned char* out) {
  uint32_t bits = std::bit_cast<uint32_t>(v);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(bits >> (8 * i));
}

inline float load_le_f32(const unsigned char* in) {
  uint32_t bits = 0;
  for (int i = 0; i < 4; ++i) bits |= uint32_t{in[i]} << (8 * i);
  return std::bit_cast<float>(bits);
}

// A minimal reader for the header's Python dict literal:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class NpyHeaderParser {
 public:
  NpyHeaderParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  void parse(std::string& descr, bool& fortran_order, std::vector<int64_t>& shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      skip_space();
      if (key == "descr") {
        descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran_order = boolean();
        have_order = true;
      } else if (key == "shape") {
        shape = int_tuple();
        have_shape = true;
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != '}') bad("expected ',' or '}'");
    }
    if (!have_descr || !have_order || !have_shape)
      bad("expected the keys 'descr', 'fortran_order' and 'shape'");
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail_io("cannot read array '", name_, "': malformed .npy header (", what, " at offset ", pos_,
         " of \"", s_, "\")");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a quoted string");
    const size_t end = s_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) bad("unterminated string");
    std::string value(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return value;
  }
  bool boolean() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    bad("expected True or False");
  }
  std::vector<int64_t> int_tuple() {
    std::vector<int64_t> values;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') bad("expected a non-negative integer");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("dimension too large");
        v = v * 10 + (peek() - '0');
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 longs, written by old NumPy
      values.push_back(v);
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != ')') bad("expected ',' or ')'");
    }
    ++pos_;
    return values;
  }

  std::string_view s_;
  const std::string& name_;
  size_t pos_ = 0;
};

}  // namespace detail

// Writes `data` (C order, product(shape) floats) as a NumPy .npy file, version 1.0, dtype '<f4'.
// The header is laid out byte for byte as numpy.save writes it: padded with spaces and a final
// newline so that the data starts at a multiple of 64 bytes.
inline void save_npy(const std::filesystem::path& path, const float* data,
                     const std::vector<int64_t>& shape) {
  const std::string name = path.string();
  const size_t count = detail::npy_count(shape, "cannot write array", name);
  if (data == nullptr && count > 0)
    detail::fail("cannot write array '", name, "': data pointer is null for ", count, " values");
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + detail::npy_shape_repr(shape) + ", }";
  // Recent NumPy leaves room to grow the first dimension in place (GROWTH_AXIS_MAX_DIGITS).
  if (!shape.empty()) {
    const size_t digits = std::to_string(shape[0]).size();
    header.append(digits < 21 ? 21 - digits : 0, ' ');
  }
  const size_t hlen = header.size() + 1;  // + '\n'
  const size_t padding = 64 - (detail::kNpyMagicLength + 2 + 2 + hlen) % 64;
  header.append(padding, ' ');
  header += '\n';
  if (header.size() > 65535)
    detail::fail("cannot write array '", name, "': shape has too many dimensions for .npy v1.0");

  const size_t offset = 10 + header.size();
  std::vector<unsigned char> bytes(offset + count * 4);
  std::memcpy(bytes.data(), detail::kNpyMagic, detail::kNpyMagicLength);
  bytes[6] = 1;  // version 1.0
  bytes[7] = 0;
  bytes[8] = static_cast<unsigned char>(header.size() & 0xff);  // header length, little-endian
  bytes[9] = static_cast<unsigned char>(header.size() >> 8);
  std::memcpy(bytes.data() + 10, header.data(), header.size());
  for (size_t i = 0; i < count; ++i) detail::store_le_f32(data[i], &bytes[offset + 4 * i]);
  detail::write_file_bytes(path, bytes.data(), bytes.size(), "array");
}

inline void save_npy(const std::filesystem::path& path, const NpyArray& array) {
  const size_t count = detail::npy_count(array.shape, "cannot write array", path.string());
  if (array.data.size() != count)
    detail::fail("cannot write array '", path.string(), "': data holds ", array.data.size(),
                 " values but shape ", detail::npy_shape_repr(array.shape), " needs ", count);
  save_npy(path, array.data.data(), array.shape);
}

// Reads a .npy file (versions 1.0 to 3.0) holding little-endian float32 in C order. Other dtypes,
// Fortran order and truncated files are errors that say what was found.
inline NpyArray load_npy(const std::filesystem::path& path) {
  const std::string name = path.string();
  const std::vector<unsigned char> bytes = detail::read_file_bytes(path, "array");
  if (bytes.size() < 10 ||
      std::memcmp(bytes.data(), detail::kNpyMagic, detail::kNpyMagicLength) != 0)
    detail::fail_io("cannot read array '", name,
                 "': not a .npy file (expected it to start with \"\\x93NUMPY\")");
  const unsigned major = bytes[6];
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = size_t{bytes[8]} | size_t{bytes[9]} << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) detail::fail_io("cannot read array '", name, "': truncated header");
    header_len = size_t{bytes[8]} | size_t{bytes[9]} << 8 | size_t{bytes[10]} << 16 |
                 size_t{bytes[11]} << 24;
    header_start = 12;
  } else {
    detail::fail_io("cannot read array '", name, "': .npy format version ", major, ".",
                 unsigned{bytes[7]}, " is not supported (expected 1.0, 2.0 or 3.0)");
  }
  if (header_len > bytes.size() - header_start)
    detail::fail_io("cannot read array '", name, "': truncated header (", header_len,
                 " bytes announced, ", bytes.size() - header_start, " present)");
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + header_start),
                                header_len);
  std::string descr;
  bool fortran_order = false;
  NpyArray array;
  detail::NpyHeaderParser(header, name).parse(descr, fortran_order, array.shape);
  if (descr != "<f4")
    detail::fail_io("cannot read array '", name, "': dtype '", descr,
                 "' is not supported; expected '<f4' (little-endian float32), e.g. save "
                 "arr.astype(numpy.float32)");
  if (fortran_order)
    detail::fail_io("cannot read array '", name,
                 "': Fortran-ordered arrays are not supported; save numpy.ascontiguousarray(arr)");
  const size_t count = detail::npy_count(array.shape, "cannot read array", name);
  const size_t data_start = header_start + header_len;
  const size_t present = bytes.size() - data_start;
  if (present != count * 4)
    detail::fail_io("cannot read array '", name, "': shape ", detail::npy_shape_repr(array.shape),
                 " needs ", count * 4, " bytes of data but the file holds ", present,
                 present < count * 4 ? " (truncated file)" : " (unexpected trailing bytes)");
  array.data.resize(count);
  for (size_t i = 0; i < count; ++i)
    array.data[i] = detail::load_le_f32(&bytes[data_start + 4 * i]);
  return array;
}

}  // namespace salient
