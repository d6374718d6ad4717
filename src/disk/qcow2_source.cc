#include "disk/qcow2_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/worker_pool.h"
#include "disk/big_endian.h"
#include "disk/qcow2_decompress.h"

namespace ocifs {
namespace {

constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ull;  // bits 9..55 of L1 and L2 entries
constexpr uint64_t kCompressedBit = 1ull << 62;
constexpr uint64_t kZeroBit = 1ull;
constexpr uint64_t kSector = 512;
constexpr uint64_t kMaxPrefetchGuestBytes = 256ull << 20;
constexpr uint64_t kPrefetchReadBytes = 64 << 10;  // reads from this size up prefetch their host ranges

std::string SourceHex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

Result<std::shared_ptr<Qcow2Source>> Qcow2Source::Open(ByteSourcePtr file, const DiskViewOptions& options) {
  if (!file) return InvalidArgument("Qcow2Source::Open: no file");
  OCIFS_ASSIGN_OR_RETURN(Qcow2Header header, ReadQcow2Header(*file));
  // Bounded by the header checks: at most 32 MiB and inside the file.
  std::vector<uint8_t> raw(header.l1_entries_used * 8);
  Status st = ReadExactly(*file, header.l1_table_offset, raw);
  if (!st.ok()) return st.WithContext("qcow2 L1 table");
  std::vector<uint64_t> l1(header.l1_entries_used);
  for (size_t i = 0; i < l1.size(); ++i) l1[i] = LoadBe64(&raw[i * 8]);
  auto source = std::make_shared<Qcow2Source>(std::move(file), std::move(header), std::move(l1), options);
  source->PrefetchL2Tables();
  return source;
}

void Qcow2Source::PrefetchL2Tables() const {
  // Merge the tables' host ranges (qemu-img writes them close together) and
  // hand them down as a few hints; loading them stays lazy (LoadL2 checks them).
  std::vector<uint64_t> tables;
  for (uint64_t e : l1_) {
    if ((e & kOffsetMask) != 0) tables.push_back(e & kOffsetMask);
  }
  std::sort(tables.begin(), tables.end());
  const uint64_t cs = header_.cluster_size;
  uint64_t run_start = 0, run_end = 0, budget = kMaxPrefetchGuestBytes;
  for (uint64_t t : tables) {
    if (run_end != 0 && t <= run_end + cs) {
      run_end = std::max(run_end, t + cs);
      continue;
    }
    if (run_end != 0) file_->Prefetch(run_start, run_end - run_start);
    if (budget < cs) return;
    budget -= cs;
    run_start = t;
    run_end = t + cs;
  }
  if (run_end != 0) file_->Prefetch(run_start, run_end - run_start);
}

Qcow2Source::Qcow2Source(ByteSourcePtr file, Qcow2Header header, std::vector<uint64_t> l1,
                         const DiskViewOptions& options)
    : file_(std::move(file)),
      header_(std::move(header)),
      l1_(std::move(l1)),
      l2_cache_(options.l2_cache_bytes),
      clusters_(options.memory_cache_bytes),
      scheduler_(options.scheduler ? options.scheduler : Scheduler::Shared()) {
  if (options.cluster_store) {
    cluster_store_ = options.cluster_store(header_.cluster_size);
    if (cluster_store_ && cluster_store_->chunk_size() != header_.cluster_size) cluster_store_.reset();
  }
}

Status Qcow2Source::CheckNotMetadata(uint64_t host, uint64_t length, const char* what, uint64_t guest) const {
  for (const HostRange& m : header_.metadata) {
    if (host < m.offset + m.length && m.offset < host + length) {
      return Corrupt(std::string("qcow2 ") + what + " for guest offset " + std::to_string(guest) +
                     " points to host offset " + SourceHex(host) + ", inside " + m.what);
    }
  }
  return Status::Ok();
}

Result<CachedBuffer> Qcow2Source::LoadL2(uint64_t l2_offset, uint64_t l1_index) const {
  const uint64_t cs = header_.cluster_size;
  if (l2_offset % cs != 0) {
    return Corrupt("qcow2 L1 entry " + std::to_string(l1_index) + " has an unaligned L2 table offset " +
                   SourceHex(l2_offset));
  }
  OCIFS_RETURN_IF_ERROR(CheckNotMetadata(l2_offset, cs, "L2 table", l1_index * (header_.l2_entries << header_.cluster_bits)));
  if (header_.file_size != kUnknownSize && (l2_offset > header_.file_size || cs > header_.file_size - l2_offset)) {
    return Corrupt("qcow2 L1 entry " + std::to_string(l1_index) + " points to an L2 table at " + SourceHex(l2_offset) +
                   " past the end of the file (" + std::to_string(header_.file_size) + " bytes)");
  }
  return l2_cache_.GetOrLoad(l2_offset, [&]() -> Result<CachedBuffer> {
    auto table = std::make_shared<std::vector<uint8_t>>(cs);
    Status st = ReadExactly(*file_, l2_offset, *table);
    if (!st.ok()) return st.WithContext("qcow2 L2 table at " + SourceHex(l2_offset));
    return CachedBuffer(std::move(table));
  });
}

template <typename Visit>
Status Qcow2Source::Walk(uint64_t start, uint64_t end, size_t max_tables, L2Mode mode, Visit&& visit) const {
  const uint32_t cb = header_.cluster_bits;
  const uint64_t cs = header_.cluster_size;
  const uint64_t per_table = header_.l2_entries << cb;
  size_t tables = 0;
  uint64_t pos = start;
  while (pos < end) {
    const uint64_t l1_index = pos / per_table;
    const uint64_t span_end = std::min(end, (l1_index + 1) * per_table);
    if (l1_index >= l1_.size()) return Internal("qcow2 guest offset " + std::to_string(pos) + " beyond the L1 table");
    const uint64_t l2_offset = l1_[l1_index] & kOffsetMask;
    if (l2_offset == 0) {
      if (!visit(Run{pos, span_end - pos, Kind::kUnallocated, 0, 0})) return Status::Ok();
      pos = span_end;
      continue;
    }
    if (tables == max_tables) return Status::Ok();
    ++tables;
    CachedBuffer table;
    if (mode == L2Mode::kCachedOnly) {
      table = l2_cache_.Lookup(l2_offset);
      if (!table) {
        file_->Prefetch(l2_offset, cs);
        pos = span_end;
        continue;
      }
    } else {
      OCIFS_ASSIGN_OR_RETURN(table, LoadL2(l2_offset, l1_index));
    }
    while (pos < span_end) {
      const uint64_t cluster_start = pos & ~(cs - 1);
      const uint64_t cluster_end = std::min(cluster_start + cs, span_end);
      const uint8_t* e = table->data() + ((pos >> cb) % header_.l2_entries) * header_.l2_entry_bytes;
      const uint64_t entry = LoadBe64(e);
      const uint64_t host = entry & kOffsetMask;
      if (entry & kCompressedBit) {
        if (!visit(Run{pos, cluster_end - pos, Kind::kCompressed, 0, entry})) return Status::Ok();
        pos = cluster_end;
        continue;
      }
      uint32_t alloc = 0, zero = 0;  // subcluster bitmaps (all 32 alike without extended L2)
      if (header_.extended_l2) {
        const uint64_t bitmap = LoadBe64(e + 8);
        alloc = static_cast<uint32_t>(bitmap);
        zero = static_cast<uint32_t>(bitmap >> 32);
        if (alloc & zero) {
          return Corrupt("qcow2 L2 entry for guest offset " + std::to_string(cluster_start) +
                         " marks subclusters both allocated and zero (bitmap " + SourceHex(bitmap) + ")");
        }
        if (alloc != 0 && host == 0) {
          return Corrupt("qcow2 L2 entry for guest offset " + std::to_string(cluster_start) +
                         " has allocated subclusters but no host offset");
        }
      } else if (header_.version >= 3 && (entry & kZeroBit)) {
        zero = ~0u;
      } else if (host != 0) {
        alloc = ~0u;
      }
      if (alloc != 0) {
        if (host % cs != 0) {
          return Corrupt("qcow2 L2 entry for guest offset " + std::to_string(cluster_start) +
                         " has an unaligned host cluster offset " + SourceHex(host));
        }
        OCIFS_RETURN_IF_ERROR(CheckNotMetadata(host, cs, "data cluster", cluster_start));
      }
      const uint32_t sb = header_.subcluster_bits;
      auto kind_of = [&](uint64_t sc) {
        uint32_t bit = header_.extended_l2 ? (1u << sc) : 1u;
        if (!header_.extended_l2) return alloc ? Kind::kData : zero ? Kind::kZero : Kind::kUnallocated;
        return (alloc & bit) ? Kind::kData : (zero & bit) ? Kind::kZero : Kind::kUnallocated;
      };
      const uint64_t subclusters = uint64_t{1} << (cb - sb);
      while (pos < cluster_end) {
        uint64_t sc = (pos - cluster_start) >> sb;
        const Kind kind = kind_of(sc);
        uint64_t next = sc + 1;
        while (next < subclusters && kind_of(next) == kind) ++next;
        const uint64_t run_end = std::min(cluster_start + (next << sb), cluster_end);
        if (!visit(Run{pos, run_end - pos, kind, host + (pos - cluster_start), 0})) return Status::Ok();
        pos = run_end;
      }
    }
  }
  return Status::Ok();
}

Status Qcow2Source::CompressedRange(uint64_t l2_entry, uint64_t guest, uint64_t* offset, uint64_t* length) const {
  const uint32_t size_bits = header_.cluster_bits - 8;
  const uint32_t x = 62 - size_bits;
  const uint64_t coffset = l2_entry & ((uint64_t{1} << x) - 1);
  const uint64_t sectors = ((l2_entry >> x) & ((uint64_t{1} << size_bits) - 1)) + 1;
  const uint64_t csize = sectors * kSector - (coffset & (kSector - 1));
  const std::string where = "qcow2 compressed cluster for guest offset " + std::to_string(guest);
  if (coffset >= kQcow2MaxVirtualSize) return Corrupt(where + " has host offset " + SourceHex(coffset) + " beyond 2^56");
  OCIFS_RETURN_IF_ERROR(CheckNotMetadata(coffset, csize, "compressed cluster", guest));
  uint64_t len = csize;
  if (header_.file_size != kUnknownSize) {
    // The size field counts whole sectors; at the end of the file the last
    // one may be partial (qemu reads what exists).
    if (coffset >= header_.file_size || csize - std::min(csize, header_.file_size - coffset) >= kSector) {
      return Corrupt(where + " (" + std::to_string(csize) + " bytes at " + SourceHex(coffset) +
                     ") extends past the end of the file (" + std::to_string(header_.file_size) + " bytes)");
    }
    len = std::min(csize, header_.file_size - coffset);
  }
  *offset = coffset;
  *length = len;
  return Status::Ok();
}

Result<CachedBuffer> Qcow2Source::Decompressed(uint64_t l2_entry, uint64_t guest) const {
  return clusters_.GetOrLoad(l2_entry, [&]() -> Result<CachedBuffer> {
    if (!cluster_store_) return Inflate(l2_entry, guest);
    const uint64_t index = guest / header_.cluster_size;
    auto stored = std::make_shared<std::vector<uint8_t>>(header_.cluster_size);
    Result<bool> hit = cluster_store_->Get(index, *stored);
    // Missed: another mount of the disk may be inflating it (or have kept it
    // since): wait for that instead of inflating it too.
    std::unique_ptr<DecodedChunkStore::MakeClaim> claim;
    if (hit.ok() && !*hit) hit = cluster_store_->GetOrClaim(index, *stored, &claim);
    if (hit.ok() && *hit) {
      stored_cluster_reads_.fetch_add(1, std::memory_order_relaxed);
      return CachedBuffer(std::move(stored));
    }
    OCIFS_ASSIGN_OR_RETURN(CachedBuffer inflated, Inflate(l2_entry, guest));
    // A store that fails costs the next read an inflate, never the bytes. The
    // claim is dropped after the Put, so its waiters find the cluster.
    Status put = cluster_store_->PutShared(index, inflated);
    if (!put.ok()) spdlog::debug("qcow2: cannot keep the cluster at guest offset {}: {}", guest, put.ToString());
    return inflated;
  });
}

bool Qcow2Source::ClusterAtHand(const Run& r) const {
  return clusters_.Lookup(r.l2_entry) ||
         (cluster_store_ && cluster_store_->Contains(r.guest / header_.cluster_size));
}

Result<CachedBuffer> Qcow2Source::Inflate(uint64_t l2_entry, uint64_t guest) const {
  uint64_t coffset = 0, len = 0;
  OCIFS_RETURN_IF_ERROR(CompressedRange(l2_entry, guest, &coffset, &len));
  std::vector<uint8_t> in(len);  // at most two clusters (4 MiB)
  OCIFS_ASSIGN_OR_RETURN(size_t got, file_->ReadAt(coffset, in));
  // Only a partial last sector may be missing (when the file size was unknown).
  if (len - got >= kSector) {
    return Corrupt("qcow2 compressed cluster for guest offset " + std::to_string(guest) + " (" +
                   std::to_string(len) + " bytes at " + SourceHex(coffset) + ") extends past the end of the file");
  }
  in.resize(got);
  auto out = std::make_shared<std::vector<uint8_t>>(header_.cluster_size);
  Status st = DecompressCluster(header_.compression, in, *out);
  if (!st.ok()) return st.WithContext("qcow2 guest offset " + std::to_string(guest));
  decompressions_.fetch_add(1, std::memory_order_relaxed);
  return CachedBuffer(std::move(out));
}

Status Qcow2Source::ReadData(uint64_t host, std::span<uint8_t> out, uint64_t guest) const {
  if (header_.file_size != kUnknownSize && (host > header_.file_size || out.size() > header_.file_size - host)) {
    return Corrupt("qcow2 guest offset " + std::to_string(guest) + " maps to host bytes " + SourceHex(host) + ".." +
                   SourceHex(host + out.size()) + " past the end of the file (" + std::to_string(header_.file_size) +
                   " bytes)");
  }
  Status st = ReadExactly(*file_, host, out);
  return st.ok() ? st : st.WithContext("qcow2 guest offset " + std::to_string(guest));
}

Result<size_t> Qcow2Source::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= size()) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size() - offset));
  // Plan: merge zero runs and host-contiguous data runs.
  std::vector<Run> plan;
  OCIFS_RETURN_IF_ERROR(Walk(offset, offset + n, SIZE_MAX, L2Mode::kLoad, [&](const Run& r) {
    Run run = r;
    if (run.kind == Kind::kUnallocated) run.kind = Kind::kZero;
    if (!plan.empty()) {
      Run& last = plan.back();
      if (run.kind == last.kind &&
          (run.kind == Kind::kZero || (run.kind == Kind::kData && last.host + last.length == run.host))) {
        last.length += run.length;
        return true;
      }
    }
    plan.push_back(run);
    return true;
  }));

  // A large read of several host ranges: let the source below fetch them together.
  size_t host_reads = 0;
  for (const Run& r : plan) host_reads += r.kind != Kind::kZero;
  if (host_reads >= 2 && n >= kPrefetchReadBytes) {
    for (const Run& r : plan) {
      uint64_t coffset = 0, clen = 0;
      if (r.kind == Kind::kData) {
        file_->Prefetch(r.host, r.length);
      } else if (r.kind == Kind::kCompressed && !ClusterAtHand(r) &&
                 CompressedRange(r.l2_entry, r.guest, &coffset, &clen).ok()) {
        file_->Prefetch(coffset, clen);
      }
    }
  }

  // Compressed clusters in memory are taken (and held) now, once; several not
  // in memory are loaded side by side.
  std::vector<CachedBuffer> inflated(plan.size());  // held until copied: the cache may drop them
  std::vector<size_t> to_inflate;
  for (size_t k = 0; k < plan.size(); ++k) {
    if (plan[k].kind != Kind::kCompressed) continue;
    inflated[k] = clusters_.Lookup(plan[k].l2_entry);
    if (!inflated[k]) to_inflate.push_back(k);
  }
  if (to_inflate.size() >= 2) {
    OCIFS_RETURN_IF_ERROR(scheduler_->decode_pool().ParallelFor(to_inflate.size(), [&](size_t k) -> Status {
      const Run& r = plan[to_inflate[k]];
      OCIFS_ASSIGN_OR_RETURN(inflated[to_inflate[k]], Decompressed(r.l2_entry, r.guest & ~(header_.cluster_size - 1)));
      return Status::Ok();
    }));
  }

  for (size_t k = 0; k < plan.size(); ++k) {
    const Run& r = plan[k];
    std::span<uint8_t> out = buf.subspan(r.guest - offset, r.length);
    switch (r.kind) {
      case Kind::kUnallocated:
      case Kind::kZero:
        std::memset(out.data(), 0, out.size());
        break;
      case Kind::kData:
        OCIFS_RETURN_IF_ERROR(ReadData(r.host, out, r.guest));
        break;
      case Kind::kCompressed: {
        const uint64_t cluster_start = r.guest & ~(header_.cluster_size - 1);
        CachedBuffer cluster = std::move(inflated[k]);
        if (!cluster) {
          OCIFS_ASSIGN_OR_RETURN(cluster, Decompressed(r.l2_entry, cluster_start));
        }
        std::memcpy(out.data(), cluster->data() + (r.guest - cluster_start), out.size());
        break;
      }
    }
  }
  return n;
}

Result<Extent> Qcow2Source::ExtentAt(uint64_t offset) const {
  if (offset >= size()) return Extent{offset, 0, false};
  bool have = false, hole = false;
  uint64_t end = offset;
  Status st = Walk(offset, size(), kMaxExtentL2Tables, L2Mode::kLoad, [&](const Run& r) {
    const bool h = r.kind == Kind::kUnallocated || r.kind == Kind::kZero;
    if (!have) {
      have = true;
      hole = h;
    } else if (h != hole) {
      return false;
    }
    end = r.guest + r.length;
    return true;
  });
  // A bad entry after the first run ends the extent there; reading it reports it.
  if (!st.ok() && !have) return st;
  if (!have) return Internal("qcow2 extent walk produced nothing at " + std::to_string(offset));
  return Extent{offset, end - offset, hole};
}

void Qcow2Source::Prefetch(uint64_t offset, uint64_t length) const {
  if (offset >= size()) return;
  const uint64_t end = offset + std::min({length, size() - offset, kMaxPrefetchGuestBytes});
  uint64_t run_host = 0, run_len = 0;
  auto flush = [&] {
    if (run_len != 0) file_->Prefetch(run_host, run_len);
    run_len = 0;
  };
  Status st = Walk(offset, end, kMaxExtentL2Tables, L2Mode::kCachedOnly, [&](const Run& r) {
    if (r.kind == Kind::kData) {
      if (run_len != 0 && run_host + run_len == r.host) {
        run_len += r.length;
      } else {
        flush();
        run_host = r.host;
        run_len = r.length;
      }
    } else if (r.kind == Kind::kCompressed && !ClusterAtHand(r)) {
      uint64_t coffset = 0, clen = 0;
      if (CompressedRange(r.l2_entry, r.guest, &coffset, &clen).ok()) file_->Prefetch(coffset, clen);
    }
    return true;
  });
  (void)st;  // a hint: errors surface when the range is read
  flush();
}

}  // namespace ocifs
