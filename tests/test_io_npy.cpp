// .npy files: byte layout as numpy.save writes it, round trips, and clear errors.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "error_matchers.hpp"
#include "temp_dir.hpp"
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "salient/io/npy.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {
using salient::test::require_error_mentioning;

using salient::test::TempDir;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}


// A v1.0 file with the given header dict and raw data bytes, padded like NumPy's.
std::string make_npy(std::string dict, const std::string& data) {
  const size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + data;
}

}  // namespace

TEST_CASE("save_npy writes NumPy's v1.0 layout", "[io][npy]") {
  TempDir dir;
  std::vector<float> values(12);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) * 0.5f - 1.f;
  salient::save_npy(dir / "a.npy", values.data(), {1, 3, 2, 2});
  const std::string bytes = read_all(dir / "a.npy");

  REQUIRE(bytes.size() > 10);
  CHECK(bytes.compare(0, 6, "\x93NUMPY") == 0);
  CHECK(bytes[6] == 1);
  CHECK(bytes[7] == 0);
  const size_t header_len = static_cast<unsigned char>(bytes[8]) |
                            static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
  CHECK((10 + header_len) % 64 == 0);
  const std::string header = bytes.substr(10, header_len);
  CHECK(header.back() == '\n');
  CHECK_THAT(header, Contains("'descr': '<f4'"));
  CHECK_THAT(header, Contains("'fortran_order': False"));
  CHECK_THAT(header, Contains("'shape': (1, 3, 2, 2), "));
  CHECK(header.rfind("{'descr'", 0) == 0);
  REQUIRE(bytes.size() == 10 + header_len + 12 * 4);
  // Little-endian float32 data right after the header: element 3 is 0.5 = 0x3F000000.
  const std::string e3 = bytes.substr(10 + header_len + 12, 4);
  CHECK(e3 == std::string("\x00\x00\x00\x3f", 4));

  const salient::NpyArray back = salient::load_npy(dir / "a.npy");
  CHECK(back.shape == std::vector<int64_t>{1, 3, 2, 2});
  CHECK(back.data == values);
}

TEST_CASE("npy shapes: scalar, 1-d, empty", "[io][npy]") {
  TempDir dir;
  const float one = 3.25f;
  salient::save_npy(dir / "scalar.npy", &one, {});
  CHECK_THAT(read_all(dir / "scalar.npy"), Contains("'shape': (), "));
  auto s = salient::load_npy(dir / "scalar.npy");
  CHECK(s.shape.empty());
  CHECK(s.data == std::vector<float>{3.25f});

  const std::vector<float> v{1.f, -2.f, 1e-30f, 3e30f, 0.f};
  salient::save_npy(dir / "v.npy", salient::NpyArray{{5}, v});
  CHECK_THAT(read_all(dir / "v.npy"), Contains("'shape': (5,), "));
  CHECK(salient::load_npy(dir / "v.npy").data == v);

  salient::save_npy(dir / "empty.npy", nullptr, {0, 3});
  const auto e = salient::load_npy(dir / "empty.npy");
  CHECK(e.shape == std::vector<int64_t>{0, 3});
  CHECK(e.data.empty());
}

TEST_CASE("load_npy accepts NumPy-written headers", "[io][npy]") {
  TempDir dir;
  // Keys in another order, double quotes, no trailing comma, Python 2 style 'L' suffixes.
  std::string data(8, '\0');
  const float two[2] = {1.5f, -4.f};
  std::memcpy(data.data(), two, 8);  // the test host is little-endian (x86/ARM)
  write_all(dir / "a.npy",
            make_npy("{\"shape\": (2L,), 'fortran_order': False, 'descr': '<f4'}", data));
  const auto a = salient::load_npy(dir / "a.npy");
  CHECK(a.shape == std::vector<int64_t>{2});
  CHECK(a.data == std::vector<float>{1.5f, -4.f});
}

TEST_CASE("load_npy errors are clear", "[io][npy]") {
  TempDir dir;
  const fs::path missing = dir / "nope.npy";
  require_error_mentioning([&] { salient::load_npy(missing); }, missing.string());

  write_all(dir / "text.npy", "hello, not numpy");
  require_error_mentioning([&] { salient::load_npy(dir / "text.npy"); }, "not a .npy file");

  write_all(dir / "f8.npy", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                                     std::string(8, '\0')));
  require_error_mentioning([&] { salient::load_npy(dir / "f8.npy"); }, "'<f8'");

  write_all(dir / "fortran.npy",
            make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                     std::string(16, '\0')));
  require_error_mentioning([&] { salient::load_npy(dir / "fortran.npy"); }, "Fortran");

  // Truncated data: the shape promises 12 floats.
  std::vector<float> values(12, 1.f);
  salient::save_npy(dir / "full.npy", values.data(), {3, 4});
  const std::string full = read_all(dir / "full.npy");
  write_all(dir / "cut.npy", full.substr(0, full.size() - 5));
  require_error_mentioning([&] { salient::load_npy(dir / "cut.npy"); }, "truncated");
  write_all(dir / "cut_header.npy", full.substr(0, 30));
  require_error_mentioning([&] { salient::load_npy(dir / "cut_header.npy"); }, "truncated header");
  write_all(dir / "extra.npy", full + "xx");
  require_error_mentioning([&] { salient::load_npy(dir / "extra.npy"); }, "trailing");

  write_all(dir / "bad_dict.npy",
            make_npy("{'descr': '<f4', 'shape': [2], }", std::string(8, '\0')));
  require_error_mentioning([&] { salient::load_npy(dir / "bad_dict.npy"); }, "malformed");

  // A huge announced shape must be rejected from the file size, not allocated.
  write_all(dir / "huge.npy",
            make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", ""));
  require_error_mentioning([&] { salient::load_npy(dir / "huge.npy"); }, "truncated");

  require_error_mentioning(
      [&] {
        salient::save_npy(dir / "neg.npy", values.data(), {-1, 2});
      },
      "negative");
  require_error_mentioning([&] { salient::save_npy(dir / "x.npy", nullptr, {2}); }, "null");
  require_error_mentioning(
      [&] {
        salient::save_npy(dir / "x.npy", salient::NpyArray{{3}, {1.f}});
      },
      "needs 3");
}
