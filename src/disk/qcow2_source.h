// Qcow2Source: the guest view of a qcow2 image (versions 2 and 3), read-only.
//
// Guest offsets map through the active L1 table (held in memory) and L2
// tables (one cluster each, loaded with one inner read and kept in an LRU).
// Supports every cluster size qemu allows (512 B .. 2 MiB), zero clusters,
// extended L2 entries (32 subclusters per cluster), compressed clusters
// (deflate and zstd, decompressed once into an LRU memory cache with single
// flight, and kept in DiskViewOptions::cluster_store when one is given, so a
// later read, or a later mount, reads them back instead). Refcounts and internal snapshots are ignored; backing files,
// external data files and encryption are refused at Open.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "disk/cluster_cache.h"
#include "disk/disk_view.h"
#include "disk/qcow2_header.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: safe for concurrent use; the header and L1 table are
// immutable after Open, the two caches guard themselves.
// Ownership: shares ownership of the inner `file`.
// Units: size() is the virtual disk size in bytes; offsets are guest bytes.
// Trust: every offset read from the image is bounded before use; a bad one
// gives kCorrupt naming the guest offset and the field, never a wild read.
// Read cost: the compressed clusters of one read that are not in memory
// inflate side by side on the scheduler's decode pool.
class Qcow2Source final : public ByteSource {
 public:
  [[nodiscard]] static Result<std::shared_ptr<Qcow2Source>> Open(ByteSourcePtr file,
                                                                const DiskViewOptions& options);

  uint64_t size() const override { return header_.virtual_size; }
  // Reads guest bytes. Unallocated and zero (sub)clusters are zeros without an
  // inner read; host-contiguous data clusters are read with one inner read;
  // a read of 64 KiB or more that touches several host ranges first forwards
  // Prefetch for them. Errors: kCorrupt naming the guest offset and the bad
  // entry, or the inner source's error.
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // A hole for unallocated and zero (sub)clusters, data otherwise, merged over
  // neighbours of the same kind (scanning at most kMaxExtentL2Tables tables).
  Result<Extent> ExtentAt(uint64_t offset) const override;
  // Forwards the host ranges of [offset, offset + length) that cached L2
  // tables resolve, and the L2 tables themselves when they are not cached.
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return "qcow2 " + file_->Describe(); }

  const Qcow2Header& header() const { return header_; }
  // Counters for tests and stats: L2 tables read, clusters decompressed,
  // clusters read back from the cluster store.
  uint64_t l2_table_loads() const { return l2_cache_.loads(); }
  uint64_t decompressions() const { return decompressions_.load(std::memory_order_relaxed); }
  uint64_t stored_cluster_reads() const { return stored_cluster_reads_.load(std::memory_order_relaxed); }
  bool has_cluster_store() const { return cluster_store_ != nullptr; }

  static constexpr size_t kMaxExtentL2Tables = 64;

  // Forwards Prefetch for the host ranges of every L2 table the L1 table
  // names (merged when adjacent, at most 256 MiB); Open calls it, so a
  // caching source below fetches the metadata in the background at mount.
  void PrefetchL2Tables() const;

  // Use Open. `l1` holds header.l1_entries_used host-endian entries.
  Qcow2Source(ByteSourcePtr file, Qcow2Header header, std::vector<uint64_t> l1, const DiskViewOptions& options);

 private:
  enum class Kind { kUnallocated, kZero, kData, kCompressed };
  // A guest range [guest, guest + length) of one kind; `host` is where the
  // first byte lives for kData; `l2_entry` is the descriptor for kCompressed.
  struct Run {
    uint64_t guest = 0;
    uint64_t length = 0;
    Kind kind = Kind::kUnallocated;
    uint64_t host = 0;
    uint64_t l2_entry = 0;
  };
  enum class L2Mode { kLoad, kCachedOnly };

  // Calls visit(const Run&) -> bool for consecutive runs covering [start, end)
  // (at most one cluster each, except an unallocated L1 entry's whole range),
  // until visit returns false or `max_tables` L2 tables were consulted.
  template <typename Visit>
  Status Walk(uint64_t start, uint64_t end, size_t max_tables, L2Mode mode, Visit&& visit) const;

  Result<CachedBuffer> LoadL2(uint64_t l2_offset, uint64_t l1_index) const;
  // kCorrupt if [host, host + length) overlaps the header, L1 or refcount table.
  Status CheckNotMetadata(uint64_t host, uint64_t length, const char* what, uint64_t guest) const;
  // The compressed bytes' host range (clamped to the file) for an L2 entry.
  Status CompressedRange(uint64_t l2_entry, uint64_t guest, uint64_t* offset, uint64_t* length) const;
  // The decompressed cluster at guest offset `guest` (cluster-aligned): from
  // memory, else from the cluster store, else inflated (and then stored).
  Result<CachedBuffer> Decompressed(uint64_t l2_entry, uint64_t guest) const;
  Result<CachedBuffer> Inflate(uint64_t l2_entry, uint64_t guest) const;
  // Whether reading compressed run `r` needs no compressed bytes (its cluster
  // is in memory or in the store): prefetching its bytes would be waste.
  bool ClusterAtHand(const Run& r) const;
  Status ReadData(uint64_t host, std::span<uint8_t> out, uint64_t guest) const;

  ByteSourcePtr file_;
  const Qcow2Header header_;
  const std::vector<uint64_t> l1_;
  mutable ClusterCache l2_cache_;  // key: L2 table host offset
  mutable ClusterCache clusters_;  // key: compressed L2 entry; value: one decompressed cluster
  std::shared_ptr<DecodedChunkStore> cluster_store_;  // null: memory only
  const std::shared_ptr<Scheduler> scheduler_;        // lends the decode pool
  mutable std::atomic<uint64_t> decompressions_{0}, stored_cluster_reads_{0};
};

}  // namespace ocifs
