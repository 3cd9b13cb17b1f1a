#include <catch2/catch.hpp>

#include <zlib.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

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
