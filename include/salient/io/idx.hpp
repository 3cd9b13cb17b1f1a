#pragma once
// Reader for the IDX files of MNIST / Fashion-MNIST (optionally gzip-compressed, as in
// Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/*.gz).
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "salient/core/error.hpp"

namespace salient {

struct IdxArray {
  std::vector<int64_t> shape;  // e.g. {60000, 28, 28} for images, {60000} for labels
  std::vector<uint8_t> data;   // unsigned bytes, row-major
};

// Reads an unsigned-byte IDX file (gzip or plain).
inline IdxArray load_idx(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) detail::fail_io("cannot read IDX file '", path.string(), "': file not found");
  gzFile file = gzopen(path.string().c_str(), "rb");
  if (!file) detail::fail_io("cannot read IDX file '", path.string(), "': cannot open");
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  int got = 0;
  while ((got = gzread(file, buffer, sizeof buffer)) > 0) bytes.insert(bytes.end(), buffer, buffer + got);
  const bool failed = got < 0;
  gzclose(file);
  if (failed) detail::fail_io("cannot read IDX file '", path.string(), "': corrupt gzip data");
  auto bad = [&](const std::string& why) { detail::fail_io("bad IDX file '", path.string(), "': ", why); };
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) bad("no IDX magic number");
  if (bytes[2] != 0x08) bad("only unsigned-byte data (type 0x08) is supported");
  const size_t dims = bytes[3];
  if (bytes.size() < 4 + 4 * dims) bad("truncated header");
  IdxArray array;
  size_t count = 1;
  for (size_t d = 0; d < dims; ++d) {
    const uint8_t* p = bytes.data() + 4 + 4 * d;
    int64_t size = (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) | int64_t{p[3]};
    array.shape.push_back(size);
    count *= static_cast<size_t>(size);
  }
  const size_t offset = 4 + 4 * dims;
  if (bytes.size() != offset + count) bad("expected " + std::to_string(count) + " values, file has " + std::to_string(bytes.size() - offset));
  array.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(offset), bytes.end());
  return array;
}

}  // namespace salient
