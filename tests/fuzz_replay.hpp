#pragma once
// Replays fuzz targets' seed corpus (fuzz/corpus/<target>/) and any inputs libFuzzer kept
// (build/fuzz/corpus-<target>/, where scripts/fuzz ran) through the same target code, built with
// the tests' compiler: CI re-checks every input in seconds without clang or libFuzzer. A target
// traps on a broken promise; a sanitizer report or an exception other than salient::error ends
// the run too. Returns main's exit code: 1 when a target has no seeds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

namespace salient::fuzz {

struct Target {
  const char* name;
  int (*run)(const uint8_t*, size_t);
};

inline int replay(std::initializer_list<Target> targets) {
  namespace fs = std::filesystem;
  int failures = 0;
  for (const Target target : targets) {
    int inputs = 0;
    for (const fs::path folder : {fs::path(SALIENT_SOURCE_DIR) / "fuzz" / "corpus" / target.name,
                                  fs::path(SALIENT_SOURCE_DIR) / "build" / "fuzz" / ("corpus-" + std::string(target.name))}) {
      if (!fs::is_directory(folder)) continue;
      for (const auto& entry : fs::directory_iterator(folder)) {
        std::ifstream in(entry.path(), std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        ++inputs;
      }
    }
    std::printf("%s: %d inputs replayed\n", target.name, inputs);
    if (inputs == 0) {
      std::printf("%s: no seed inputs in fuzz/corpus/%s\n", target.name, target.name);
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace salient::fuzz
