// The LibTorch-free fuzz targets' corpus, replayed (fuzz_replay.hpp); in scripts/test built with
// AddressSanitizer + UndefinedBehaviorSanitizer.
#define SALIENT_FUZZ_ENTRY fuzz_image
#include "fuzz_image.cpp"
#undef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY fuzz_npy
#include "fuzz_npy.cpp"
#undef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY fuzz_idx
#include "fuzz_idx.cpp"
#undef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY fuzz_segments
#include "fuzz_segments.cpp"
#undef SALIENT_FUZZ_ENTRY
#define SALIENT_FUZZ_ENTRY fuzz_certificate
#include "fuzz_certificate.cpp"
#undef SALIENT_FUZZ_ENTRY

#include "fuzz_replay.hpp"

int main() {
  using salient::fuzz::Target;
  return salient::fuzz::replay({Target{"image", fuzz_image}, Target{"npy", fuzz_npy}, Target{"idx", fuzz_idx},
                                Target{"segments", fuzz_segments}, Target{"certificate", fuzz_certificate}});
}
