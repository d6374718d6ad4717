#include "cache/chunk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "cache/cache_key.h"
#include "cache/chunk_format.h"

namespace ocifs {
namespace {

constexpr std::string_view kTempPrefix = ".tmp-";

// "<key>/<index>" in a stack buffer (the hit path does not allocate).
struct RelName {
  std::array<char, kMaxKeyLength + 24> buf;
  RelName(std::string_view key, uint64_t index) {
    std::memcpy(buf.data(), key.data(), key.size());  // key.size() <= kMaxKeyLength
    char* p = buf.data() + key.size();
    *p++ = '/';
    p = std::to_chars(p, buf.data() + buf.size() - 1, index).ptr;
    *p = '\0';
  }
  const char* c_str() const { return buf.data(); }
};

// A decimal without leading zeros that fits in uint64_t.
bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// preadv into the iovecs; returns bytes read. A short read is end of file
// (regular files), so a hit costs one syscall.
Result<size_t> PreadvOnce(int fd, iovec* iov, int count) {
  for (;;) {
    ssize_t n = ::preadv(fd, iov, count, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoError("read chunk", errno);
  }
}

Status WriteFull(int fd, std::span<const uint8_t> a, std::span<const uint8_t> b) {
  std::array<std::span<const uint8_t>, 2> parts = {a, b};
  uint64_t off = 0;
  for (auto part : parts) {
    while (!part.empty()) {
      ssize_t n = ::pwrite(fd, part.data(), part.size(), static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("write chunk", errno);
      }
      part = part.subspan(static_cast<size_t>(n));
      off += static_cast<uint64_t>(n);
    }
  }
  return Status::Ok();
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return Status::Ok();
  if (errno == ENOENT) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (!ec && (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST)) return Status::Ok();
  }
  return ErrnoError("create cache directory " + path, errno);
}

// Unlinks the temp file `name` in directory `dir_fd` if older than cutoff (a crashed writer's).
void RemoveOldTemp(int dir_fd, const char* name, const struct stat& st, int64_t cutoff_ns, const std::string& where) {
  if (MtimeNs(st) < cutoff_ns && ::unlinkat(dir_fd, name, 0) == 0) {
    spdlog::info("chunk cache: removed leftover temp file {}/{}", where, name);
  }
}

Result<UniqueFd> OpenDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open cache directory " + path, errno);
  return fd;
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// Opens parent/name for listing; null if it vanished or is not a directory.
DirPtr ListDirAt(int parent, const char* name) {
  int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return nullptr;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) ::close(fd);
  return DirPtr(d);
}

}  // namespace

Result<std::unique_ptr<ChunkStore>> ChunkStore::Open(const std::string& dir, uint32_t chunk_size,
                                                     bool fsync) {
  const std::string chunks = dir + "/chunks";
  const std::string sized = chunks + "/" + std::to_string(chunk_size);
  const std::string kept = dir + "/kept";
  for (const std::string& d : {dir, chunks, sized, dir + "/side", kept}) OCIFS_RETURN_IF_ERROR(MakeDir(d));
  OCIFS_ASSIGN_OR_RETURN(UniqueFd chunks_fd, OpenDir(chunks));
  OCIFS_ASSIGN_OR_RETURN(UniqueFd size_fd, OpenDir(sized));
  OCIFS_ASSIGN_OR_RETURN(UniqueFd kept_fd, OpenDir(kept));
  return std::unique_ptr<ChunkStore>(
      new ChunkStore(dir, chunk_size, fsync, std::move(chunks_fd), std::move(size_fd), std::move(kept_fd)));
}

bool ChunkStore::Exists(std::string_view key, uint64_t index) const {
  RelName rel(key, index);
  struct stat st;
  return ::fstatat(size_fd_.get(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

bool ChunkStore::ReadPart(std::string_view key, uint64_t index, size_t length, size_t offset,
                          std::span<uint8_t> out, bool touch) const {
  if (offset > length || out.size() > length - offset) return false;
  RelName rel(key, index);
  UniqueFd fd(::openat(size_fd_.get(), rel.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return false;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || static_cast<uint64_t>(st.st_size) != kChunkHeaderSize + length) return false;
  std::array<uint8_t, kChunkHeaderSize> header;
  if (::pread(fd.get(), header.data(), header.size(), 0) != static_cast<ssize_t>(header.size())) return false;
  ChunkHeader expected{chunk_size_, index, CacheKeyHash(key), static_cast<uint32_t>(length), 0};
  uint32_t data_crc = 0;
  if (!CheckChunkHeader(header, expected, &data_crc).ok()) return false;
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd.get(), out.data() + done, out.size() - done,
                        static_cast<off_t>(kChunkHeaderSize + offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  if (touch) ::futimens(fd.get(), nullptr);  // best effort: recency only
  return true;
}

ChunkStore::ReadOutcome ChunkStore::Read(std::string_view key, uint64_t index,
                                         std::span<uint8_t> out, bool touch) const {
  RelName rel(key, index);
  UniqueFd fd(::openat(size_fd_.get(), rel.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno != ENOENT) spdlog::warn("chunk cache: open {}/{}: {}", dir_, rel.c_str(), std::strerror(errno));
    return ReadOutcome::kMiss;
  }
  std::array<uint8_t, kChunkHeaderSize> header;
  uint8_t extra;  // a byte past the expected end shows a file that is too long
  iovec iov[3] = {{header.data(), header.size()}, {out.data(), out.size()}, {&extra, 1}};
  Result<size_t> n = PreadvOnce(fd.get(), iov, 3);
  if (!n.ok()) {
    spdlog::warn("chunk cache: {}/{}: {}", dir_, rel.c_str(), n.status().message());
    return ReadOutcome::kMiss;
  }
  const size_t want = kChunkHeaderSize + out.size();
  Status bad;
  uint32_t data_crc = 0;
  if (*n < kChunkHeaderSize) {
    bad = Corrupt("truncated header (" + std::to_string(*n) + " bytes)");
  } else {
    ChunkHeader expected{chunk_size_, index, CacheKeyHash(key), static_cast<uint32_t>(out.size()), 0};
    bad = CheckChunkHeader(header, expected, &data_crc);
    if (bad.ok() && *n != want) {
      bad = Corrupt("file is " + std::string(*n < want ? "shorter" : "longer") +
                    " than its header says (" + std::to_string(want) + " bytes)");
    }
    if (bad.ok() && ChunkCrc32(out) != data_crc) bad = Corrupt("data CRC mismatch");
  }
  if (!bad.ok()) {
    spdlog::warn("chunk cache: dropping {}/chunks/{}/{}: {}", dir_, chunk_size_, rel.c_str(), bad.message());
    ::unlinkat(size_fd_.get(), rel.c_str(), 0);
    return ReadOutcome::kDropped;
  }
  if (touch) ::futimens(fd.get(), nullptr);  // best effort: recency only
  return ReadOutcome::kHit;
}

Status ChunkStore::WriteTemp(const std::string& key_dir, std::span<const uint8_t> header,
                             std::span<const uint8_t> data, std::string* tmp_name) const {
  UniqueFd fd;
  for (int attempt = 0; attempt < 8 && !fd.valid(); ++attempt) {
    if (::mkdirat(size_fd_.get(), key_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError("create " + dir_ + "/chunks/" + std::to_string(chunk_size_) + "/" + key_dir, errno);
    }
    *tmp_name = key_dir + "/" + std::string(kTempPrefix) + std::to_string(::getpid()) + "-" +
                std::to_string(temp_counter_.fetch_add(1, std::memory_order_relaxed));
    fd.reset(::openat(size_fd_.get(), tmp_name->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    // ENOENT: an evictor removed the empty key directory; EEXIST: a crashed
    // process with our pid left this name. Both: try again.
    if (!fd.valid() && errno != ENOENT && errno != EEXIST) {
      return ErrnoError("create " + dir_ + "/chunks/" + *tmp_name, errno);
    }
  }
  if (!fd.valid()) return IoError("create a temp file in " + dir_ + "/chunks/" + key_dir + ": gave up");
  Status st = WriteFull(fd.get(), header, data);
  if (st.ok() && fsync_ && ::fdatasync(fd.get()) != 0) st = ErrnoError("fdatasync " + *tmp_name, errno);
  if (st.ok() && ::close(fd.release()) != 0) st = ErrnoError("close " + *tmp_name, errno);
  return st;
}

Result<uint64_t> ChunkStore::Write(std::string_view key, uint64_t index,
                                   std::span<const uint8_t> data) const {
  if (data.empty() || data.size() > chunk_size_) {
    return InvalidArgument("chunk of " + std::to_string(data.size()) + " bytes (chunk size " +
                           std::to_string(chunk_size_) + ")");
  }
  std::array<uint8_t, kChunkHeaderSize> header;
  EncodeChunkHeader({chunk_size_, index, CacheKeyHash(key), static_cast<uint32_t>(data.size()),
                     ChunkCrc32(data)},
                    header);
  const std::string key_dir(key);
  std::string tmp;
  Status st = WriteTemp(key_dir, header, data, &tmp);
  if (st.ok()) {
    RelName rel(key, index);
    if (::renameat(size_fd_.get(), tmp.c_str(), size_fd_.get(), rel.c_str()) != 0) {
      st = ErrnoError("rename " + tmp + " to " + rel.c_str(), errno);
    }
  }
  if (!st.ok()) {
    if (!tmp.empty()) ::unlinkat(size_fd_.get(), tmp.c_str(), 0);
    return st.WithContext("chunk cache " + dir_);
  }
  return uint64_t{kChunkHeaderSize + data.size()};
}

Result<std::vector<ChunkStore::FileInfo>> ChunkStore::Scan(int64_t temp_cutoff_ns) const {
  std::vector<FileInfo> files;
  DirPtr sizes = ListDirAt(chunks_fd_.get(), ".");
  if (!sizes) return ErrnoError("list " + dir_ + "/chunks", errno);
  while (dirent* s = ::readdir(sizes.get())) {
    uint64_t chunk_size = 0;
    if (!ParseDecimal(s->d_name, &chunk_size) || chunk_size > UINT32_MAX) continue;
    DirPtr keys = ListDirAt(chunks_fd_.get(), s->d_name);
    if (!keys) continue;
    while (dirent* k = ::readdir(keys.get())) {
      if (!ValidateCacheKey(k->d_name).ok()) continue;
      DirPtr entries = ListDirAt(::dirfd(keys.get()), k->d_name);
      if (!entries) continue;
      const int key_fd = ::dirfd(entries.get());
      while (dirent* e = ::readdir(entries.get())) {
        std::string_view name = e->d_name;
        uint64_t index = 0;
        bool temp = name.starts_with(kTempPrefix);
        if (!temp && !ParseDecimal(name, &index)) continue;
        struct stat st;
        if (::fstatat(key_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        if (temp) {
          RemoveOldTemp(key_fd, e->d_name, st, temp_cutoff_ns,
                        dir_ + "/chunks/" + s->d_name + "/" + k->d_name);
          continue;
        }
        files.push_back({std::string(s->d_name) + "/" + k->d_name + "/" + e->d_name,
                         static_cast<uint32_t>(chunk_size), k->d_name, index,
                         static_cast<uint64_t>(st.st_size), MtimeNs(st)});
      }
    }
  }
  ScanKept(temp_cutoff_ns, &files);
  return files;
}

void ChunkStore::ScanKept(int64_t temp_cutoff_ns, std::vector<FileInfo>* files) const {
  DirPtr kept = ListDirAt(kept_fd_.get(), ".");
  if (!kept) return;
  while (dirent* e = ::readdir(kept.get())) {
    std::string_view name = e->d_name;
    const bool temp = name.starts_with(kTempPrefix);
    if (!temp && !ValidateCacheKey(name).ok()) continue;
    struct stat st;
    if (::fstatat(kept_fd_.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (temp) {
      RemoveOldTemp(kept_fd_.get(), e->d_name, st, temp_cutoff_ns, dir_ + "/kept");
      continue;
    }
    // A sparse file: what it holds on disk, not its length.
    files->push_back({std::string(name), 0, std::string(name), 0, static_cast<uint64_t>(st.st_blocks) * 512,
                      MtimeNs(st), /*kept=*/true});
  }
}

std::vector<uint64_t> ChunkStore::ListIndexes(std::string_view key) const {
  std::vector<uint64_t> indexes;
  DirPtr entries = ListDirAt(size_fd_.get(), std::string(key).c_str());
  if (!entries) return indexes;
  while (dirent* e = ::readdir(entries.get())) {
    uint64_t index = 0;
    if (ParseDecimal(e->d_name, &index)) indexes.push_back(index);
  }
  return indexes;
}

bool ChunkStore::Remove(const FileInfo& file) const {
  if (file.kept) return ::unlinkat(kept_fd_.get(), file.rel_path.c_str(), 0) == 0;
  if (::unlinkat(chunks_fd_.get(), file.rel_path.c_str(), 0) != 0) return false;
  std::string key_dir = std::to_string(file.chunk_size) + "/" + file.key;
  ::unlinkat(chunks_fd_.get(), key_dir.c_str(), AT_REMOVEDIR);  // fails while not empty: fine
  return true;
}

std::string ChunkStore::KeptPath(std::string_view key) const {
  std::string path = dir_ + "/kept/";
  path += key;
  return path;
}

std::string ChunkStore::SidePath(std::string_view key, std::string_view suffix) const {
  std::string path = dir_ + "/side/";
  path += key;
  path += '.';
  path += suffix;
  return path;
}

}  // namespace ocifs
