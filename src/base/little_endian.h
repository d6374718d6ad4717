// Little-endian loads and stores for the formats we write (the cache's chunk
// and kept-piece files): byte by byte, so they hold on any host and any alignment.
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

}  // namespace ocifs
