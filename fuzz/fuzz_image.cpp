// libFuzzer target: PNG/JPEG/BMP decoding and the resize + crop every model input goes
// through. Any exception other than salient::error, any sanitizer report, a crash or a leak is
// a finding.
#include <cstdint>

#include "fuzz_input.hpp"
#include "salient/io/image.hpp"

#ifndef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY LLVMFuzzerTestOneInput  // tests/fuzz_replay.cpp renames it
#endif

extern "C" int SALIENT_FUZZ_ENTRY(const uint8_t* data, size_t size) {
  const auto path = salient::fuzz::input_file(data, size, ".img");
  try {
    const auto image = salient::load_image(path);
    const auto resized = salient::resize_shorter_side(image, 32, salient::ResizeArithmetic::pil_uint8);
    salient::center_crop(resized, 32, 32);
  } catch (const salient::error&) {
  }
  return 0;
}
