// AllZero: whether a buffer holds only zero bytes (a raw disk's empty space).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace ocifs {

// Compares the buffer with itself shifted by one byte: memcmp's speed, no table.
inline bool AllZero(std::span<const uint8_t> data) {
  return data.empty() || (data[0] == 0 && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
}

}  // namespace ocifs
