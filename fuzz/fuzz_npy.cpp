// libFuzzer target: the .npy reader (header parsing, versions, dtypes, shapes, truncation).
#include <cstdint>

#include "fuzz_input.hpp"
#include "salient/io/npy.hpp"

#ifndef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY LLVMFuzzerTestOneInput  // tests/fuzz_replay.cpp renames it
#endif

extern "C" int SALIENT_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  const auto path = salient::fuzz::input_file(data, size, ".npy");
  try {
    salient::fuzz::check_count(salient::load_npy(path));
  } catch (const salient::error&) {
  }
  return 0;
}
