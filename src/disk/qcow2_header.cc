#include "disk/qcow2_header.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "disk/big_endian.h"

namespace ocifs {
namespace {

constexpr uint32_t kV2HeaderLength = 72;
constexpr uint32_t kV3MinHeaderLength = 104;

constexpr uint32_t kExtEnd = 0x00000000;
constexpr uint32_t kExtFeatureNames = 0x6803f857;
constexpr uint32_t kExtDataFile = 0x44415441;

constexpr uint64_t kIncompatDirty = 1ull << 0;
constexpr uint64_t kIncompatCorrupt = 1ull << 1;
constexpr uint64_t kIncompatDataFile = 1ull << 2;
constexpr uint64_t kIncompatCompression = 1ull << 3;
constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
constexpr uint64_t kIncompatKnown = (1ull << 5) - 1;

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Bytes from the file shown in a message: printable ASCII only.
std::string Printable(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '?';
  return s;
}

struct Extensions {
  std::map<int, std::string> incompatible_names;  // bit -> name, from the feature name table
  std::string data_file;
  bool has_data_file = false;
};

// Walks the header extensions in [start, end) of `cluster`.
Status ParseExtensions(const std::vector<uint8_t>& cluster, uint64_t start, uint64_t end,
                       Extensions* out) {
  uint64_t pos = start;
  while (pos + 8 <= end) {
    uint32_t type = LoadBe32(&cluster[pos]);
    uint32_t len = LoadBe32(&cluster[pos + 4]);
    if (type == kExtEnd) return Status::Ok();
    uint64_t data = pos + 8;
    if (len > end - data) {
      return Corrupt("qcow2 header extension " + Hex(type) + " at offset " + std::to_string(pos) +
                     " has length " + std::to_string(len) + ", past the end of the header area (" +
                     std::to_string(end) + ")");
    }
    if (type == kExtFeatureNames) {
      for (uint64_t e = data; e + 48 <= data + len; e += 48) {
        const uint8_t* entry = &cluster[e];
        if (entry[0] != 0 || entry[1] > 63) continue;  // only incompatible bits matter to us
        size_t n = std::find(entry + 2, entry + 48, uint8_t{0}) - (entry + 2);
        out->incompatible_names[entry[1]] = Printable(entry + 2, n);
      }
    } else if (type == kExtDataFile) {
      out->has_data_file = true;
      out->data_file = Printable(&cluster[data], std::min<uint64_t>(len, 1023));
    }
    pos = data + ((uint64_t{len} + 7) & ~uint64_t{7});
  }
  return Status::Ok();
}

}  // namespace

Result<Qcow2Header> ReadQcow2Header(const ByteSource& file) {
  Qcow2Header h;
  h.file_size = file.size();
  const bool size_known = h.file_size != ByteSource::kUnknownSize;

  uint8_t fixed[kV3MinHeaderLength] = {};
  OCIFS_ASSIGN_OR_RETURN(size_t got, file.ReadAt(0, fixed));
  if (got < kV2HeaderLength) {
    return Corrupt("qcow2 header truncated: the file has only " + std::to_string(got) + " bytes");
  }
  if (LoadBe32(fixed) != 0x514649fb) return Corrupt("qcow2 magic missing");
  h.version = LoadBe32(fixed + 4);
  if (h.version == 1) return Unsupported("qcow (version 1) images are not supported; convert to qcow2");
  if (h.version != 2 && h.version != 3) {
    return Unsupported("qcow2 version " + std::to_string(h.version) + " is not supported");
  }
  const uint64_t backing_offset = LoadBe64(fixed + 8);
  const uint32_t backing_size = LoadBe32(fixed + 16);
  h.cluster_bits = LoadBe32(fixed + 20);
  h.virtual_size = LoadBe64(fixed + 24);
  const uint32_t crypt_method = LoadBe32(fixed + 32);
  h.l1_size = LoadBe32(fixed + 36);
  h.l1_table_offset = LoadBe64(fixed + 40);
  const uint64_t refcount_offset = LoadBe64(fixed + 48);
  const uint32_t refcount_clusters = LoadBe32(fixed + 56);

  if (h.cluster_bits < kQcow2MinClusterBits || h.cluster_bits > kQcow2MaxClusterBits) {
    return Corrupt("qcow2 cluster_bits " + std::to_string(h.cluster_bits) + " is outside 9..21");
  }
  h.cluster_size = uint64_t{1} << h.cluster_bits;

  h.header_length = kV2HeaderLength;
  if (h.version == 3) {
    if (got < kV3MinHeaderLength) return Corrupt("qcow2 v3 header truncated");
    h.incompatible_features = LoadBe64(fixed + 72);
    h.header_length = LoadBe32(fixed + 100);
    if (h.header_length < kV3MinHeaderLength || h.header_length % 8 != 0 ||
        h.header_length > h.cluster_size) {
      return Corrupt("qcow2 header_length " + std::to_string(h.header_length) +
                     " is not a multiple of 8 between 104 and the cluster size");
    }
  }

  // The whole first cluster: header, extensions, backing file name.
  uint64_t area = h.cluster_size;
  if (size_known) area = std::min(area, h.file_size);
  std::vector<uint8_t> cluster(area);
  OCIFS_ASSIGN_OR_RETURN(size_t area_got, file.ReadAt(0, cluster));
  cluster.resize(area_got);
  if (area_got < h.header_length) return Corrupt("qcow2 header truncated inside header_length");

  uint8_t compression_type = 0;
  if (h.header_length > 104) compression_type = cluster[104];

  uint64_t ext_end = cluster.size();
  if (backing_offset != 0 && backing_offset > h.header_length) {
    ext_end = std::min<uint64_t>(ext_end, backing_offset);
  }
  Extensions ext;
  OCIFS_RETURN_IF_ERROR(ParseExtensions(cluster, h.header_length, ext_end, &ext));

  // Incompatible features: refuse what we cannot read correctly.
  uint64_t unknown = h.incompatible_features & ~kIncompatKnown;
  if (unknown != 0) {
    int bit = __builtin_ctzll(unknown);
    std::string name = ext.incompatible_names.count(bit) ? " ('" + ext.incompatible_names[bit] + "')" : "";
    return Unsupported("qcow2 image uses unknown incompatible feature bit " + std::to_string(bit) + name);
  }
  if (h.incompatible_features & kIncompatDataFile) {
    std::string name = ext.has_data_file ? " '" + ext.data_file + "'" : "";
    return Unsupported("qcow2 image keeps its data in an external data file" + name +
                       "; oci-fs serves standalone images only");
  }
  if (crypt_method != 0) {
    std::string how = crypt_method == 1 ? "AES" : crypt_method == 2 ? "LUKS" : "method " + std::to_string(crypt_method);
    return Unsupported("qcow2 image is encrypted (" + how + "); oci-fs does not decrypt images");
  }
  if (backing_offset != 0) {
    std::string name = "(unreadable name)";
    if (backing_size <= 1023 && backing_offset < cluster.size() && backing_size <= cluster.size() - backing_offset) {
      name = Printable(&cluster[backing_offset], backing_size);
    }
    return Unsupported("qcow2 image has a backing file '" + name + "'; oci-fs serves standalone images only");
  }

  const bool zstd_bit = h.incompatible_features & kIncompatCompression;
  if (zstd_bit != (compression_type != 0)) {
    return Corrupt("qcow2 compression_type " + std::to_string(compression_type) +
                   " disagrees with incompatible feature bit 3 (" + (zstd_bit ? "set" : "clear") + ")");
  }
  if (compression_type == 1) {
    h.compression = Qcow2Compression::kZstd;
  } else if (compression_type != 0) {
    return Unsupported("qcow2 compression_type " + std::to_string(compression_type) + " is not supported");
  }

  h.extended_l2 = h.incompatible_features & kIncompatExtendedL2;
  if (h.extended_l2 && h.cluster_bits < 14) {
    return Corrupt("qcow2 image has extended L2 entries with cluster_bits " + std::to_string(h.cluster_bits) +
                   " (needs at least 14)");
  }
  h.l2_entry_bytes = h.extended_l2 ? 16 : 8;
  h.l2_entries = h.cluster_size / h.l2_entry_bytes;
  h.subcluster_bits = h.extended_l2 ? h.cluster_bits - 5 : h.cluster_bits;
  h.dirty = h.incompatible_features & kIncompatDirty;
  h.marked_corrupt = h.incompatible_features & kIncompatCorrupt;
  if (h.dirty) spdlog::warn("{}: qcow2 image is marked dirty; reading it anyway", file.Describe());
  if (h.marked_corrupt) spdlog::warn("{}: qcow2 image is marked corrupt; reading it anyway", file.Describe());

  // Sizes and the L1 table.
  if (h.virtual_size > kQcow2MaxVirtualSize) {
    return Corrupt("qcow2 virtual size " + std::to_string(h.virtual_size) + " exceeds 2^56 bytes");
  }
  const uint64_t per_l1_entry = h.l2_entries << h.cluster_bits;  // guest bytes one L2 table maps
  h.l1_entries_used = (h.virtual_size + per_l1_entry - 1) / per_l1_entry;
  const uint64_t l1_bytes = uint64_t{h.l1_size} * 8;
  if (l1_bytes > kQcow2MaxL1Bytes) {
    return Corrupt("qcow2 l1_size " + std::to_string(h.l1_size) + " (" + std::to_string(l1_bytes) +
                   " bytes) exceeds the 32 MiB limit");
  }
  if (h.l1_size < h.l1_entries_used) {
    return Corrupt("qcow2 l1_size " + std::to_string(h.l1_size) + " is too small for virtual size " +
                   std::to_string(h.virtual_size) + " (needs " + std::to_string(h.l1_entries_used) + " entries)");
  }
  if (h.l1_size > 0) {
    if (h.l1_table_offset % h.cluster_size != 0 || h.l1_table_offset < h.cluster_size) {
      return Corrupt("qcow2 l1_table_offset " + Hex(h.l1_table_offset) +
                     " is not a cluster-aligned offset after the header cluster");
    }
    if (h.l1_table_offset > kQcow2MaxVirtualSize ||
        (size_known && (h.l1_table_offset > h.file_size || l1_bytes > h.file_size - h.l1_table_offset))) {
      return Corrupt("qcow2 L1 table (" + std::to_string(l1_bytes) + " bytes at " + Hex(h.l1_table_offset) +
                     ") extends past the end of the file (" + std::to_string(h.file_size) + " bytes)");
    }
  }

  h.metadata.push_back(HostRange{0, h.cluster_size, "the header cluster"});
  if (h.l1_size > 0) {
    uint64_t rounded = (l1_bytes + h.cluster_size - 1) & ~(h.cluster_size - 1);
    h.metadata.push_back(HostRange{h.l1_table_offset, rounded, "the L1 table"});
  }
  // Refcounts are not needed to read; the table only marks clusters data may not use.
  uint64_t rt_bytes = uint64_t{refcount_clusters} << h.cluster_bits;
  if (refcount_offset != 0 && refcount_offset % h.cluster_size == 0 && size_known &&
      refcount_offset < h.file_size && rt_bytes <= h.file_size - refcount_offset) {
    h.metadata.push_back(HostRange{refcount_offset, rt_bytes, "the refcount table"});
  }
  return h;
}

}  // namespace ocifs
