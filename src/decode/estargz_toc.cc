#include "decode/estargz_toc.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "decode/gzip_inflate.h"
#include "decode/toc_support.h"

namespace ocifs {
namespace {

constexpr std::string_view kTocDigestKey = "containerd.io/snapshot/stargz/toc.digest";
constexpr std::string_view kTocTarName = "stargz.index.json";
constexpr size_t kTarBlock = 512;

// A tar header's octal number field; nullopt if it is not one.
std::optional<uint64_t> Octal(std::span<const uint8_t> field) {
  uint64_t v = 0;
  bool any = false;
  for (uint8_t c : field) {
    if (c == 0 || c == ' ') {
      if (any) break;
      continue;
    }
    if (c < '0' || c > '7' || v > (kMaxTocNumber >> 3)) return std::nullopt;
    v = v * 8 + (c - '0');
    any = true;
  }
  return any ? std::optional<uint64_t>(v) : std::nullopt;
}

}  // namespace

std::optional<std::string> EstargzTocDigest(const std::map<std::string, std::string>& annotations) {
  auto it = annotations.find(std::string(kTocDigestKey));
  if (it == annotations.end()) return std::nullopt;
  return it->second;
}

Result<uint64_t> ParseEstargzFooter(std::span<const uint8_t> f, uint64_t blob_size, std::string_view name) {
  auto bad = [&](const std::string& why) { return Corrupt(std::string(name) + ": eStargz footer: " + why); };
  if (f.size() != kEstargzFooterSize || blob_size < kEstargzFooterSize) return bad("the blob is too short");
  if (f[0] != 0x1f || f[1] != 0x8b || f[2] != 8 || (f[3] & 4) == 0) {
    return bad("the last 51 bytes are not a gzip member with an extra field");
  }
  const unsigned xlen = f[10] | unsigned{f[11]} << 8, sublen = f[14] | unsigned{f[15]} << 8;
  std::string_view text(reinterpret_cast<const char*>(f.data() + 16), 22);
  if (xlen != 26 || f[12] != 'S' || f[13] != 'G' || sublen != 22 || text.substr(16) != "STARGZ") {
    return bad("no \"SG\" extra field holding <16 hex digits>STARGZ");
  }
  uint64_t offset = 0;
  for (char c : text.substr(0, 16)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return bad("the TOC offset \"" + std::string(text.substr(0, 16)) + "\" is not lowercase hex");
    offset = offset * 16 + static_cast<uint64_t>(d);
  }
  if (offset >= blob_size - kEstargzFooterSize) {
    return bad("TOC offset " + std::to_string(offset) + " outside the blob of " + std::to_string(blob_size) +
               " bytes");
  }
  if (blob_size - kEstargzFooterSize - offset > kMaxEstargzTocBytes) {
    return bad("a TOC of " + std::to_string(blob_size - kEstargzFooterSize - offset) + " bytes is too large");
  }
  return offset;
}

Result<EstargzToc> DecodeEstargzToc(std::span<const uint8_t> members, uint64_t toc_offset,
                                    std::string_view toc_digest, std::string_view name) {
  auto bad = [&](const std::string& why) { return Corrupt(std::string(name) + ": eStargz TOC: " + why); };
  if (!IsSha256Digest(toc_digest)) {
    return bad("the toc.digest annotation \"" + std::string(toc_digest.substr(0, 80)) + "\" is not a sha256 digest");
  }
  auto tar = InflateGzipMembers(members, kMaxEstargzTocJsonBytes + 4 * kTarBlock, "its gzip members");
  if (!tar.ok()) return bad(tar.status().message());
  std::span<const uint8_t> bytes(*tar);
  if (bytes.size() < kTarBlock) return bad("no tar header");
  std::span<const uint8_t> header = bytes.first(kTarBlock);
  const auto name_end = std::find(header.begin(), header.begin() + 100, uint8_t{0});
  std::string_view entry(reinterpret_cast<const char*>(header.data()), static_cast<size_t>(name_end - header.begin()));
  if (entry != kTocTarName) return bad("the tar entry is \"" + std::string(entry.substr(0, 100)) + "\", not " +
                                       std::string(kTocTarName));
  std::optional<uint64_t> size = Octal(header.subspan(124, 12));
  if (!size || *size > bytes.size() - kTarBlock) return bad("its tar size field is wrong");
  std::span<const uint8_t> json = bytes.subspan(kTarBlock, static_cast<size_t>(*size));
  if (std::string got = Sha256Of(json); got != toc_digest) {
    return bad("digest mismatch: the toc.digest annotation says " + std::string(toc_digest) + ", the TOC is " + got);
  }
  OCIFS_ASSIGN_OR_RETURN(
      EstargzToc toc,
      ParseEstargzToc(std::string_view(reinterpret_cast<const char*>(json.data()), json.size()), toc_offset, name));
  toc.toc_out_size = bytes.size();
  return toc;
}

Result<EstargzToc> ParseEstargzToc(std::string_view json, uint64_t toc_offset, std::string_view name) {
  auto bad = [&](const std::string& why) { return Corrupt(std::string(name) + ": eStargz TOC: " + why); };
  OCIFS_ASSIGN_OR_RETURN(const nlohmann::json doc,
                         ParseTocDocument(json, std::string(name) + ": eStargz TOC", kMaxEstargzTocEntries));
  const nlohmann::json* entries = &doc.at("entries");

  EstargzToc toc;
  toc.toc_offset = toc_offset;
  std::string why;
  for (size_t i = 0; i < entries->size();) {
    const nlohmann::json& e = (*entries)[i];
    auto at = [&](size_t k, const std::string& what) {
      return bad("entry " + std::to_string(k) + " (" + TocText((*entries)[k], "name").substr(0, 200) + "): " + what);
    };
    if (!e.is_object()) return bad("entry " + std::to_string(i) + " is not an object");
    const std::string type = TocText(e, "type");
    if (type == "chunk") return at(i, "a chunk without its file");
    if (type.empty()) return at(i, "no type");
    size_t next = i + 1;
    while (next < entries->size() && (*entries)[next].is_object() && TocText((*entries)[next], "type") == "chunk") ++next;
    std::optional<uint64_t> size = TocNumber(e, "size", why);
    if (!why.empty()) return at(i, why);
    if (type != "reg" || !size || *size == 0) {  // directories, links, empty files: no content
      if (next != i + 1) return at(i, "chunks of an entry without content");
      i = next;
      continue;
    }
    uint64_t file_pos = 0;
    for (size_t k = i; k < next; ++k) {
      const nlohmann::json& c = (*entries)[k];
      if (k > i && TocText(c, "name") != TocText(e, "name")) return at(k, "a chunk of another file");
      std::optional<uint64_t> offset = TocNumber(c, "offset", why), chunk_size = TocNumber(c, "chunkSize", why),
                              chunk_offset = TocNumber(c, "chunkOffset", why), inner = TocNumber(c, "innerOffset", why);
      if (!why.empty()) return at(k, why);
      if (inner.value_or(0) != 0) return at(k, "innerOffset (files sharing a gzip member) is not supported");
      if (!offset || *offset >= toc_offset) return at(k, "content offset outside the layer's data");
      if (!toc.chunks.empty() && toc.chunks.back().in_offset >= *offset && k > i) {
        return at(k, "chunk offsets of a file do not increase");
      }
      if (chunk_offset.value_or(0) != file_pos) return at(k, "chunk offsets do not tile the file");
      const uint64_t n = chunk_size.value_or(0) != 0 ? *chunk_size : *size - file_pos;
      if (n == 0 || n > *size - file_pos) return at(k, "chunk sizes do not tile the file");
      std::string digest = TocText(c, "chunkDigest");
      if (digest.empty() && next == i + 1) digest = TocText(c, "digest");
      if (!IsSha256Digest(digest)) return at(k, "no sha256 chunkDigest");
      file_pos += n;
      toc.chunks.push_back(EstargzChunk{*offset, n, digest, k + 1 == next});
    }
    if (file_pos != *size) return at(i, "chunks add up to " + std::to_string(file_pos) + " bytes, not its size");
    i = next;
  }
  std::sort(toc.chunks.begin(), toc.chunks.end(),
            [](const EstargzChunk& a, const EstargzChunk& b) { return a.in_offset < b.in_offset; });
  for (size_t k = 1; k < toc.chunks.size(); ++k) {
    if (toc.chunks[k].in_offset == toc.chunks[k - 1].in_offset) {
      return bad("two chunks at compressed offset " + std::to_string(toc.chunks[k].in_offset));
    }
  }
  return toc;
}

}  // namespace ocifs
