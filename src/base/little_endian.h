// Little-endian loads and stores for the formats we write (the cache's chunk
// and kept-piece files, the gzip, zstd and tar indexes): byte by byte, so they
// hold on any host and any alignment. The one place that spells them out.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ocifs {

template <typename T>
void StoreLe(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
}

template <typename T>
T LoadLe(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

// The low `bytes` (0..8) bytes of p, low byte first.
inline uint64_t LoadLeN(const uint8_t* p, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Appends the low `bytes` (0..8) bytes of v, low byte first, to a byte
// container: std::vector<uint8_t> or std::string.
template <typename Bytes>
void AppendLeN(Bytes& out, uint64_t v, size_t bytes) {
  using Byte = typename Bytes::value_type;
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<Byte>(static_cast<uint8_t>(v >> (8 * i))));
}

// Appends all sizeof(T) bytes of v, low byte first.
template <typename T, typename Bytes>
void AppendLe(Bytes& out, T v) {
  AppendLeN(out, static_cast<uint64_t>(v), sizeof(T));
}

}  // namespace ocifs
