// AsGzipIndexVersion1: a version 2 gzip index file as version 1 wrote it (no
// zero-run section, version field 1, checksum recomputed), for tests that a
// version 1 file is still read (docs/gzip-index-format.md).
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ocifs::testing {

// `v2`: the bytes of a version 2 file holding `zero_runs` runs.
inline std::vector<uint8_t> AsGzipIndexVersion1(const std::vector<uint8_t>& v2, size_t zero_runs) {
  const size_t body = v2.size() - 4 - 8 - 16 * zero_runs;
  std::vector<uint8_t> v1(v2.begin(), v2.begin() + static_cast<ptrdiff_t>(body));
  v1[8] = 1;
  const uint32_t crc = static_cast<uint32_t>(crc32(0, v1.data(), static_cast<uInt>(v1.size())));
  for (int i = 0; i < 4; ++i) v1.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  return v1;
}

}  // namespace ocifs::testing
