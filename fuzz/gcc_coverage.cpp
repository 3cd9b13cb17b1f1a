// Coverage for libFuzzer from GCC-built code. The `options` target includes LibTorch, whose
// 1.13 headers Debian's clang 14 cannot compile in C++20 (std::vector of the incomplete
// c10::IValue), so scripts/fuzz builds it with GCC's -fsanitize-coverage=trace-pc, whose
// callback libFuzzer no longer accepts. This file gives that callback: each call site's
// address, hashed, bumps one of 64 Ki 8-bit counters registered with libFuzzer as a module, which
// is what clang's inline-8bit-counters do per edge. It must be linked before libFuzzer with
// --allow-multiple-definition (libFuzzer's own callback only prints that it is unsupported).
#include <cstddef>
#include <cstdint>

namespace {
constexpr std::size_t counter_count = std::size_t{1} << 16;
uint8_t counters[counter_count];
}  // namespace

extern "C" void __sanitizer_cov_8bit_counters_init(uint8_t* begin, uint8_t* end);

extern "C" __attribute__((no_sanitize_address, no_sanitize_undefined)) void __sanitizer_cov_trace_pc() {
  const auto pc = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
  ++counters[(pc ^ (pc >> 16)) & (counter_count - 1)];
}

__attribute__((constructor)) static void register_counters() {
  __sanitizer_cov_8bit_counters_init(counters, counters + counter_count);
}
