#pragma once
// The readers take file paths, so each fuzz input is written to one file in /dev/shm (memory,
// not disk) and read back through the same code a user's file goes through.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace salient::fuzz {

inline std::filesystem::path input_file(const uint8_t* data, size_t size, const std::string& suffix) {
  static const std::filesystem::path folder = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  const auto path = folder / ("salient-fuzz-" + std::to_string(::getpid()) + suffix);  // one per suffix (target)
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

// The readers' own promise: the data holds exactly as many values as the shape says.
template <class Array>
void check_count(const Array& array) {
  size_t count = 1;
  for (auto d : array.shape) count *= static_cast<size_t>(d);
  if (count != array.data.size()) __builtin_trap();
}

}  // namespace salient::fuzz
