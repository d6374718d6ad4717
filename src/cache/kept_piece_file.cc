#include "cache/kept_piece_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <spdlog/spdlog.h>

#include "cache/cache_key.h"
#include "cache/chunk_format.h"
#include "cache/lru_policy.h"

namespace ocifs {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t RoundUp(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

Status PwriteFull(int fd, std::span<const uint8_t> data, uint64_t offset, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("write " + what, n < 0 ? errno : EIO);
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

// Bytes read before the end of the file (a short count past it).
size_t PreadFull(int fd, std::span<uint8_t> out, uint64_t offset) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// Creates `path` with only its header, atomically: a temp file beside it,
// then link(2), which fails if another process created it first (fine).
// Returns whether this call created it.
Result<bool> CreateWithHeader(const std::string& path, const KeptHeader& header) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  UniqueFd fd;
  // EEXIST: a crashed process with our pid left this name; take the next.
  for (int attempt = 0; attempt < 8 && !fd.valid(); ++attempt) {
    tmp = path.substr(0, path.rfind('/') + 1) + ".tmp-" + std::to_string(::getpid()) + "-" +
          std::to_string(counter.fetch_add(1));
    fd.reset(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid() && errno != EEXIST) return ErrnoError("create " + tmp, errno);
  }
  if (!fd.valid()) return IoError("create a temp file beside " + path + ": gave up");
  // The whole header block: its claim words are inside the file from the start
  // (a file of an older build may end after the header: its words are still
  // shared, in the page cache page that holds the header, but not stored).
  std::array<uint8_t, kKeptHeaderBlock> bytes{};
  EncodeKeptHeader(header, std::span<uint8_t, kKeptHeaderSize>(bytes.data(), kKeptHeaderSize));
  Status st = PwriteFull(fd.get(), bytes, 0, tmp);
  bool created = false;
  if (st.ok()) {
    if (::link(tmp.c_str(), path.c_str()) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      st = ErrnoError("link " + tmp + " to " + path, errno);
    }
  }
  ::unlink(tmp.c_str());
  if (!st.ok()) return st;
  return created;
}

}  // namespace

Result<std::shared_ptr<KeptPieceFile>> KeptPieceFile::Open(std::shared_ptr<ChunkCache> cache, std::string key,
                                                           uint32_t piece_size) {
  if (!ValidPieceSize(piece_size)) {
    return InvalidArgument("kept pieces: piece size " + std::to_string(piece_size) +
                           " is not a power of two in 4 KiB..16 MiB");
  }
  std::string path = cache->KeptPath(key);
  if (path.empty()) return InvalidArgument("kept pieces: invalid key " + key);
  std::shared_ptr<KeptPieceFile> file(new KeptPieceFile(std::move(cache), std::move(key), std::move(path), piece_size));
  OCIFS_ASSIGN_OR_RETURN(HandlePtr handle, file->OpenFile());
  file->Install(std::move(handle));
  return file;
}

KeptPieceFile::KeptPieceFile(std::shared_ptr<ChunkCache> cache, std::string key, std::string path,
                             uint32_t piece_size)
    : cache_(std::move(cache)),
      key_(std::move(key)),
      path_(std::move(path)),
      piece_size_(piece_size),
      key_hash_(CacheKeyHash(key_)),
      touch_interval_ns_(int64_t{cache_->touch_interval_ms()} * 1'000'000) {}

Result<KeptPieceFile::HandlePtr> KeptPieceFile::OpenFile() const {
  const KeptHeader want{piece_size_, key_hash_};
  for (int attempt = 0; attempt < 4; ++attempt) {
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno != ENOENT) return ErrnoError("open " + path_, errno);
      OCIFS_ASSIGN_OR_RETURN(bool created, CreateWithHeader(path_, want));
      if (created) cache_->CountKeptBytes(kKeptHeaderBlock);
      continue;
    }
    std::array<uint8_t, kKeptHeaderSize> header{};
    Status bad = PreadFull(fd.get(), header, 0) == header.size() ? CheckKeptHeader(header, want)
                                                                  : Corrupt("kept-piece header: truncated");
    if (bad.ok()) {
      auto handle = std::make_shared<Handle>();
      Result<std::unique_ptr<PieceClaims>> claims = PieceClaims::Map(fd.get());
      if (claims.ok()) {
        handle->claims = std::move(*claims);
      } else {
        spdlog::debug("kept pieces: {}: no claims: {}", path_, claims.status().ToString());
      }
      handle->fd = std::move(fd);
      return HandlePtr(std::move(handle));
    }
    // Not ours (another format version, a damaged header): replace it, unless
    // another process did already (then the name is another file).
    spdlog::warn("kept pieces: replacing {}: {}", path_, bad.message());
    struct stat opened, named;
    if (::fstat(fd.get(), &opened) == 0 && ::stat(path_.c_str(), &named) == 0 && opened.st_ino == named.st_ino) {
      ::unlink(path_.c_str());
    }
  }
  return IoError("kept pieces: cannot open " + path_ + ": gave up");
}

void KeptPieceFile::Install(HandlePtr handle) const {
  struct stat st;
  const uint64_t size = ::fstat(handle->fd.get(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  std::array<uint8_t, kKeptTableBlock> table;
  tsl::robin_map<uint64_t, KeptEntry> found;
  std::unordered_set<uint64_t> groups;
  for (uint64_t g = 0; KeptTableOffset(piece_size_, g) < size; ++g) {
    const size_t n = PreadFull(handle->fd.get(), table, KeptTableOffset(piece_size_, g));
    std::memset(table.data() + n, 0, table.size() - n);  // past the end: no pieces
    for (uint64_t slot = 0; slot < kKeptPiecesPerGroup; ++slot) {
      const uint64_t index = g * kKeptPiecesPerGroup + slot;
      std::span<const uint8_t, kKeptEntrySize> raw(table.data() + slot * kKeptEntrySize, kKeptEntrySize);
      if (auto entry = DecodeKeptEntry(key_hash_, index, piece_size_, raw)) {
        found.emplace(index, *entry);
        groups.insert(g);
      }
    }
  }
  std::lock_guard lock(mu_);
  handle_ = std::move(handle);
  known_ = std::move(found);
  groups_ = std::move(groups);
}

KeptPieceFile::HandlePtr KeptPieceFile::ReopenIfEvicted(const HandlePtr& seen) const {
  struct stat st;
  if (::fstat(seen->fd.get(), &st) != 0 || st.st_nlink > 0) return seen;
  std::lock_guard reopen(reopen_mu_);
  {
    std::lock_guard lock(mu_);
    if (handle_ != seen) return handle_;  // another thread reopened it
  }
  Result<HandlePtr> fresh = OpenFile();
  if (!fresh.ok()) {
    spdlog::warn("kept pieces: {} was evicted and cannot be opened again: {}", path_, fresh.status().ToString());
    return seen;
  }
  Install(*fresh);  // normally empty; another process may have started it
  std::lock_guard lock(mu_);
  return handle_;
}

Result<bool> KeptPieceFile::Get(uint64_t index, std::span<uint8_t> out) const {
  HandlePtr handle;
  KeptEntry entry;
  {
    std::lock_guard lock(mu_);
    auto it = known_.find(index);
    if (it == known_.end() || it->second.length != out.size()) return false;
    entry = it->second;
    handle = handle_;
  }
  const size_t n = PreadFull(handle->fd.get(), out, KeptDataOffset(piece_size_, index));
  if (n != out.size() || ChunkCrc32(out) != entry.data_crc) {
    spdlog::warn("kept pieces: dropping piece {} of {}: {}", index, path_,
                 n != out.size() ? "the file ends before it" : "data CRC mismatch");
    Forget(handle, index, entry);
    return false;
  }
  ++hits_;
  MaybeTouch(handle);
  return true;
}

Status KeptPieceFile::Put(uint64_t index, std::span<const uint8_t> data) const {
  if (data.empty() || data.size() > piece_size_ || index >= kMaxPieces) {
    return InvalidArgument("kept pieces: piece " + std::to_string(index) + " of " + std::to_string(data.size()) +
                           " bytes (piece size " + std::to_string(piece_size_) + ")");
  }
  HandlePtr handle;
  {
    std::lock_guard lock(mu_);
    auto it = known_.find(index);
    if (it != known_.end() && it->second.length == data.size()) return Status::Ok();
    handle = handle_;
  }
  handle = ReopenIfEvicted(handle);
  const KeptEntry entry{static_cast<uint32_t>(data.size()), ChunkCrc32(data)};
  std::array<uint8_t, kKeptEntrySize> raw;
  EncodeKeptEntry(key_hash_, index, entry, raw);
  // The bytes first: an entry is never on disk before the bytes it describes
  // are in the page cache (after a power loss its CRC still guards them).
  Status st = PwriteFull(handle->fd.get(), data, KeptDataOffset(piece_size_, index), path_);
  if (st.ok()) st = PwriteFull(handle->fd.get(), raw, KeptEntryOffset(piece_size_, index), path_);
  if (!st.ok()) {
    ++failed_;
    return st;
  }
  uint64_t added = RoundUp(data.size());
  {
    std::lock_guard lock(mu_);
    if (handle_ != handle) return Status::Ok();  // written to an evicted file: not known in the new one
    known_.insert_or_assign(index, entry);
    if (groups_.insert(index / kKeptPiecesPerGroup).second) added += kKeptTableBlock;
  }
  ++kept_;
  cache_->CountKeptBytes(added);  // may evict (this file too: the next Put starts a new one)
  return Status::Ok();
}

bool KeptPieceFile::FindOnDisk(const HandlePtr& handle, uint64_t index, size_t length) const {
  std::array<uint8_t, kKeptEntrySize> raw;
  if (PreadFull(handle->fd.get(), raw, KeptEntryOffset(piece_size_, index)) != raw.size()) return false;
  std::optional<KeptEntry> entry = DecodeKeptEntry(key_hash_, index, piece_size_, raw);
  if (!entry || entry->length != length) return false;
  std::lock_guard lock(mu_);
  if (handle_ != handle) return false;
  if (known_.insert_or_assign(index, *entry).second) ++found_later_;
  groups_.insert(index / kKeptPiecesPerGroup);
  return true;
}

Result<bool> KeptPieceFile::GetStoredByAnyone(uint64_t index, std::span<uint8_t> out) const {
  OCIFS_ASSIGN_OR_RETURN(bool hit, Get(index, out));
  if (hit || out.empty() || out.size() > piece_size_ || index >= kMaxPieces) return hit;
  HandlePtr handle;
  {
    std::lock_guard lock(mu_);
    handle = handle_;
  }
  if (!FindOnDisk(handle, index, out.size())) return false;
  return Get(index, out);
}

namespace {
// A claim handed to the caller, with the file (and its mapping) it lives in.
struct HeldClaim final : DecodedChunkStore::MakeClaim {
  HeldClaim(std::shared_ptr<const void> file, PieceClaims::Claim c) : handle(std::move(file)), claim(std::move(c)) {}
  std::shared_ptr<const void> handle;
  PieceClaims::Claim claim;  // destroyed first (members in reverse order): the mapping outlives it
};
}  // namespace

Result<bool> KeptPieceFile::GetOrClaim(uint64_t index, std::span<uint8_t> out,
                                       std::unique_ptr<MakeClaim>* claim) const {
  claim->reset();
  HandlePtr handle;
  {
    std::lock_guard lock(mu_);
    handle = handle_;
  }
  if (!handle->claims || out.empty() || out.size() > piece_size_ || index >= kMaxPieces) {
    return GetStoredByAnyone(index, out);
  }
  PieceClaims::Acquired got = handle->claims->Acquire(
      index, [&] { return FindOnDisk(handle, index, out.size()); }, kClaimTimeout);
  if (got.waited) ++claim_waits_;
  if (got.outcome == PieceClaims::Outcome::kTimedOut) ++claim_timeouts_;
  // Claimed: the piece may have been kept between the caller's miss and the
  // claim; ready: read it (a piece that fails its check is made again).
  Result<bool> hit = GetStoredByAnyone(index, out);
  if (!hit.ok() || *hit) return hit;  // the claim, if any, is dropped here
  if (got.claim.held()) *claim = std::make_unique<HeldClaim>(handle, std::move(got.claim));
  return false;
}

bool KeptPieceFile::Contains(uint64_t index) const {
  std::lock_guard lock(mu_);
  return known_.contains(index);
}

void KeptPieceFile::Forget(const HandlePtr& handle, uint64_t index, const KeptEntry& entry) const {
  ++corrupt_dropped_;
  {
    std::lock_guard lock(mu_);
    auto it = known_.find(index);
    if (handle_ != handle || it == known_.end() || it->second.data_crc != entry.data_crc) return;
    known_.erase(it);
  }
  // Best effort: a process that opens the file later must not trust the entry either.
  const std::array<uint8_t, kKeptEntrySize> zeros{};
  Status st = PwriteFull(handle->fd.get(), zeros, KeptEntryOffset(piece_size_, index), path_);
  if (!st.ok()) spdlog::debug("kept pieces: {}", st.ToString());
}

void KeptPieceFile::MaybeTouch(const HandlePtr& handle) const {
  const int64_t now = WallClockNs();
  int64_t last = last_touch_ns_.load(std::memory_order_relaxed);
  if (now - last < touch_interval_ns_ || !last_touch_ns_.compare_exchange_strong(last, now)) return;
  if (ReopenIfEvicted(handle) == handle) ::futimens(handle->fd.get(), nullptr);  // best effort: recency only
}

KeptPieceFile::Stats KeptPieceFile::stats() const {
  return {hits_.load(),       kept_.load(),        failed_.load(),        corrupt_dropped_.load(),
          found_later_.load(), claim_waits_.load(), claim_timeouts_.load()};
}

}  // namespace ocifs
