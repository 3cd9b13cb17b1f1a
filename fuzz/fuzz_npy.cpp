// libFuzzer target: the .npy reader (header parsing, versions, dtypes, shapes, truncation).
#include <cstdint>

#include "fuzz_input.hpp"
#include "salient/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = salient::fuzz::input_file(data, size, ".npy");
  try {
    const auto array = salient::load_npy(path);
    size_t count = 1;
    for (auto d : array.shape) count *= static_cast<size_t>(d);
    if (count != array.data.size()) __builtin_trap();  // the reader's own promise
  } catch (const salient::error&) {
  }
  return 0;
}
