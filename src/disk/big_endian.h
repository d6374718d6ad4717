// Big-endian loads for on-disk formats (qcow2 stores every number big-endian).
#pragma once

#include <cstdint>

namespace ocifs {

inline uint32_t LoadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

inline uint64_t LoadBe64(const uint8_t* p) {
  return (uint64_t{LoadBe32(p)} << 32) | uint64_t{LoadBe32(p + 4)};
}

}  // namespace ocifs
