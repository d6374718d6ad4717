#include "decode/zstd_chunked_toc.h"

#include <zstd.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "base/little_endian.h"
#include "decode/toc_support.h"

namespace ocifs {
namespace {

constexpr std::string_view kPositionKeys[] = {"io.github.containers.zstd-chunked.manifest-position",
                                              "io.containers.zstd-chunked.manifest-position"};
constexpr std::string_view kChecksumKeys[] = {"io.github.containers.zstd-chunked.manifest-checksum",
                                              "io.containers.zstd-chunked.manifest-checksum"};
constexpr uint32_t kSkippableMagic = 0x184D2A50;

const std::string* Find(const std::map<std::string, std::string>& m, std::span<const std::string_view> keys) {
  for (std::string_view k : keys) {
    if (auto it = m.find(std::string(k)); it != m.end()) return &it->second;
  }
  return nullptr;
}

}  // namespace

bool HasZstdChunkedToc(const std::map<std::string, std::string>& annotations) {
  return Find(annotations, kPositionKeys) != nullptr;
}

Result<std::optional<ZstdChunkedPosition>> ZstdChunkedPositionOf(const std::map<std::string, std::string>& annotations,
                                                                 uint64_t blob_size, std::string_view name) {
  const std::string* text = Find(annotations, kPositionKeys);
  if (!text) return std::optional<ZstdChunkedPosition>();
  auto bad = [&](const std::string& why) {
    return Corrupt(std::string(name) + ": zstd:chunked manifest position \"" + text->substr(0, 100) + "\": " + why);
  };
  uint64_t v[4];
  const char* p = text->data();
  const char* end = p + text->size();
  for (int i = 0; i < 4; ++i) {
    auto [next, ec] = std::from_chars(p, end, v[i]);
    if (ec != std::errc() || next == p) return bad("not four numbers offset:length:uncompressed:type");
    p = next;
    if (i < 3 && (p == end || *p++ != ':')) return bad("not four numbers offset:length:uncompressed:type");
  }
  if (p != end) return bad("trailing text");
  if (v[3] != 1) return bad("type " + std::to_string(v[3]) + ", not 1");
  if (v[0] < 8 || v[0] > blob_size || v[1] > blob_size - v[0]) {
    return bad("outside the blob of " + std::to_string(blob_size) + " bytes");
  }
  if (v[1] == 0 || v[1] > kMaxZstdChunkedTocBytes) return bad("compressed length out of bounds");
  if (v[2] == 0 || v[2] > kMaxZstdChunkedTocJsonBytes) return bad("uncompressed length out of bounds");
  const std::string* checksum = Find(annotations, kChecksumKeys);
  if (!checksum) return bad("no manifest-checksum annotation");
  if (!IsSha256Digest(*checksum)) return bad("manifest checksum \"" + checksum->substr(0, 80) + "\" is not a sha256 digest");
  return std::optional<ZstdChunkedPosition>(ZstdChunkedPosition{v[0], v[1], v[2], *checksum});
}

Result<std::string> DecompressZstdChunkedToc(std::span<const uint8_t> framed, const ZstdChunkedPosition& position,
                                             std::string_view name) {
  auto bad = [&](const std::string& why) { return Corrupt(std::string(name) + ": zstd:chunked TOC: " + why); };
  if (framed.size() != position.length + 8) return bad("truncated");
  const uint32_t magic = LoadLe<uint32_t>(framed.data()), size = LoadLe<uint32_t>(framed.data() + 4);
  if (magic != kSkippableMagic || size != position.length) {
    return bad("no skippable frame of " + std::to_string(position.length) + " bytes at offset " +
               std::to_string(position.offset - 8));
  }
  std::span<const uint8_t> compressed = framed.subspan(8);
  if (std::string got = Sha256Of(compressed); got != position.checksum) {
    return bad("checksum mismatch: the annotation says " + position.checksum + ", the bytes are " + got);
  }
  std::string json(static_cast<size_t>(position.uncompressed), '\0');
  size_t n = ZSTD_decompress(json.data(), json.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n)) return bad(std::string("cannot decompress: ") + ZSTD_getErrorName(n));
  if (n != json.size()) {
    return bad("decompressed to " + std::to_string(n) + " bytes, the annotation says " + std::to_string(json.size()));
  }
  return json;
}

Result<ZstdChunkedToc> DecodeZstdChunkedToc(std::span<const uint8_t> framed, const ZstdChunkedPosition& position,
                                            std::string_view name) {
  OCIFS_ASSIGN_OR_RETURN(std::string json, DecompressZstdChunkedToc(framed, position, name));
  return ParseZstdChunkedToc(json, position.offset - 8, name);
}

bool ZstdChunkedTocIsEstargz(std::string_view json) {
  auto doc = ParseTocDocument(json, "zstd:chunked TOC", kMaxZstdChunkedTocEntries);
  if (!doc.ok()) return false;
  std::string why;
  for (const nlohmann::json& e : doc->at("entries")) {
    if (!e.is_object() || TocText(e, "type") != "reg" || TocNumber(e, "size", why).value_or(0) == 0) continue;
    return !e.contains("endOffset");
  }
  return false;
}

Result<ZstdChunkedToc> ParseZstdChunkedToc(std::string_view json, uint64_t data_end, std::string_view name) {
  auto bad = [&](const std::string& why) { return Corrupt(std::string(name) + ": zstd:chunked TOC: " + why); };
  OCIFS_ASSIGN_OR_RETURN(const nlohmann::json doc,
                         ParseTocDocument(json, std::string(name) + ": zstd:chunked TOC", kMaxZstdChunkedTocEntries));
  const nlohmann::json* entries = &doc.at("entries");

  ZstdChunkedToc toc;
  toc.data_end = data_end;
  std::string why;
  for (size_t i = 0; i < entries->size();) {
    const nlohmann::json& e = (*entries)[i];
    auto at = [&](size_t k, const std::string& what) {
      return bad("entry " + std::to_string(k) + " (" + TocText((*entries)[k], "name").substr(0, 200) + "): " + what);
    };
    if (!e.is_object()) return bad("entry " + std::to_string(i) + " is not an object");
    const std::string type = TocText(e, "type");
    if (type == "chunk") return at(i, "a chunk without its file");
    if (type != "reg") {
      if (type.empty()) return at(i, "no type");
      ++i;  // directories, links, devices: no payload
      continue;
    }
    std::optional<uint64_t> size = TocNumber(e, "size", why), offset = TocNumber(e, "offset", why),
                            end = TocNumber(e, "endOffset", why);
    if (!why.empty()) return at(i, why);
    size_t next = i + 1;
    while (next < entries->size() && (*entries)[next].is_object() && TocText((*entries)[next], "type") == "chunk") ++next;
    if (!size || *size == 0) {
      if (next != i + 1) return at(i, "chunks of an empty file");
      i = next;
      continue;
    }
    if (!offset || !end || *offset >= *end || *end > data_end) return at(i, "payload range outside the layer's data");
    if (next == i + 1) {  // one span: the whole file
      std::string digest = TocText(e, "digest");
      if (!IsSha256Digest(digest)) return at(i, "no sha256 digest");
      std::optional<uint64_t> chunk_size = TocNumber(e, "chunkSize", why);
      if (!why.empty() || (chunk_size && *chunk_size != *size)) return at(i, "chunkSize differs from size");
      toc.spans.push_back(ZstdChunkedSpan{*offset, *end - *offset, *size, digest});
      i = next;
      continue;
    }
    uint64_t file_pos = 0;
    for (size_t k = i; k < next; ++k) {
      const nlohmann::json& c = (*entries)[k];
      if (k > i && TocText(c, "name") != TocText(e, "name")) return at(k, "a chunk of another file");
      std::optional<uint64_t> c_off = TocNumber(c, "offset", why), c_size = TocNumber(c, "chunkSize", why),
                              c_pos = TocNumber(c, "chunkOffset", why);
      if (!why.empty()) return at(k, why);
      const uint64_t c_end = k + 1 < next ? TocNumber((*entries)[k + 1], "offset", why).value_or(0) : *end;
      if (!why.empty()) return at(k + 1, why);
      if (!c_off || (k == i && *c_off != *offset) || c_end <= *c_off || c_end > *end) {
        return at(k, "chunk range out of order or outside its file's range");
      }
      if (!c_size || *c_size == 0 || c_pos.value_or(0) != file_pos || *c_size > *size - file_pos) {
        return at(k, "chunk sizes do not tile the file");
      }
      std::string digest = TocText(c, "chunkDigest");
      if (!IsSha256Digest(digest)) return at(k, "no sha256 chunkDigest");
      toc.spans.push_back(ZstdChunkedSpan{*c_off, c_end - *c_off, *c_size, digest});
      file_pos += *c_size;
    }
    if (file_pos != *size) return at(i, "chunks add up to " + std::to_string(file_pos) + " bytes, not its size");
    i = next;
  }
  std::sort(toc.spans.begin(), toc.spans.end(), [](const ZstdChunkedSpan& a, const ZstdChunkedSpan& b) {
    return a.in_offset < b.in_offset;
  });
  std::vector<ZstdChunkedSpan> kept;
  kept.reserve(toc.spans.size());
  for (ZstdChunkedSpan& s : toc.spans) {
    if (!kept.empty() && s.in_offset < kept.back().in_offset + kept.back().in_size) {
      const ZstdChunkedSpan& k = kept.back();
      if (s.in_offset == k.in_offset && s.in_size == k.in_size && s.out_size == k.out_size && s.digest == k.digest) {
        continue;
      }
      return bad("payloads overlap at compressed offset " + std::to_string(s.in_offset));
    }
    kept.push_back(std::move(s));
  }
  toc.spans = std::move(kept);
  return toc;
}

}  // namespace ocifs
