#include "image/tar_index_file.h"

#include <array>
#include <cerrno>
#include <cstring>

#include "base/little_endian.h"
#include "base/whole_file.h"
#include "image/tar_header.h"

namespace ocifs {
namespace {

constexpr uint8_t kSparseBit = 0x80;
constexpr size_t kHeaderSize = 8 + 4 + 4 + 8;  // magic, version, flags, body length
constexpr uint32_t kFlagComplete = 1;

uint64_t GetFixed(std::string_view in, size_t pos, size_t bytes) {
  return LoadLeN(reinterpret_cast<const uint8_t*>(in.data() + pos), bytes);
}
void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void PutString(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out += s;
}

// Bounds-checked reading of the body; the first error sticks.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return in_.size() - pos_; }
  uint64_t Varint(uint64_t max = UINT64_MAX) {
    uint64_t v = 0;
    for (int shift = 0; ok_ && shift < 64; shift += 7) {
      if (pos_ >= in_.size()) break;
      uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && b > 1) break;
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) {
        if (v > max) break;
        return v;
      }
    }
    ok_ = false;
    return 0;
  }
  std::string_view Bytes(uint64_t n) {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      return {};
    }
    std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint8_t Byte() { return ok_ && remaining() ? static_cast<uint8_t>(in_[pos_++]) : (ok_ = false, 0); }
  void Fail() { ok_ = false; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

uint32_t Crc32c(std::string_view data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (char ch : data) crc = table[(crc ^ static_cast<uint8_t>(ch)) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

std::string TarIndexFile::Encode(const TarIndex& index, std::optional<std::string_view> source_name) {
  std::string body;
  PutString(body, source_name.value_or(index.source_name_));
  PutVarint(body, index.entries_.size());
  std::string_view prev;
  for (const TarEntry& e : index.entries_) {
    size_t shared = 0;
    while (shared < prev.size() && shared < e.path.size() && prev[shared] == e.path[shared]) ++shared;
    PutVarint(body, shared);
    PutString(body, std::string_view(e.path).substr(shared));
    prev = e.path;
    body.push_back(static_cast<char>(static_cast<uint8_t>(e.type) | (e.sparse ? kSparseBit : 0)));
    PutVarint(body, e.mode);
    PutVarint(body, e.uid);
    PutVarint(body, e.gid);
    PutVarint(body, (static_cast<uint64_t>(e.mtime) << 1) ^ static_cast<uint64_t>(e.mtime >> 63));  // zigzag
    PutVarint(body, e.size);
    PutVarint(body, e.data_offset);
    PutVarint(body, e.header_offset <= e.data_offset ? e.data_offset - e.header_offset : 0);
    PutString(body, e.link_target);
    PutVarint(body, e.dev_major);
    PutVarint(body, e.dev_minor);
    if (e.sparse) {
      PutVarint(body, e.sparse_map.size());
      uint64_t end = 0;
      for (const SparseRun& r : e.sparse_map) {
        PutVarint(body, r.offset - end);
        PutVarint(body, r.length);
        end = r.offset + r.length;
      }
    }
  }
  std::string out(kMagic, sizeof(kMagic));
  AppendLeN(out, kVersion, 4);
  AppendLeN(out, index.complete_ ? kFlagComplete : 0, 4);
  AppendLeN(out, body.size(), 8);
  out += body;
  AppendLeN(out, Crc32c(out), 4);
  return out;
}

Result<TarIndex> TarIndexFile::Decode(std::string_view bytes, std::string_view name) {
  auto corrupt = [&](std::string_view why) { return Corrupt("tar index file " + std::string(name) + ": " + std::string(why)); };
  if (bytes.size() < kHeaderSize + 4 || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return corrupt("not a tar index (bad magic)");
  }
  uint64_t version = GetFixed(bytes, 8, 4);
  if (version != 1 && version != kVersion) return corrupt("unsupported version " + std::to_string(version));
  uint64_t flags = GetFixed(bytes, 12, 4);
  uint64_t body_size = GetFixed(bytes, 16, 8);
  if (body_size != bytes.size() - kHeaderSize - 4) return corrupt("length does not match the file size");
  if (Crc32c(bytes.substr(0, bytes.size() - 4)) != GetFixed(bytes, bytes.size() - 4, 4)) {
    return corrupt("checksum mismatch");
  }
  if (flags & ~uint64_t{kFlagComplete}) return corrupt("unknown flags");

  Decoder d(bytes.substr(kHeaderSize, body_size));
  TarIndex index;
  index.complete_ = flags & kFlagComplete;
  index.has_header_offsets_ = version >= 2;
  index.source_name_ = std::string(d.Bytes(d.Varint()));
  const size_t min_entry = version >= 2 ? 13 : 12;
  uint64_t count = d.Varint(d.remaining() / min_entry);  // an entry takes at least this many bytes
  index.entries_.reserve(count);
  std::string prev;
  for (uint64_t i = 0; i < count && d.ok(); ++i) {
    TarEntry e;
    uint64_t shared = d.Varint(prev.size());
    e.path = prev.substr(0, shared);
    e.path += d.Bytes(d.Varint());
    uint8_t type = d.Byte();
    e.sparse = type & kSparseBit;
    type &= ~kSparseBit;
    if (type > static_cast<uint8_t>(EntryType::kFifo)) d.Fail();
    e.type = static_cast<EntryType>(type);
    e.mode = static_cast<uint32_t>(d.Varint(07777));
    e.uid = static_cast<uint32_t>(d.Varint(UINT32_MAX));
    e.gid = static_cast<uint32_t>(d.Varint(UINT32_MAX));
    uint64_t zz = d.Varint();
    e.mtime = static_cast<int64_t>((zz >> 1) ^ (~(zz & 1) + 1));
    e.size = d.Varint(kMaxTarSize);
    e.data_offset = d.Varint(kMaxTarSize);
    if (version >= 2) e.header_offset = e.data_offset - d.Varint(e.data_offset);
    e.link_target = std::string(d.Bytes(d.Varint()));
    e.dev_major = static_cast<uint32_t>(d.Varint(UINT32_MAX));
    e.dev_minor = static_cast<uint32_t>(d.Varint(UINT32_MAX));
    if (e.sparse) {
      uint64_t runs = d.Varint(d.remaining() / 2);
      uint64_t end = 0;
      for (uint64_t r = 0; r < runs && d.ok(); ++r) {
        uint64_t gap = d.Varint(kMaxTarSize);
        uint64_t len = d.Varint(kMaxTarSize);
        if (gap > e.size - end || len > e.size - end - gap) {
          d.Fail();
          break;
        }
        e.sparse_map.push_back({end + gap, len});
        end += gap + len;
      }
    }
    if (e.path != NormalizePath(e.path)) d.Fail();
    prev = e.path;
    if (d.ok()) index.entries_.push_back(std::move(e));
  }
  if (!d.ok() || d.remaining() != 0) return corrupt("malformed body");
  return index;
}

Status TarIndexFile::Write(const std::string& path, const TarIndex& index) {
  return WriteFileAtomically(path, Encode(index));
}

Result<TarIndex> TarIndexFile::Read(const std::string& path) {
  OCIFS_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path, kMaxFileSize, "tar index file"));
  return Decode(bytes, path);
}

Status TarIndex::Save(const std::string& path) const { return TarIndexFile::Write(path, *this); }

Result<TarIndex> TarIndex::Load(const std::string& path) { return TarIndexFile::Read(path); }

}  // namespace ocifs
