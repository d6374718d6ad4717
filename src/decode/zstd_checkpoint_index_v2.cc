#include "decode/zstd_checkpoint_index_v2.h"
#include "base/crc32.h"


#include <cstring>
#include <vector>

#include "base/little_endian.h"

namespace ocifs {
namespace {

constexpr char kV2Magic[8] = {'O', 'C', 'I', 'F', 'S', 'Z', 'C', 'I'};

uint32_t V2Crc(std::span<const uint8_t> b) {
  return Crc32(std::span<const uint8_t>(b.data(), b.size()));
}
Status Bad(const std::string& what) { return Corrupt("zstd checkpoint index: " + what); }

}  // namespace

Result<std::string> ZstdCheckpointIndexV2::Serialize(const ZstdCheckpointIndex& index) {
  const uint64_t table = kHeaderSize + kRecordSize * index.checkpoints.size() + 4 * index.crcs.size() + 4;
  std::string s(kV2Magic, sizeof(kV2Magic));
  AppendLeN(s, kVersion, 4);
  AppendLeN(s, 0, 4);  // flags
  AppendLeN(s, index.blob_size, 8);
  AppendLeN(s, index.decoded_size, 8);
  AppendLeN(s, index.window_log, 4);
  AppendLeN(s, index.crc_block_size, 4);
  AppendLeN(s, index.spacing, 8);
  AppendLeN(s, index.checkpoints.size(), 8);
  AppendLeN(s, table, 8);
  uint64_t next = table;  // the dictionaries, in checkpoint order, after the table
  for (const ZstdCheckpoint& c : index.checkpoints) {
    const bool has_dict = c.kind == ZstdCheckpoint::Kind::kDictionary;
    if (has_dict == c.zdict.empty()) return InvalidArgument("zstd checkpoint index: a dictionary not in memory");
    AppendLeN(s, c.in, 8);
    AppendLeN(s, c.out, 8);
    AppendLeN(s, static_cast<uint8_t>(c.kind), 1);
    AppendLeN(s, 0, 3);
    AppendLeN(s, c.dict_size, 4);
    AppendLeN(s, has_dict ? next : 0, 8);
    AppendLeN(s, c.zdict.size(), 4);
    AppendLeN(s, has_dict ? V2Crc(c.zdict) : 0, 4);
    next += c.zdict.size();
  }
  for (uint32_t crc : index.crcs) AppendLeN(s, crc, 4);
  AppendLeN(s, V2Crc({reinterpret_cast<const uint8_t*>(s.data()), s.size()}), 4);
  if (s.size() != table) return Internal("version 2 zstd checkpoint index: table length mismatch");
  for (const ZstdCheckpoint& c : index.checkpoints) s.append(c.zdict.begin(), c.zdict.end());
  return s;
}

Result<uint64_t> ZstdCheckpointIndexV2::TableLength(std::span<const uint8_t> header, uint64_t file_size) {
  if (header.size() < kHeaderSize) return Bad("truncated header (" + std::to_string(header.size()) + " bytes)");
  if (std::memcmp(header.data(), kV2Magic, 8) != 0) return Bad("bad magic");
  const uint64_t version = LoadLeN(header.data() + 8, 4);
  if (version != kVersion) return Bad("version " + std::to_string(version) + ", not 2");
  const uint64_t table = LoadLeN(header.data() + 56, 8);
  if (table < kHeaderSize + 4 || table > file_size || file_size > kMaxFileBytes) {
    return Bad("table length " + std::to_string(table) + " out of bounds (file of " + std::to_string(file_size) +
               " bytes)");
  }
  return table;
}

Result<ZstdCheckpointIndex> ZstdCheckpointIndexV2::ParseTable(std::span<const uint8_t> bytes, uint64_t file_size,
                                                              ByteSourcePtr dicts) {
  OCIFS_ASSIGN_OR_RETURN(const uint64_t table, TableLength(bytes, file_size));
  if (bytes.size() != table) return Bad("table of " + std::to_string(bytes.size()) + " bytes, not " + std::to_string(table));
  const size_t body = bytes.size() - 4;
  if (V2Crc(bytes.first(body)) != LoadLeN(bytes.data() + body, 4)) return Bad("table checksum mismatch (truncated or damaged)");
  const uint8_t* p = bytes.data();
  if (const uint64_t flags = LoadLeN(p + 12, 4); flags != 0) return Bad("unknown flags " + std::to_string(flags));
  ZstdCheckpointIndex x;
  x.blob_size = LoadLeN(p + 16, 8);
  x.decoded_size = LoadLeN(p + 24, 8);
  const uint64_t window_log = LoadLeN(p + 32, 4), block_size = LoadLeN(p + 36, 4);
  x.spacing = LoadLeN(p + 40, 8);
  const uint64_t count = LoadLeN(p + 48, 8);
  OCIFS_RETURN_IF_ERROR(ZstdCheckpointIndex::CheckHeader(window_log, block_size));
  x.window_log = static_cast<uint32_t>(window_log);
  x.crc_block_size = static_cast<uint32_t>(block_size);
  if (count > (body - kHeaderSize) / kRecordSize) return Bad("checkpoint count " + std::to_string(count) + " exceeds the table");
  x.checkpoints.resize(static_cast<size_t>(count));
  size_t pos = kHeaderSize;
  for (size_t i = 0; i < count; ++i, pos += kRecordSize) {
    const uint8_t* r = p + pos;
    ZstdCheckpoint& c = x.checkpoints[i];
    const std::string at = "checkpoint " + std::to_string(i) + ": ";
    c.in = LoadLeN(r, 8);
    c.out = LoadLeN(r + 8, 8);
    if (r[16] > 2) return Bad(at + "unknown kind " + std::to_string(r[16]));
    if (LoadLeN(r + 17, 3) != 0) return Bad(at + "reserved bytes set");
    c.kind = static_cast<ZstdCheckpoint::Kind>(r[16]);
    const uint64_t dict_size = LoadLeN(r + 20, 4);
    if (dict_size > ZstdCheckpointIndex::kMaxDictSize) return Bad(at + "dictionary size " + std::to_string(dict_size) + " too large");
    c.dict_size = static_cast<uint32_t>(dict_size);
    c.zdict_offset = LoadLeN(r + 24, 8);
    c.zdict_length = static_cast<uint32_t>(LoadLeN(r + 32, 4));
    c.zdict_crc = static_cast<uint32_t>(LoadLeN(r + 36, 4));
    OCIFS_RETURN_IF_ERROR(x.CheckCheckpoint(i, c.zdict_length));
    if (c.zdict_length == 0 ? (c.zdict_offset != 0 || c.zdict_crc != 0)
                            : (c.zdict_offset < table || c.zdict_offset > file_size ||
                               c.zdict_length > file_size - c.zdict_offset)) {
      return Bad(at + "its dictionary (" + std::to_string(c.zdict_length) + " bytes at " +
                 std::to_string(c.zdict_offset) + ") is not between the table and the end of the file");
    }
  }
  if ((body - pos) % 4 != 0) return Bad("checksum count does not match the output size");
  x.crcs.resize((body - pos) / 4);
  for (uint32_t& crc : x.crcs) {
    crc = static_cast<uint32_t>(LoadLeN(p + pos, 4));
    pos += 4;
  }
  OCIFS_RETURN_IF_ERROR(x.CheckEnd());
  x.dict_blob = std::move(dicts);
  return x;
}

Result<ZstdCheckpointIndex> ZstdCheckpointIndexV2::Parse(std::span<const uint8_t> bytes) {
  OCIFS_ASSIGN_OR_RETURN(const uint64_t table, TableLength(bytes, bytes.size()));
  OCIFS_ASSIGN_OR_RETURN(ZstdCheckpointIndex x, ParseTable(bytes.first(static_cast<size_t>(table)), bytes.size(), nullptr));
  for (size_t i = 0; i < x.checkpoints.size(); ++i) {
    ZstdCheckpoint& c = x.checkpoints[i];
    if (c.zdict_length == 0) continue;
    const auto z = bytes.subspan(static_cast<size_t>(c.zdict_offset), c.zdict_length);
    if (V2Crc(z) != c.zdict_crc) return Bad("checkpoint " + std::to_string(i) + ": its dictionary does not match its CRC-32");
    c.zdict.assign(z.begin(), z.end());
  }
  return x;
}

Result<ZstdCheckpointIndex> ZstdCheckpointIndexV2::Open(const ByteSourcePtr& blob) {
  const uint64_t size = blob->size();
  if (size == ByteSource::kUnknownSize || size < kHeaderSize) {
    return Bad("truncated header (a blob of " + std::to_string(size) + " bytes)");
  }
  std::vector<uint8_t> header(kHeaderSize);
  OCIFS_RETURN_IF_ERROR(ReadExactly(*blob, 0, header).WithContext("zstd checkpoint index " + blob->Describe()));
  OCIFS_ASSIGN_OR_RETURN(const uint64_t table, TableLength(header, size));
  std::vector<uint8_t> bytes(static_cast<size_t>(table));
  OCIFS_RETURN_IF_ERROR(ReadExactly(*blob, 0, bytes).WithContext("zstd checkpoint index " + blob->Describe()));
  return ParseTable(bytes, size, blob);
}

}  // namespace ocifs
