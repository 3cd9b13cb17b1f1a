#pragma once
// Whole-file reads and writes whose errors name the file and the cause (missing, a directory,
// permission denied, empty, disk full), shared by the image and .npy readers and writers.
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "salient/core/error.hpp"

namespace salient::detail {

// Reads a file in pieces of at most 64 KiB, handing each to `piece(bytes, count)`; `kind`
// ("image", "array", "model") only words the error messages. An empty file is an error.
template <class Piece>
void read_file_pieces(const std::filesystem::path& path, std::string_view kind, Piece&& piece) {
  namespace fs = std::filesystem;
  const std::string name = path.string();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found)
    fail_io("cannot read ", kind, " '", name, "': file not found");
  if (ec) fail_io("cannot read ", kind, " '", name, "': ", ec.message());
  if (fs::is_directory(status))
    fail_io("cannot read ", kind, " '", name, "': it is a directory, expected a file");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    fail_io("cannot read ", kind, " '", name, "': cannot open the file (",
         err != 0 ? std::strerror(err) : "unknown reason", ")");
  }
  std::vector<char> buffer(std::size_t{1} << 16);
  std::size_t total = 0;
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    const auto count = static_cast<std::size_t>(in.gcount());
    piece(reinterpret_cast<const unsigned char*>(buffer.data()), count);
    total += count;
    if (in.eof()) break;
  }
  if (in.bad()) fail_io("cannot read ", kind, " '", name, "': read error");
  if (total == 0) fail_io("cannot read ", kind, " '", name, "': the file is empty");
}

// Reads a whole file (errors as read_file_pieces).
inline std::vector<unsigned char> read_file_bytes(const std::filesystem::path& path,
                                                  std::string_view kind) {
  std::vector<unsigned char> bytes;
  std::error_code ec;
  if (const auto size = std::filesystem::file_size(path, ec); !ec) bytes.reserve(size);
  read_file_pieces(path, kind, [&](const unsigned char* piece, std::size_t count) { bytes.insert(bytes.end(), piece, piece + count); });
  return bytes;
}

inline void write_file_bytes(const std::filesystem::path& path, const void* bytes, size_t count,
                             std::string_view kind) {
  namespace fs = std::filesystem;
  const std::string name = path.string();
  const fs::path parent = path.parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec))
    fail_io("cannot write ", kind, " '", name, "': directory '", parent.string(), "' does not exist");
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    const int err = errno;
    fail_io("cannot write ", kind, " '", name, "': cannot open the file for writing (",
         err != 0 ? std::strerror(err) : "unknown reason", ")");
  }
  out.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(count));
  out.close();
  if (!out) fail_io("cannot write ", kind, " '", name, "': write failed (disk full?)");
}

}  // namespace salient::detail
