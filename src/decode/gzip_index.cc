#include "decode/gzip_index.h"
#include "base/crc32.h"

#include <functional>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "base/little_endian.h"
#include "base/unique_fd.h"
#include "base/whole_file.h"

namespace ocifs {
namespace {

constexpr char kMagic[8] = {'O', 'C', 'I', 'F', 'S', 'G', 'Z', 'I'};
// 3: with block checksums; 2: without (still read, and written for an index
// without checksums); 1: without zero runs either.
constexpr uint32_t kVersion = 3;
constexpr uint32_t kFlagLearnZeroRuns = 1;  // version 3: the file gives no zero runs; learn them
constexpr size_t kHeaderSize = 68;
constexpr size_t kRecordSize = 28;  // without the compressed window
constexpr uint64_t kMaxIndexFile = 1ull << 30;

// Whether `out` bytes of output from `in` compressed bytes (from a
// checkpoint, which may start in the byte before) pass deflate's limit: a
// 258-byte match costs at least 2 bits, 1032 bytes per byte.
bool MoreThanDeflateMakes(uint64_t out, uint64_t in) {
  constexpr uint64_t kMaxRatio = 1032;
  return in < UINT64_MAX / 2 && out / kMaxRatio > in + 4;
}
uint32_t Crc(std::span<const uint8_t> b) {
  return Crc32(std::span<const uint8_t>(b.data(), b.size()));
}

}  // namespace

std::vector<uint8_t> CompressWindow(std::span<const uint8_t> window) {
  uLongf len = compressBound(static_cast<uLong>(window.size()));
  std::vector<uint8_t> z(len);
  if (compress2(z.data(), &len, window.data(), static_cast<uLong>(window.size()), 6) != Z_OK) {
    return {};  // cannot happen with a compressBound-sized buffer
  }
  // Its own size, not compressBound's: a window of zeros (a raw disk's empty
  // space) compresses to ~100 bytes, and thousands of them are held during a pass.
  return std::vector<uint8_t>(z.begin(), z.begin() + static_cast<ptrdiff_t>(len));
}

Result<std::vector<uint8_t>> GzipWindowFile::Read(uint64_t offset, uint32_t length) const {
  std::vector<uint8_t> bytes(length);
  if (blob_) {
    if (offset > blob_->size() || length > blob_->size() - offset) {
      return Corrupt("gzip index " + path_ + " ends before its window at " + std::to_string(offset));
    }
    OCIFS_RETURN_IF_ERROR(ReadExactly(*blob_, offset, bytes).WithContext("gzip index " + path_));
    return bytes;
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pread(fd_.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read gzip index " + path_, errno);
    if (n == 0) return Corrupt("gzip index " + path_ + " ends before its window at " + std::to_string(offset));
    done += static_cast<size_t>(n);
  }
  return bytes;
}

namespace {

// cp's compressed window: cp.zwindow, or read from its file into *holder.
Result<std::span<const uint8_t>> CompressedWindow(const GzipCheckpoint& cp, std::vector<uint8_t>* holder) {
  if (!cp.window_file) return std::span<const uint8_t>(cp.zwindow);
  OCIFS_ASSIGN_OR_RETURN(*holder, cp.window_file->Read(cp.zwindow_offset, cp.zwindow_length));
  if (cp.zwindow_crc && Crc(*holder) != *cp.zwindow_crc) {
    return Corrupt("gzip checkpoint window at decompressed offset " + std::to_string(cp.out) +
                   " does not match its CRC-32");
  }
  return std::span<const uint8_t>(*holder);
}

// cp's compressed window `z` inflated into `out` (cp.window_size bytes).
Status InflateWindow(const GzipCheckpoint& cp, std::span<const uint8_t> z, std::span<uint8_t> out) {
  if (cp.window_size == 0 && z.empty() && out.empty()) return Status::Ok();  // no window (a member's start)
  uLongf len = static_cast<uLongf>(out.size());
  if (out.size() != cp.window_size ||
      uncompress(out.data(), &len, z.data(), static_cast<uLong>(z.size())) != Z_OK ||
      len != cp.window_size) {
    return Corrupt("gzip checkpoint window at decompressed offset " + std::to_string(cp.out) +
                   " does not inflate to " + std::to_string(cp.window_size) + " bytes");
  }
  return Status::Ok();
}

}  // namespace

Status DecompressWindow(const GzipCheckpoint& cp, std::span<uint8_t> out, std::vector<uint8_t>* header) {
  if (header) header->clear();
  if (!cp.inside_block()) {
    if (cp.window_size == 0 && cp.zwindow.empty() && out.empty()) return Status::Ok();
    std::vector<uint8_t> holder;
    OCIFS_ASSIGN_OR_RETURN(std::span<const uint8_t> z, CompressedWindow(cp, &holder));
    return InflateWindow(cp, z, out);
  }
  if (!cp.window_file) {
    if (cp.block_header.size() != cp.HeaderBytes()) {
      return Corrupt("gzip checkpoint at decompressed offset " + std::to_string(cp.out) +
                     ": its block header is not " + std::to_string(cp.header_bits) + " bits");
    }
    if (header) *header = cp.block_header;
    return InflateWindow(cp, cp.zwindow, out);
  }
  // Its file holds the block header, then the compressed window.
  std::vector<uint8_t> holder;
  OCIFS_ASSIGN_OR_RETURN(std::span<const uint8_t> region, CompressedWindow(cp, &holder));
  if (region.size() < cp.HeaderBytes()) {
    return Corrupt("gzip checkpoint at decompressed offset " + std::to_string(cp.out) +
                   ": its window's place is shorter than its block header");
  }
  if (header) header->assign(region.begin(), region.begin() + static_cast<ptrdiff_t>(cp.HeaderBytes()));
  return InflateWindow(cp, region.subspan(cp.HeaderBytes()), out);
}

bool GzipIndex::ValidBlockSize(uint32_t size) {
  return size == 0 || (size >= kMinBlockSize && size <= kMaxBlockSize && (size & (size - 1)) == 0);
}

Status GzipIndex::Emit(std::span<const GzipCheckpoint> cps,
                       const std::function<Status(std::span<const uint8_t>)>& sink,
                       std::vector<WindowPlace>* windows) const {
  if (!ValidBlockSize(block_size) ||
      (has_checksums() &&
       block_crcs.size() != decompressed_size / block_size + (decompressed_size % block_size != 0 ? 1 : 0))) {
    return InvalidArgument("gzip index: " + std::to_string(block_crcs.size()) + " checksums of " +
                           std::to_string(block_size) + "-byte blocks do not fit " +
                           std::to_string(decompressed_size) + " decompressed bytes");
  }
  const uint32_t version = has_checksums() ? kVersion : zero_runs_known ? 2 : 1;
  uint32_t crc = 0;
  std::vector<uint8_t> b;
  uint64_t emitted = 0;  // bytes handed to sink so far
  auto flush = [&]() -> Status {
    crc = Crc32(crc, b);
    Status st = sink(b);
    emitted += b.size();
    b.clear();
    return st;
  };
  if (windows) windows->assign(cps.size(), {});
  b.assign(kMagic, kMagic + 8);
  AppendLe<uint32_t>(b, version);
  AppendLe<uint32_t>(b, version == kVersion && !zero_runs_known ? kFlagLearnZeroRuns : 0);
  AppendLe<uint64_t>(b, compressed_size);
  AppendLe<uint64_t>(b, decompressed_size);
  AppendLe<uint64_t>(b, spacing);
  AppendLe<uint64_t>(b, cps.size());
  size_t tail_len = std::min(tail.size(), kMaxTail);
  AppendLe<uint32_t>(b, static_cast<uint32_t>(tail_len));
  for (size_t i = 0; i < kMaxTail; ++i) b.push_back(i < tail_len ? tail[i] : 0);
  for (const GzipCheckpoint& cp : cps) {
    if (cp.inside_block()) {
      return InvalidArgument("gzip index: a checkpoint inside a deflate block (decompressed offset " +
                             std::to_string(cp.out) + ") needs the table-first layout, version 5");
    }
    AppendLe<uint64_t>(b, cp.out);
    AppendLe<uint64_t>(b, cp.in);
    b.push_back(cp.bits);
    b.push_back(cp.member_start ? 1 : 0);
    b.push_back(0);
    b.push_back(0);
    AppendLe<uint32_t>(b, cp.window_size);
    std::vector<uint8_t> holder;
    OCIFS_ASSIGN_OR_RETURN(std::span<const uint8_t> z, CompressedWindow(cp, &holder));
    AppendLe<uint32_t>(b, static_cast<uint32_t>(z.size()));
    if (windows) (*windows)[static_cast<size_t>(&cp - cps.data())] = {emitted + b.size(), static_cast<uint32_t>(z.size())};
    b.insert(b.end(), z.begin(), z.end());
    if (b.size() >= (256u << 10)) OCIFS_RETURN_IF_ERROR(flush());
  }
  if (version >= 2) {
    const std::span<const std::pair<uint64_t, uint64_t>> runs =
        zero_runs_known ? std::span(zero_runs) : std::span<const std::pair<uint64_t, uint64_t>>();
    AppendLe<uint64_t>(b, runs.size());
    for (const auto& [start, end] : runs) {
      AppendLe<uint64_t>(b, start);
      AppendLe<uint64_t>(b, end - start);
      if (b.size() >= (256u << 10)) OCIFS_RETURN_IF_ERROR(flush());
    }
  }
  if (version >= 3) {
    AppendLe<uint32_t>(b, block_size);
    AppendLe<uint64_t>(b, block_crcs.size());
    for (uint32_t block_crc : block_crcs) {
      AppendLe<uint32_t>(b, block_crc);
      if (b.size() >= (256u << 10)) OCIFS_RETURN_IF_ERROR(flush());
    }
  }
  OCIFS_RETURN_IF_ERROR(flush());
  AppendLe<uint32_t>(b, static_cast<uint32_t>(crc));
  return sink(b);
}

Result<std::vector<uint8_t>> GzipIndex::Serialize() const {
  std::vector<uint8_t> out;
  OCIFS_RETURN_IF_ERROR(Emit(checkpoints, [&](std::span<const uint8_t> part) {
    out.insert(out.end(), part.begin(), part.end());
    return Status::Ok();
  }));
  return out;
}

Status GzipIndex::ParseZeroRuns(std::span<const uint8_t> body, size_t& pos, GzipIndex& index) {
  if (body.size() - pos < 8) return Corrupt("zero-run count truncated");
  const uint64_t count = LoadLe<uint64_t>(body.data() + pos);
  pos += 8;
  if (count > (body.size() - pos) / 16) return Corrupt("bad zero-run count " + std::to_string(count));
  index.zero_runs.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i, pos += 16) {
    const uint64_t start = LoadLe<uint64_t>(body.data() + pos), length = LoadLe<uint64_t>(body.data() + pos + 8);
    const uint64_t prev_end = index.zero_runs.empty() ? 0 : index.zero_runs.back().second;
    if (length == 0 || start < prev_end || start > index.decompressed_size ||
        length > index.decompressed_size - start) {
      return Corrupt("zero run " + std::to_string(i) + " (" + std::to_string(start) + "+" + std::to_string(length) +
                     ") is empty, out of order or past the decompressed size");
    }
    index.zero_runs.emplace_back(start, start + length);
  }
  return Status::Ok();
}

Status GzipIndex::ParseChecksums(std::span<const uint8_t> body, size_t& pos, GzipIndex& index) {
  if (body.size() - pos < 12) return Corrupt("block checksums truncated");
  const uint32_t size = LoadLe<uint32_t>(body.data() + pos);
  const uint64_t count = LoadLe<uint64_t>(body.data() + pos + 4);
  pos += 12;
  if (size == 0 || !ValidBlockSize(size)) {
    return Corrupt("bad checksum block size " + std::to_string(size) + " (a power of two from 4 KiB to 16 MiB)");
  }
  const uint64_t expected = index.decompressed_size / size + (index.decompressed_size % size != 0 ? 1 : 0);
  if (count != expected) {
    return Corrupt(std::to_string(count) + " block checksums for " + std::to_string(index.decompressed_size) +
                   " decompressed bytes in blocks of " + std::to_string(size) + " (" + std::to_string(expected) +
                   " expected)");
  }
  if (count > (body.size() - pos) / 4) return Corrupt("block checksums truncated");
  index.block_size = size;
  index.block_crcs.resize(static_cast<size_t>(count));
  for (uint32_t& block_crc : index.block_crcs) {
    block_crc = LoadLe<uint32_t>(body.data() + pos);
    pos += 4;
  }
  return Status::Ok();
}

Result<GzipIndex> GzipIndex::Parse(std::span<const uint8_t> bytes, const std::string& what, bool keep_windows) {
  auto bad = [&](const std::string& why) { return Corrupt("gzip index " + what + ": " + why); };
  if (bytes.size() < kHeaderSize + 4) return bad("too short (" + std::to_string(bytes.size()) + " bytes)");
  if (bytes.size() > kMaxIndexFile) return bad("too large (" + std::to_string(bytes.size()) + " bytes)");
  if (std::memcmp(bytes.data(), kMagic, 8) != 0) return bad("bad magic");
  size_t body = bytes.size() - 4;
  if (Crc(bytes.first(body)) != LoadLe<uint32_t>(bytes.data() + body)) return bad("checksum mismatch");
  const uint8_t* p = bytes.data();
  const uint32_t version = LoadLe<uint32_t>(p + 8);
  if (version < 1 || version > kVersion) return bad("unsupported version " + std::to_string(version));
  const uint32_t flags = LoadLe<uint32_t>(p + 12);
  if (flags & ~(version >= 3 ? kFlagLearnZeroRuns : 0)) return bad("unknown flags " + std::to_string(flags));
  GzipIndex index;
  index.zero_runs_known = version >= 2 && !(flags & kFlagLearnZeroRuns);
  index.compressed_size = LoadLe<uint64_t>(p + 16);
  index.decompressed_size = LoadLe<uint64_t>(p + 24);
  index.spacing = LoadLe<uint64_t>(p + 32);
  uint64_t count = LoadLe<uint64_t>(p + 40);
  uint32_t tail_len = LoadLe<uint32_t>(p + 48);
  if (tail_len > kMaxTail || tail_len > index.compressed_size) return bad("bad tail length");
  index.tail.assign(p + 52, p + 52 + tail_len);
  if (std::any_of(p + 52 + tail_len, p + 52 + kMaxTail, [](uint8_t b) { return b != 0; })) {
    return bad("bytes after the tail are not zero");
  }
  if (count == 0 || count > (body - kHeaderSize) / kRecordSize) return bad("bad checkpoint count");
  index.checkpoints.reserve(static_cast<size_t>(count));
  size_t pos = kHeaderSize;
  std::vector<uint8_t> window(GzipCheckpoint::kWindowSize);
  for (uint64_t i = 0; i < count; ++i) {
    if (body - pos < kRecordSize) return bad("checkpoint " + std::to_string(i) + " truncated");
    const uint8_t* r = p + pos;
    GzipCheckpoint cp;
    cp.out = LoadLe<uint64_t>(r);
    cp.in = LoadLe<uint64_t>(r + 8);
    cp.bits = r[16];
    if (r[17] > 1 || r[18] != 0 || r[19] != 0) return bad("checkpoint " + std::to_string(i) + ": bad kind");
    cp.member_start = r[17] == 1;
    cp.window_size = LoadLe<uint32_t>(r + 20);
    uint32_t zlen = LoadLe<uint32_t>(r + 24);
    pos += kRecordSize;
    std::string at = "checkpoint " + std::to_string(i) + " (decompressed offset " + std::to_string(cp.out) + ")";
    if (zlen > body - pos) return bad(at + ": window extends past the end");
    if (i == 0 ? (cp.out != 0 || !cp.member_start || cp.in != 0)
               : cp.out <= index.checkpoints.back().out || cp.in < index.checkpoints.back().in) {
      return bad(at + ": out of order");
    }
    if (cp.out > index.decompressed_size || cp.in > index.compressed_size || cp.bits > 7 ||
        (cp.bits > 0 && cp.in == 0) || cp.window_size > GzipCheckpoint::kWindowSize ||
        (cp.member_start && (cp.bits != 0 || cp.window_size != 0)) ||
        (cp.window_size == 0) != (zlen == 0)) {
      return bad(at + ": field out of range");
    }
    if (i > 0 && MoreThanDeflateMakes(cp.out - index.checkpoints.back().out, cp.in - index.checkpoints.back().in)) {
      return bad(at + ": more output than deflate makes of its compressed bytes");
    }
    if (keep_windows) cp.zwindow.assign(p + pos, p + pos + zlen);
    cp.zwindow_offset = pos;
    cp.zwindow_length = zlen;
    pos += zlen;
    OCIFS_RETURN_IF_ERROR(InflateWindow(cp, bytes.subspan(cp.zwindow_offset, zlen), std::span(window).first(cp.window_size))
                              .WithContext("gzip index " + what));
    index.checkpoints.push_back(std::move(cp));
  }
  if (MoreThanDeflateMakes(index.decompressed_size - index.checkpoints.back().out,
                           index.compressed_size - index.checkpoints.back().in)) {
    return bad("decompressed size " + std::to_string(index.decompressed_size) +
               ": more output than deflate makes of its compressed bytes");
  }
  if (version >= 2) OCIFS_RETURN_IF_ERROR(ParseZeroRuns(bytes.first(body), pos, index).WithContext("gzip index " + what));
  if (!index.zero_runs_known && !index.zero_runs.empty()) return bad("zero runs given, but its flags say they are not");
  if (version >= 3) OCIFS_RETURN_IF_ERROR(ParseChecksums(bytes.first(body), pos, index).WithContext("gzip index " + what));
  if (pos != body) return bad("trailing bytes after the last section");
  return index;
}

Status GzipIndex::Save(const std::string& path) const { return SaveWith(path, checkpoints); }

Status GzipIndex::SaveWith(const std::string& path, std::span<const GzipCheckpoint> cps) const {
  return Write(path, cps, nullptr, nullptr);
}

Result<GzipIndex::SavedWindows> GzipIndex::SaveWithPlaces(const std::string& path,
                                                           std::span<const GzipCheckpoint> cps) const {
  SavedWindows saved;
  UniqueFd written;
  OCIFS_RETURN_IF_ERROR(Write(path, cps, &saved.places, &written));
  saved.file = std::make_shared<const GzipWindowFile>(std::move(written), path);
  return saved;
}

void GzipIndex::SavedWindows::ApplyTo(std::span<GzipCheckpoint> cps) const {
  for (size_t i = 0; i < cps.size() && i < places.size(); ++i) {
    GzipCheckpoint& cp = cps[i];
    if (places[i].length == 0) continue;
    cp.window_file = file;
    cp.zwindow_offset = places[i].offset;
    cp.zwindow_length = places[i].length;
    std::vector<uint8_t>().swap(cp.zwindow);
  }
}

Status GzipIndex::Write(const std::string& path, std::span<const GzipCheckpoint> cps,
                        std::vector<WindowPlace>* windows, UniqueFd* keep) const {
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  {
    UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoError("create " + tmp, errno);
    Status written = Emit(cps, [&](std::span<const uint8_t> part) -> Status {
      size_t done = 0;
      while (done < part.size()) {
        ssize_t n = ::write(fd.get(), part.data() + done, part.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return ErrnoError("write " + tmp, n < 0 ? errno : EIO);
        done += static_cast<size_t>(n);
      }
      return Status::Ok();
    }, windows);
    if (!written.ok()) {
      ::unlink(tmp.c_str());
      return written;
    }
    if (::fsync(fd.get()) != 0) {
      Status s = ErrnoError("fsync " + tmp, errno);
      ::unlink(tmp.c_str());
      return s;
    }
    if (keep) *keep = std::move(fd);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = ErrnoError("rename " + tmp + " to " + path, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.valid()) (void)::fsync(dfd.get());
  return Status::Ok();
}

Result<GzipIndex> GzipIndex::Load(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return NotFound("gzip index " + path + " does not exist");
    return ErrnoError("open " + path, errno);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path, errno);
  if (static_cast<uint64_t>(st.st_size) > kMaxIndexFile) return Corrupt("gzip index " + path + " is too large");
  // Not on the heap (MappedFileBytes says why), and the windows are checked,
  // not copied: from now on they are read from the file when needed.
  OCIFS_ASSIGN_OR_RETURN(MappedFileBytes bytes, MappedFileBytes::Read(fd.get(), path));
  OCIFS_ASSIGN_OR_RETURN(GzipIndex index, Parse(bytes.bytes(), path, /*keep_windows=*/false));
  auto file = std::make_shared<const GzipWindowFile>(std::move(fd), path);
  for (GzipCheckpoint& cp : index.checkpoints) {
    if (cp.zwindow_length > 0) cp.window_file = file;
  }
  return index;
}

}  // namespace ocifs
