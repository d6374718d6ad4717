// Qcow2Header: the validated header of a qcow2 image (versions 2 and 3),
// following qemu's docs/interop/qcow2.txt. Everything Qcow2Source needs to
// map guest offsets, with every number bounded before it is trusted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs {

enum class Qcow2Compression { kDeflate, kZstd };

// A byte range of the image file that holds metadata [offset, offset + length).
struct HostRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string what;  // "header cluster", "L1 table", "refcount table"
};

// A plain value; immutable after ReadQcow2Header returns it.
struct Qcow2Header {
  uint32_t version = 0;
  uint32_t cluster_bits = 0;
  uint64_t cluster_size = 0;       // bytes, 512 .. 2 MiB
  uint64_t virtual_size = 0;       // bytes
  uint32_t l1_size = 0;            // entries in the active L1 table (header field)
  uint64_t l1_table_offset = 0;    // bytes into the file, cluster aligned
  uint64_t l1_entries_used = 0;    // entries that cover virtual_size (<= l1_size)
  uint64_t incompatible_features = 0;
  uint32_t header_length = 0;      // 72 for v2
  Qcow2Compression compression = Qcow2Compression::kDeflate;
  bool extended_l2 = false;        // 128-bit L2 entries with 32 subclusters
  bool dirty = false;
  bool marked_corrupt = false;
  uint32_t l2_entry_bytes = 8;     // 8, or 16 with extended_l2
  uint64_t l2_entries = 0;         // entries per L2 table (one cluster)
  uint32_t subcluster_bits = 0;    // log2 of the subcluster size (= cluster_bits without extended_l2)
  uint64_t file_size = 0;          // the image file's size, or ByteSource::kUnknownSize
  std::vector<HostRange> metadata;  // clusters no data cluster or L2 table may overlap
};

// Limits on what a header may ask for (qemu's own implementation limits).
inline constexpr uint64_t kQcow2MaxL1Bytes = 32ull << 20;
inline constexpr uint64_t kQcow2MaxVirtualSize = 1ull << 56;
inline constexpr uint32_t kQcow2MinClusterBits = 9;
inline constexpr uint32_t kQcow2MaxClusterBits = 21;

// Reads and validates the header, its extensions and the feature bits.
// kCorrupt: malformed or absurd fields (the message names the field and value).
// kUnsupported: encryption, a backing file, an external data file, an unknown
// incompatible feature bit, an unknown compression type, qcow version 1.
// Dirty and corrupt-marked images are accepted with a warning in the log.
[[nodiscard]] Result<Qcow2Header> ReadQcow2Header(const ByteSource& file);

}  // namespace ocifs
