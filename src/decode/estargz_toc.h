// The table of contents (TOC) of an eStargz layer (containerd's
// stargz-snapshotter, package estargz): a gzip layer of many gzip members
// (every content chunk starts a member of its own) ending in the TOC, a
// gzipped tar entry "stargz.index.json", and a 51-byte footer, an empty gzip
// member whose extra field gives the TOC's offset. The layer descriptor's
// annotation "containerd.io/snapshot/stargz/toc.digest" holds the sha256 of
// the TOC's JSON. docs/estargz.md describes what we read of it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

inline constexpr uint64_t kEstargzFooterSize = 51;
inline constexpr uint64_t kMaxEstargzTocBytes = 64ull << 20;      // compressed, footer excluded
inline constexpr uint64_t kMaxEstargzTocJsonBytes = 256ull << 20;  // the decoded tar entry
inline constexpr size_t kMaxEstargzTocEntries = 4u << 20;

// One content chunk: the gzip member(s) from in_offset up to the next
// chunk's in_offset (or the TOC) decode to the chunk's `size` bytes, followed,
// for the last chunk of a file only, by that file's tar padding and the tar
// headers written before the next chunk. Units: bytes.
struct EstargzChunk {
  uint64_t in_offset = 0;
  uint64_t size = 0;       // decoded content bytes (chunkSize, or the file's size)
  std::string digest;      // "sha256:<hex>" of those bytes
  bool last_of_file = false;
};

// Chunks sorted by in_offset, distinct offsets, all below toc_offset.
// toc_out_size: what the TOC's members decode to (its tar header, the JSON,
// padding, the end-of-archive blocks).
struct EstargzToc {
  uint64_t toc_offset = 0;
  uint64_t toc_out_size = 0;
  std::vector<EstargzChunk> chunks;
};

// The TOC digest annotation, if the layer has one (that is how oci-fs
// recognises an eStargz layer; docs/estargz.md says why).
std::optional<std::string> EstargzTocDigest(const std::map<std::string, std::string>& annotations);

// `footer`: the blob's last 51 bytes. The TOC's offset, which must lie in
// [0, blob_size - 51). kCorrupt "<name>: eStargz footer: ..." otherwise.
[[nodiscard]] Result<uint64_t> ParseEstargzFooter(std::span<const uint8_t> footer, uint64_t blob_size,
                                                  std::string_view name);

// `members`: the blob's bytes [toc_offset, blob_size - 51). Inflates them
// (bounded), finds the tar entry stargz.index.json, checks the sha256 of
// its JSON against `toc_digest` and parses it (ParseEstargzToc).
// kCorrupt "<name>: eStargz TOC: ..." naming what is wrong; kUnsupported
// for a version other than 1.
[[nodiscard]] Result<EstargzToc> DecodeEstargzToc(std::span<const uint8_t> members, uint64_t toc_offset,
                                                  std::string_view toc_digest, std::string_view name);

// The JSON -> chunks. Checks: version 1; a "reg" entry with content has an
// offset below toc_offset and a sha256 chunkDigest (or digest, unchunked);
// the "chunk" entries after it (same name) follow each other from
// chunkOffset 0 without holes, at increasing offsets, and add up to its
// size; no innerOffset (small files sharing a member) other than 0; no two
// chunks at one offset. kCorrupt naming the entry otherwise.
[[nodiscard]] Result<EstargzToc> ParseEstargzToc(std::string_view json, uint64_t toc_offset, std::string_view name);

}  // namespace ocifs
