#include "decode/zstd_chunked_toc.h"

#include <openssl/evp.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

namespace ocifs {
namespace {

constexpr std::string_view kPositionKeys[] = {"io.github.containers.zstd-chunked.manifest-position",
                                              "io.containers.zstd-chunked.manifest-position"};
constexpr std::string_view kChecksumKeys[] = {"io.github.containers.zstd-chunked.manifest-checksum",
                                              "io.containers.zstd-chunked.manifest-checksum"};
constexpr uint32_t kSkippableMagic = 0x184D2A50;
constexpr uint64_t kMaxOffset = uint64_t{1} << 56;  // bounds every number a TOC gives (no overflow in sums)
constexpr int kMaxJsonDepth = 32;

const std::string* Find(const std::map<std::string, std::string>& m, std::span<const std::string_view> keys) {
  for (std::string_view k : keys) {
    if (auto it = m.find(std::string(k)); it != m.end()) return &it->second;
  }
  return nullptr;
}

bool IsSha256(std::string_view d) {
  if (d.size() != 71 || d.substr(0, 7) != "sha256:") return false;
  return std::all_of(d.begin() + 7, d.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Deepest nesting of arrays and objects, outside strings (the DOM parser recurses).
int JsonDepth(std::string_view s) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxJsonDepth) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// entry[key] as a non-negative integer below kMaxOffset; nullopt if absent; error text in `why`.
std::optional<uint64_t> Number(const nlohmann::json& e, const char* key, std::string& why) {
  auto it = e.find(key);
  if (it == e.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || (it->is_number_unsigned() ? it->get<uint64_t>() >= kMaxOffset
                                                            : (it->get<int64_t>() < 0 ||
                                                               static_cast<uint64_t>(it->get<int64_t>()) >= kMaxOffset))) {
    why = std::string("\"") + key + "\" is not a byte count";
    return std::nullopt;
  }
  return it->get<uint64_t>();
}

std::string Text(const nlohmann::json& e, const char* key) {
  auto it = e.find(key);
  return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string Sha256Of(std::span<const uint8_t> bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

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
  if (!IsSha256(*checksum)) return bad("manifest checksum \"" + checksum->substr(0, 80) + "\" is not a sha256 digest");
  return std::optional<ZstdChunkedPosition>(ZstdChunkedPosition{v[0], v[1], v[2], *checksum});
}

Result<ZstdChunkedToc> DecodeZstdChunkedToc(std::span<const uint8_t> framed, const ZstdChunkedPosition& position,
                                            std::string_view name) {
  auto bad = [&](const std::string& why) { return Corrupt(std::string(name) + ": zstd:chunked TOC: " + why); };
  if (framed.size() != position.length + 8) return bad("truncated");
  uint32_t magic = 0, size = 0;
  for (int i = 0; i < 4; ++i) {
    magic |= uint32_t{framed[i]} << (8 * i);
    size |= uint32_t{framed[4 + i]} << (8 * i);
  }
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
  return ParseZstdChunkedToc(json, position.offset - 8, name);
}

Result<ZstdChunkedToc> ParseZstdChunkedToc(std::string_view json, uint64_t data_end, std::string_view name) {
  auto bad = [&](const std::string& why) { return Corrupt(std::string(name) + ": zstd:chunked TOC: " + why); };
  if (JsonDepth(json) > kMaxJsonDepth) return bad("JSON nested too deeply");
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != 1) {
    return Unsupported(std::string(name) + ": zstd:chunked TOC: version " +
                       (version == doc.end() ? std::string("missing") : version->dump()) + ", not 1");
  }
  auto entries = doc.find("entries");
  if (entries == doc.end() || !entries->is_array()) return bad("no \"entries\" array");
  if (entries->size() > kMaxZstdChunkedTocEntries) return bad("too many entries");

  ZstdChunkedToc toc;
  toc.data_end = data_end;
  std::string why;
  for (size_t i = 0; i < entries->size();) {
    const nlohmann::json& e = (*entries)[i];
    auto at = [&](size_t k, const std::string& what) {
      return bad("entry " + std::to_string(k) + " (" + Text((*entries)[k], "name").substr(0, 200) + "): " + what);
    };
    if (!e.is_object()) return bad("entry " + std::to_string(i) + " is not an object");
    const std::string type = Text(e, "type");
    if (type == "chunk") return at(i, "a chunk without its file");
    if (type != "reg") {
      if (type.empty()) return at(i, "no type");
      ++i;  // directories, links, devices: no payload
      continue;
    }
    std::optional<uint64_t> size = Number(e, "size", why), offset = Number(e, "offset", why),
                            end = Number(e, "endOffset", why);
    if (!why.empty()) return at(i, why);
    size_t next = i + 1;
    while (next < entries->size() && (*entries)[next].is_object() && Text((*entries)[next], "type") == "chunk") ++next;
    if (!size || *size == 0) {
      if (next != i + 1) return at(i, "chunks of an empty file");
      i = next;
      continue;
    }
    if (!offset || !end || *offset >= *end || *end > data_end) return at(i, "payload range outside the layer's data");
    if (next == i + 1) {  // one span: the whole file
      std::string digest = Text(e, "digest");
      if (!IsSha256(digest)) return at(i, "no sha256 digest");
      std::optional<uint64_t> chunk_size = Number(e, "chunkSize", why);
      if (!why.empty() || (chunk_size && *chunk_size != *size)) return at(i, "chunkSize differs from size");
      toc.spans.push_back(ZstdChunkedSpan{*offset, *end - *offset, *size, digest});
      i = next;
      continue;
    }
    uint64_t file_pos = 0;
    for (size_t k = i; k < next; ++k) {
      const nlohmann::json& c = (*entries)[k];
      if (k > i && Text(c, "name") != Text(e, "name")) return at(k, "a chunk of another file");
      std::optional<uint64_t> c_off = Number(c, "offset", why), c_size = Number(c, "chunkSize", why),
                              c_pos = Number(c, "chunkOffset", why);
      if (!why.empty()) return at(k, why);
      const uint64_t c_end = k + 1 < next ? Number((*entries)[k + 1], "offset", why).value_or(0) : *end;
      if (!why.empty()) return at(k + 1, why);
      if (!c_off || (k == i && *c_off != *offset) || c_end <= *c_off || c_end > *end) {
        return at(k, "chunk range out of order or outside its file's range");
      }
      if (!c_size || *c_size == 0 || c_pos.value_or(0) != file_pos || *c_size > *size - file_pos) {
        return at(k, "chunk sizes do not tile the file");
      }
      std::string digest = Text(c, "chunkDigest");
      if (!IsSha256(digest)) return at(k, "no sha256 chunkDigest");
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
