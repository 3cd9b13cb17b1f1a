#pragma once
// A fresh directory per test case, removed afterwards (write permission restored first, for
// tests that make it read-only).
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

namespace salient::test {
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "salient_test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};
}  // namespace salient::test
