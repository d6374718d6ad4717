#include "image/tar_sparse.h"

#include <array>
#include <cstring>

namespace ocifs {
namespace {

constexpr size_t kOldGnuMap = 386, kOldGnuMapEntries = 4, kOldGnuIsExtended = 482, kOldGnuRealSize = 483;
constexpr size_t kExtMapEntries = 21, kExtIsExtended = 504;
constexpr size_t kMaxMapText = size_t{1} << 20;

// Drops empty runs, then checks the map against the logical and stored sizes.
Status Validate(SparseInfo& info, uint64_t stored_size, std::string_view what) {
  std::vector<SparseRun> runs;
  uint64_t end = 0, total = 0;
  for (const SparseRun& r : info.map) {
    if (r.length == 0) continue;
    if (r.offset < end || r.offset > info.real_size || r.length > info.real_size - r.offset) {
      return Corrupt(std::string(what) + ": sparse map run (" + std::to_string(r.offset) + ", " +
                     std::to_string(r.length) + ") is out of order or past the file size " +
                     std::to_string(info.real_size));
    }
    end = r.offset + r.length;
    total += r.length;
    runs.push_back(r);
  }
  if (total != stored_size) {
    return Corrupt(std::string(what) + ": sparse map holds " + std::to_string(total) + " bytes but the entry stores " +
                   std::to_string(stored_size));
  }
  info.map = std::move(runs);
  return Status::Ok();
}

// Appends the (offset, numbytes) pairs of `count` 24-byte slots at `slots`;
// stops at the first empty slot. Returns false if it stopped early.
Result<bool> AppendSlots(const uint8_t* slots, size_t count, std::vector<SparseRun>& map) {
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* slot = slots + 24 * i;
    if (slot[0] == 0) return false;
    OCIFS_ASSIGN_OR_RETURN(int64_t off, ParseTarNumber(std::span<const uint8_t>(slot, 12), "sparse offset"));
    OCIFS_ASSIGN_OR_RETURN(int64_t len, ParseTarNumber(std::span<const uint8_t>(slot + 12, 12), "sparse length"));
    if (off < 0 || len < 0 || static_cast<uint64_t>(off) > kMaxTarSize || static_cast<uint64_t>(len) > kMaxTarSize) {
      return Corrupt("sparse run out of range");
    }
    if (map.size() >= kMaxSparseRuns) return Corrupt("sparse map has too many runs");
    map.push_back({static_cast<uint64_t>(off), static_cast<uint64_t>(len)});
  }
  return true;
}

// Splits "a,b,c" into unsigned numbers.
Result<std::vector<uint64_t>> ParseNumberList(std::string_view text, char sep, std::string_view what) {
  std::vector<uint64_t> out;
  if (text.empty()) return out;
  size_t pos = 0;
  while (true) {
    size_t next = text.find(sep, pos);
    std::string_view item = text.substr(pos, next == std::string_view::npos ? next : next - pos);
    OCIFS_ASSIGN_OR_RETURN(uint64_t v, ParsePaxUnsigned(item, kMaxTarSize, what));
    if (out.size() >= 2 * kMaxSparseRuns) return Corrupt("sparse map has too many runs");
    out.push_back(v);
    if (next == std::string_view::npos) return out;
    pos = next + 1;
  }
}

Result<std::vector<SparseRun>> PairUp(const std::vector<uint64_t>& numbers) {
  if (numbers.size() % 2 != 0) return Corrupt("sparse map has an odd count of numbers");
  std::vector<SparseRun> map;
  for (size_t i = 0; i < numbers.size(); i += 2) map.push_back({numbers[i], numbers[i + 1]});
  return map;
}

}  // namespace

Result<SparseInfo> ReadOldGnuSparse(TarReader& reader, TarBlock header, uint64_t header_offset, uint64_t size) {
  std::string where = reader.Where(header_offset);
  SparseInfo info;
  auto more = AppendSlots(header.data() + kOldGnuMap, kOldGnuMapEntries, info.map);
  if (!more.ok()) return more.status().WithContext(where);
  auto real = ParseTarNumber(header.subspan(kOldGnuRealSize, 12), "sparse real size");
  if (!real.ok()) return real.status().WithContext(where);
  if (*real < 0 || static_cast<uint64_t>(*real) > kMaxTarSize) return Corrupt(where + ": sparse real size out of range");
  info.real_size = static_cast<uint64_t>(*real);
  bool extended = header[kOldGnuIsExtended] != 0;
  uint64_t offset = header_offset + kTarBlockSize;
  while (extended) {
    OCIFS_ASSIGN_OR_RETURN(bool got, reader.ReadBlock(offset));
    if (!got) return Corrupt(reader.Where(offset) + ": truncated sparse header extension");
    TarBlock ext = reader.block();
    auto slots = AppendSlots(ext.data(), kExtMapEntries, info.map);
    if (!slots.ok()) return slots.status().WithContext(reader.Where(offset));
    extended = ext[kExtIsExtended] != 0;
    offset += kTarBlockSize;
  }
  info.data_offset = offset;
  OCIFS_RETURN_IF_ERROR(Validate(info, size, where));
  return info;
}

bool IsPaxSparse(const std::map<std::string, std::string>& pax) {
  return pax.count("GNU.sparse.major") || pax.count("GNU.sparse.map") || pax.count("GNU.sparse.size") ||
         pax.count("GNU.sparse.numblocks") || pax.count("GNU.sparse.realsize");
}

Result<SparseInfo> ReadPaxSparse(TarReader& reader, const std::map<std::string, std::string>& pax,
                                 const std::vector<PaxRecord>& locals, const std::string& path, uint64_t data_offset,
                                 uint64_t size) {
  std::string where = reader.Where(data_offset) + ": sparse file " + path;
  auto get = [&](const char* key) -> const std::string* {
    auto it = pax.find(key);
    return it == pax.end() ? nullptr : &it->second;
  };
  SparseInfo info;
  info.data_offset = data_offset;
  const std::string* major = get("GNU.sparse.major");
  const std::string* minor = get("GNU.sparse.minor");
  if (major || minor) {
    if (!major || !minor || *major != "1" || *minor != "0") {
      return Unsupported("sparse file " + path + " in tar is not supported (GNU.sparse version " +
                         (major ? *major : "?") + "." + (minor ? *minor : "?") + ", in " +
                         reader.source().Describe() + ")");
    }
    const std::string* real = get("GNU.sparse.realsize");
    if (!real) return Corrupt(where + ": no GNU.sparse.realsize");
    auto rs = ParsePaxUnsigned(*real, kMaxTarSize, "GNU.sparse.realsize");
    if (!rs.ok()) return rs.status().WithContext(where);
    info.real_size = *rs;
    // Format 1.0: decimal lines "count\n(offset\nlength\n)*" padded to a block.
    std::string text;
    std::vector<uint64_t> numbers;
    size_t pos = 0;
    uint64_t want = 1;
    while (numbers.size() < want) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) {
        if (text.size() >= kMaxMapText || text.size() + kTarBlockSize > size) return Corrupt(where + ": bad sparse map");
        auto block = reader.ReadBytes(data_offset + text.size(), kTarBlockSize, "sparse map");
        if (!block.ok()) return block.status();
        text += *block;
        continue;
      }
      auto v = ParsePaxUnsigned(std::string_view(text).substr(pos, nl - pos), kMaxTarSize, "sparse map number");
      if (!v.ok()) return v.status().WithContext(where);
      if (numbers.empty()) {
        if (*v > kMaxSparseRuns) return Corrupt(where + ": sparse map has too many runs");
        want = 1 + 2 * *v;
      }
      numbers.push_back(*v);
      pos = nl + 1;
    }
    uint64_t map_bytes = TarPadded(pos);
    numbers.erase(numbers.begin());
    OCIFS_ASSIGN_OR_RETURN(info.map, PairUp(numbers));
    info.data_offset = data_offset + map_bytes;
    OCIFS_RETURN_IF_ERROR(Validate(info, size - map_bytes, where));
    return info;
  }
  const std::string* real = get("GNU.sparse.size");
  if (!real) real = get("GNU.sparse.realsize");
  if (!real) return Corrupt(where + ": no GNU.sparse.size");
  auto rs = ParsePaxUnsigned(*real, kMaxTarSize, "GNU.sparse.size");
  if (!rs.ok()) return rs.status().WithContext(where);
  info.real_size = *rs;
  if (const std::string* map = get("GNU.sparse.map")) {  // format 0.1
    auto numbers = ParseNumberList(*map, ',', "GNU.sparse.map");
    if (!numbers.ok()) return numbers.status().WithContext(where);
    auto runs = PairUp(*numbers);
    if (!runs.ok()) return runs.status().WithContext(where);
    info.map = std::move(*runs);
  } else {  // format 0.0: repeated offset/numbytes records
    std::vector<uint64_t> numbers;
    for (const PaxRecord& r : locals) {
      bool is_offset = r.key == "GNU.sparse.offset";
      if (!is_offset && r.key != "GNU.sparse.numbytes") continue;
      if (is_offset != (numbers.size() % 2 == 0)) return Corrupt(where + ": GNU.sparse.offset/numbytes out of order");
      if (numbers.size() >= 2 * kMaxSparseRuns) return Corrupt(where + ": sparse map has too many runs");
      auto v = ParsePaxUnsigned(r.value, kMaxTarSize, r.key);
      if (!v.ok()) return v.status().WithContext(where);
      numbers.push_back(*v);
    }
    auto runs = PairUp(numbers);
    if (!runs.ok()) return runs.status().WithContext(where);
    info.map = std::move(*runs);
    if (const std::string* n = get("GNU.sparse.numblocks"); n && *n != std::to_string(info.map.size())) {
      return Corrupt(where + ": GNU.sparse.numblocks " + *n + " but " + std::to_string(info.map.size()) + " runs");
    }
  }
  OCIFS_RETURN_IF_ERROR(Validate(info, size, where));
  return info;
}

}  // namespace ocifs
