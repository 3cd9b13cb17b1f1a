#pragma once
// SHA-256 (FIPS 180-4) of bytes and of files, as lower-case hex: what a certificate records to
// bind its verdict to the exact model and image files it is about, and what identifies a model
// in a run's summary. Files are hashed as they are read; x86 processors with the SHA
// extensions hash with them (~8x faster: a 45 MB resnet18 in ~0.03 s instead of ~0.2 s, paid
// at every tool's start), others with the portable rounds.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SALIENT_SHA_NI 1
#endif

#include "salient/io/detail/files.hpp"

namespace salient::detail {

inline constexpr std::array<uint32_t, 64> sha256_round_constants{
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
      0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
      0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
      0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
      0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
      0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

// Compresses `blocks` 64-byte blocks into `h`, one round at a time.
inline void sha256_blocks_portable(std::array<uint32_t, 8>& h, const unsigned char* data, std::size_t blocks) {
  const auto& k = sha256_round_constants;
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (; blocks > 0; --blocks, data += 64) {
    std::array<uint32_t, 64> w{};
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(data[4 * i]) << 24 | uint32_t(data[4 * i + 1]) << 16 | uint32_t(data[4 * i + 2]) << 8 | data[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    auto v = h;
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = v[7] + (rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25)) + ((v[4] & v[5]) ^ (~v[4] & v[6])) + k[i] + w[i];
      const uint32_t t2 = (rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22)) + ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
      v = {t1 + t2, v[0], v[1], v[2], v[3] + t1, v[4], v[5], v[6]};
    }
    for (int i = 0; i < 8; ++i) h[i] += v[i];
  }
}

#ifdef SALIENT_SHA_NI
// Whether this processor has the SHA extensions (CPUID leaf 7: EBX bit 29) and SSE4.1.
inline bool sha256_hardware_available() {
  static const bool available = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_max(0, nullptr) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    const bool sha = (b >> 29) & 1;
    __cpuid(1, a, b, c, d);
    return sha && ((c >> 19) & 1);
  }();
  return available;
}

// The same compression with the SHA extensions: the state lives as (A,B,E,F) and (C,D,G,H),
// each instruction doing two rounds; the message schedule runs four words at a time.
__attribute__((target("sha,sse4.1"))) inline void sha256_blocks_hardware(std::array<uint32_t, 8>& h, const unsigned char* data,
                                                                          std::size_t blocks) {
  const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i cdab = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&h[0])), 0xB1);
  __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&h[4])), 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef_before = abef, cdgh_before = cdgh;
    __m128i w[4];
    for (int i = 0; i < 4; ++i)
      w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), byte_swap);
    for (int g = 0; g < 16; ++g) {  // rounds 4g .. 4g+3 with message words w[g % 4]
      __m128i& now = w[g % 4];
      __m128i words = _mm_add_epi32(now, _mm_loadu_si128(reinterpret_cast<const __m128i*>(&sha256_round_constants[4 * g])));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, words);
      if (g >= 3 && g <= 14) {  // the next group's words: W[t-16] + s0(W[t-15]) + W[t-7] + s1(W[t-2])
        __m128i& next = w[(g + 1) % 4];
        next = _mm_add_epi32(next, _mm_alignr_epi8(now, w[(g + 3) % 4], 4));
        next = _mm_sha256msg2_epu32(next, now);
      }
      words = _mm_shuffle_epi32(words, 0x0E);
      abef = _mm_sha256rnds2_epu32(abef, cdgh, words);
      if (g >= 1 && g <= 12) w[(g + 3) % 4] = _mm_sha256msg1_epu32(w[(g + 3) % 4], now);
    }
    abef = _mm_add_epi32(abef, abef_before);
    cdgh = _mm_add_epi32(cdgh, cdgh_before);
  }
  const __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  const __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&h[0]), _mm_blend_epi16(feba, dchg, 0xF0));  // A B C D
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&h[4]), _mm_alignr_epi8(dchg, feba, 8));     // E F G H
}
#else
inline bool sha256_hardware_available() { return false; }
inline void sha256_blocks_hardware(std::array<uint32_t, 8>& h, const unsigned char* data, std::size_t blocks) {
  sha256_blocks_portable(h, data, blocks);
}
#endif

// A SHA-256 fed in pieces of any size.
class Sha256 {
 public:
  // `hardware`: use the SHA extensions where the processor has them (false: the portable rounds).
  explicit Sha256(bool hardware = true) : hardware_(hardware && sha256_hardware_available()) {}

  void update(const unsigned char* data, std::size_t size) {
    size_ += size;
    if (pending_ > 0) {  // complete the pending block first
      const std::size_t take = std::min(size, 64 - pending_);
      std::copy(data, data + take, block_.begin() + static_cast<std::ptrdiff_t>(pending_));
      pending_ += take, data += take, size -= take;
      if (pending_ < 64) return;
      compress(block_.data(), 1);
      pending_ = 0;
    }
    compress(data, size / 64);
    std::copy(data + size / 64 * 64, data + size, block_.begin());
    pending_ = size % 64;
  }

  // The digest as 64 lower-case hex digits: the pending bytes, the 0x80 marker and the length
  // in bits (big-endian) in one or two last blocks.
  std::string hex() && {
    const uint64_t bits = static_cast<uint64_t>(size_) * 8;
    std::array<unsigned char, 128> tail{};
    std::copy(block_.begin(), block_.begin() + static_cast<std::ptrdiff_t>(pending_), tail.begin());
    tail[pending_] = 0x80;
    const std::size_t blocks = pending_ + 9 <= 64 ? 1 : 2;
    for (int i = 0; i < 8; ++i) tail[blocks * 64 - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
    compress(tail.data(), blocks);
    std::string hex;
    char digits[9];
    for (uint32_t word : h_) {
      std::snprintf(digits, sizeof digits, "%08x", word);
      hex += digits;
    }
    return hex;
  }

 private:
  void compress(const unsigned char* data, std::size_t blocks) {
    if (blocks == 0) return;
    if (hardware_) sha256_blocks_hardware(h_, data, blocks);
    else sha256_blocks_portable(h_, data, blocks);
  }
  bool hardware_;
  std::array<uint32_t, 8> h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<unsigned char, 64> block_{};
  std::size_t pending_ = 0;
  uint64_t size_ = 0;
};

inline std::string sha256_hex(const unsigned char* data, size_t size) {
  Sha256 sha;
  sha.update(data, size);
  return std::move(sha).hex();
}

inline std::string sha256_hex(std::string_view text) {
  return sha256_hex(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

// `kind` ("model", "image") only words the error messages.
inline std::string file_sha256(const std::filesystem::path& path, std::string_view kind) {
  Sha256 sha;
  read_file_pieces(path, kind, [&](const unsigned char* piece, std::size_t count) { sha.update(piece, count); });
  return std::move(sha).hex();
}

}  // namespace salient::detail
