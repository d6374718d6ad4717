#include "decode/zstd_checkpoint_index.h"
#include "base/crc32.h"


#include <algorithm>

#include "base/little_endian.h"

namespace ocifs {
namespace {

constexpr char kMagic[8] = {'O', 'C', 'I', 'F', 'S', 'Z', 'C', 'I'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 56;
constexpr size_t kRecordSize = 28;

uint32_t Crc(std::span<const uint8_t> b) {
  return Crc32(std::span<const uint8_t>(b.data(), b.size()));
}

// Reads fields in order; every read is bounded by the bytes left.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  bool Get(uint64_t* v, int bytes) {
    if (left() < static_cast<size_t>(bytes)) return false;
    *v = LoadLeN(b_.data() + pos_, static_cast<size_t>(bytes));
    pos_ += bytes;
    return true;
  }
  bool Bytes(std::vector<uint8_t>* out, size_t n) {
    if (left() < n) return false;
    out->assign(b_.begin() + static_cast<ptrdiff_t>(pos_), b_.begin() + static_cast<ptrdiff_t>(pos_ + n));
    pos_ += n;
    return true;
  }
  bool Skip(size_t n) {
    if (left() < n) return false;
    pos_ += n;
    return true;
  }
  size_t left() const { return b_.size() - pos_; }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

}  // namespace

std::string ZstdCheckpointIndex::Serialize() const {
  std::string s(kMagic, sizeof(kMagic));
  AppendLeN(s, kVersion, 4);
  AppendLeN(s, 0, 4);  // flags
  AppendLeN(s, blob_size, 8);
  AppendLeN(s, decoded_size, 8);
  AppendLeN(s, window_log, 4);
  AppendLeN(s, crc_block_size, 4);
  AppendLeN(s, spacing, 8);
  AppendLeN(s, checkpoints.size(), 8);
  for (const ZstdCheckpoint& c : checkpoints) {
    AppendLeN(s, c.in, 8);
    AppendLeN(s, c.out, 8);
    AppendLeN(s, static_cast<uint8_t>(c.kind), 1);
    AppendLeN(s, 0, 3);
    AppendLeN(s, c.dict_size, 4);
    AppendLeN(s, c.zdict.size(), 4);
    s.append(c.zdict.begin(), c.zdict.end());
  }
  for (uint32_t crc : crcs) AppendLeN(s, crc, 4);
  AppendLeN(s, Crc({reinterpret_cast<const uint8_t*>(s.data()), s.size()}), 4);
  return s;
}

Result<ZstdCheckpointIndex> ZstdCheckpointIndex::Parse(std::span<const uint8_t> bytes, Dicts dicts) {
  auto bad = [](const std::string& what) { return Corrupt("zstd checkpoint index: " + what); };
  if (bytes.size() < kHeaderSize + 4) return bad("truncated header");
  if (!std::equal(kMagic, kMagic + 8, bytes.begin())) return bad("bad magic");
  Reader r(bytes.first(bytes.size() - 4));
  uint64_t magic = 0, version = 0, flags = 0, window_log = 0, block_size = 0, count = 0, file_crc = 0;
  ZstdCheckpointIndex x;
  (void)r.Get(&magic, 8);
  (void)r.Get(&version, 4);
  if (version != kVersion) return bad("unsupported version " + std::to_string(version));
  Reader tail(bytes.last(4));
  (void)tail.Get(&file_crc, 4);
  if (Crc(bytes.first(bytes.size() - 4)) != file_crc) return bad("file checksum mismatch (truncated or damaged)");
  (void)r.Get(&flags, 4);
  if (flags != 0) return bad("unknown flags " + std::to_string(flags));
  (void)r.Get(&x.blob_size, 8);
  (void)r.Get(&x.decoded_size, 8);
  (void)r.Get(&window_log, 4);
  (void)r.Get(&block_size, 4);
  (void)r.Get(&x.spacing, 8);
  (void)r.Get(&count, 8);
  OCIFS_RETURN_IF_ERROR(CheckHeader(window_log, block_size));
  x.window_log = static_cast<uint32_t>(window_log);
  x.crc_block_size = static_cast<uint32_t>(block_size);
  if (count > r.left() / kRecordSize) return bad("checkpoint count " + std::to_string(count) + " exceeds the file");
  x.checkpoints.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    ZstdCheckpoint& c = x.checkpoints[i];
    const std::string at = "checkpoint " + std::to_string(i) + ": ";
    uint64_t kind = 0, reserved = 0, dict_size = 0, zsize = 0;
    if (!r.Get(&c.in, 8) || !r.Get(&c.out, 8) || !r.Get(&kind, 1) || !r.Get(&reserved, 3) ||
        !r.Get(&dict_size, 4) || !r.Get(&zsize, 4)) {
      return bad(at + "truncated");
    }
    if (kind > 2) return bad(at + "unknown kind " + std::to_string(kind));
    if (reserved != 0) return bad(at + "reserved bytes set");
    if (dict_size > kMaxDictSize) return bad(at + "dictionary size " + std::to_string(dict_size) + " too large");
    c.kind = static_cast<ZstdCheckpoint::Kind>(kind);
    c.dict_size = static_cast<uint32_t>(dict_size);
    OCIFS_RETURN_IF_ERROR(x.CheckCheckpoint(i, zsize));
    if (!(dicts == Dicts::kCopy ? r.Bytes(&c.zdict, zsize) : r.Skip(zsize))) return bad(at + "dictionary truncated");
  }
  if (r.left() % 4 != 0) return bad("checksum count does not match the output size");
  x.crcs.resize(r.left() / 4);
  for (uint32_t& crc : x.crcs) {
    uint64_t v = 0;
    (void)r.Get(&v, 4);
    crc = static_cast<uint32_t>(v);
  }
  OCIFS_RETURN_IF_ERROR(x.CheckEnd());
  return x;
}

Status ZstdCheckpointIndex::CheckHeader(uint64_t window_log, uint64_t block_size) {
  if (window_log < 10 || window_log > 31) {
    return Corrupt("zstd checkpoint index: window log " + std::to_string(window_log) + " out of range");
  }
  if (block_size < 4096 || block_size > (16u << 20) || (block_size & (block_size - 1)) != 0) {
    return Corrupt("zstd checkpoint index: checksum block size " + std::to_string(block_size) + " invalid");
  }
  return Status::Ok();
}

Status ZstdCheckpointIndex::CheckCheckpoint(size_t i, uint64_t zsize) const {
  const ZstdCheckpoint& c = checkpoints[i];
  auto bad = [&](const std::string& what) {
    return Corrupt("zstd checkpoint index: checkpoint " + std::to_string(i) + ": " + what);
  };
  if (decoded_size == 0) return Corrupt("zstd checkpoint index: checkpoints without output");
  if (c.in >= blob_size || c.out >= decoded_size) return bad("offset past the end of the blob or output");
  if (i == 0 ? c.out != 0 : (c.out <= checkpoints[i - 1].out || c.in <= checkpoints[i - 1].in)) {
    return bad("offsets out of order");
  }
  if (c.out - (i == 0 ? 0 : checkpoints[i - 1].out) > kMaxSegment) return bad("segment before it too long");
  // The first checkpoint (at output 0) must be a frame start: every later one has one before it.
  if (i == 0 && c.kind != ZstdCheckpoint::Kind::kFrameStart) return bad("no frame start before it");
  const bool has_dict = c.kind == ZstdCheckpoint::Kind::kDictionary;
  if (has_dict != (c.dict_size > 0) || has_dict != (zsize > 0)) return bad("dictionary present on the wrong kind");
  if (c.dict_size > kMaxDictSize) return bad("dictionary size " + std::to_string(c.dict_size) + " too large");
  return Status::Ok();
}

Status ZstdCheckpointIndex::CheckEnd() const {
  if (checkpoints.empty() != (decoded_size == 0)) {
    return Corrupt("zstd checkpoint index: checkpoint count 0 with output, or checkpoints without");
  }
  if (!checkpoints.empty() && decoded_size - checkpoints.back().out > kMaxSegment) {
    return Corrupt("zstd checkpoint index: last segment too long");
  }
  if (crcs.size() != (decoded_size + crc_block_size - 1) / crc_block_size) {
    return Corrupt("zstd checkpoint index: checksum count does not match the output size");
  }
  return Status::Ok();
}

size_t ZstdCheckpointIndex::SegmentAt(uint64_t out) const {
  auto it = std::upper_bound(checkpoints.begin(), checkpoints.end(), out,
                             [](uint64_t o, const ZstdCheckpoint& c) { return o < c.out; });
  return static_cast<size_t>(it - checkpoints.begin()) - 1;
}

uint64_t ZstdCheckpointIndex::SegmentEnd(size_t i) const {
  return i + 1 < checkpoints.size() ? checkpoints[i + 1].out : decoded_size;
}

std::pair<uint64_t, uint64_t> ZstdCheckpointIndex::SegmentInput(size_t i) const {
  return {checkpoints[RestartOf(i)].in, i + 1 < checkpoints.size() ? checkpoints[i + 1].in : blob_size};
}

size_t ZstdCheckpointIndex::RestartOf(size_t i) const {
  if (checkpoints[i].kind != ZstdCheckpoint::Kind::kFromFrameStart) return i;
  while (checkpoints[i].kind != ZstdCheckpoint::Kind::kFrameStart) --i;  // Parse ensures one exists
  return i;
}

}  // namespace ocifs
