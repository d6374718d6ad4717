#include "base/crc32.h"

#include <libdeflate.h>

namespace ocifs {

uint32_t Crc32(uint32_t crc, std::span<const uint8_t> bytes) {
  return libdeflate_crc32(crc, bytes.data(), bytes.size());
}

}  // namespace ocifs
