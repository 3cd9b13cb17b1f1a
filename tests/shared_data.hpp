#pragma once
// Where the tests find ../shared (models and photos): the SALIENT_SHARED environment
// variable, else the CMake option SALIENT_SHARED_DIR. Tests that need it print
// "SKIPPED: <reason>" (ctest reports them as skipped) when it is absent.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

namespace salient::test {

inline std::optional<std::filesystem::path> shared_dir() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("SALIENT_SHARED"); env && *env) dir = env;
  else dir = SALIENT_SHARED_DIR;
  if (std::filesystem::exists(dir / "models" / "mobilenet_v2_imagenet.pt")) return dir;
  std::cout << "SKIPPED: shared models not found in '" << dir.string()
            << "' (set SALIENT_SHARED or -DSALIENT_SHARED_DIR)\n";
  return std::nullopt;
}

// The repository's own data/ (MobileNetV2, its labels, eight photos), laid out like ../shared:
// a test that needs only these switches by changing which folder it asks for.
inline std::filesystem::path shipped_dir() { return std::filesystem::path(SALIENT_SOURCE_DIR) / "data"; }

}  // namespace salient::test
