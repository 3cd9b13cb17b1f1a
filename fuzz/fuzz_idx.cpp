// libFuzzer target: the IDX reader (plain and gzip-compressed MNIST-style files).
#include <cstdint>

#include "fuzz_input.hpp"
#include "salient/io/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = salient::fuzz::input_file(data, size, ".idx");
  try {
    const auto array = salient::load_idx(path);
    size_t count = 1;
    for (auto d : array.shape) count *= static_cast<size_t>(d);
    if (count != array.data.size()) __builtin_trap();  // the reader's own promise
  } catch (const salient::error&) {
  }
  return 0;
}
