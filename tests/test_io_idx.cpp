#include <catch2/catch.hpp>

#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "salient/io/detail/sha256.hpp"
#include "salient/io/idx.hpp"

namespace {
std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("salient_idx_" + std::to_string(::getpid()) + "_" + name);
}
}  // namespace

TEST_CASE("IDX files are read plain and gzip-compressed", "[io][idx]") {
  const unsigned char bytes[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
  auto plain = temp_file("plain.idx");
  std::ofstream(plain, std::ios::binary).write(reinterpret_cast<const char*>(bytes), sizeof bytes);
  auto gz = temp_file("packed.idx.gz");
  gzFile out = gzopen(gz.string().c_str(), "wb");
  gzwrite(out, bytes, sizeof bytes);
  gzclose(out);
  for (const auto& path : {plain, gz}) {
    auto array = salient::load_idx(path);
    REQUIRE(array.shape == std::vector<int64_t>{2, 3});
    REQUIRE(array.data == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
  }
  // One value missing: a clear error, not a short read.
  std::ofstream(plain, std::ios::binary).write(reinterpret_cast<const char*>(bytes), sizeof bytes - 1);
  REQUIRE_THROWS_WITH(salient::load_idx(plain), Catch::Contains("expected 6 values, file has 5"));
  REQUIRE_THROWS_WITH(salient::load_idx(temp_file("absent")), Catch::Contains("file not found"));
  std::filesystem::remove(plain);
  std::filesystem::remove(gz);
}

TEST_CASE("Debian's Fashion-MNIST test labels", "[io][idx]") {
  const std::filesystem::path labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(labels)) {
    WARN("SKIPPED: dataset-fashion-mnist is not installed");
    return;
  }
  auto array = salient::load_idx(labels);
  REQUIRE(array.shape == std::vector<int64_t>{10000});
  // Fashion-MNIST's test set is balanced: 1000 items per class; its first label is 9 (ankle boot).
  std::vector<int> counts(10);
  for (auto v : array.data) counts.at(v)++;
  REQUIRE(counts == std::vector<int>(10, 1000));
  REQUIRE(array.data[0] == 9);
}

// SHA-256 binds certificates to files (io/detail/sha256.hpp): FIPS 180-4 vectors and every
// padding boundary (55, 56, 63, 64 and 119 bytes), checked against coreutils' sha256sum.
TEST_CASE("io: SHA-256 of bytes and files", "[io]") {
  using salient::detail::sha256_hex;
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(55, 'x')) == "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
  CHECK(sha256_hex(std::string(56, 'x')) == "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
  CHECK(sha256_hex(std::string(63, 'x')) == "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2");
  CHECK(sha256_hex(std::string(64, 'x')) == "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
  CHECK(sha256_hex(std::string(119, 'x')) == "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c");
  CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Fed in pieces of any size, with the SHA extensions or the portable rounds: the same digests.
  std::mt19937 random(7);
  for (std::size_t size = 0; size < 700; size += 1 + size / 8) {
    std::vector<unsigned char> bytes(size);
    for (auto& b : bytes) b = static_cast<unsigned char>(random());
    salient::detail::Sha256 portable(false), pieces;
    portable.update(bytes.data(), size);
    for (std::size_t at = 0; at < size;) {
      const std::size_t take = std::min<std::size_t>(size - at, random() % 150);
      pieces.update(bytes.data() + at, take);
      at += take;
    }
    INFO(size << " bytes, SHA extensions: " << salient::detail::sha256_hardware_available());
    const auto expected = std::move(portable).hex();
    CHECK(std::move(pieces).hex() == expected);
    CHECK(sha256_hex(bytes.data(), size) == expected);
  }
  const auto file = std::filesystem::temp_directory_path() / "salient_sha256.txt";
  std::ofstream(file, std::ios::binary) << "abc";
  CHECK(salient::detail::file_sha256(file, "file") == sha256_hex("abc"));
  std::filesystem::remove(file);
  CHECK_THROWS_WITH(salient::detail::file_sha256(file, "model"), Catch::Contains("file not found"));
}
