// The table of contents (TOC) of a zstd:chunked layer (containers/storage
// pkg/chunked, `buildah push --compression-format zstd:chunked`): a
// zstd-compressed JSON manifest in a skippable frame, located by the layer
// descriptor's annotation "<offset>:<length>:<uncompressed length>:<type>" and
// vouched for by the annotation holding the sha256 of its compressed bytes.
// The TOC gives, for every regular file's payload (or each of its chunks),
// the compressed range in the blob and the size and sha256 of its decoded
// bytes; docs/zstd-chunked.md describes what we read of it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "decode/toc_support.h"
#include "ocifs/status.h"

namespace ocifs {

// Where the compressed TOC lies in the blob. Units: bytes.
struct ZstdChunkedPosition {
  uint64_t offset = 0;        // of the compressed TOC, just past its 8-byte skippable frame header
  uint64_t length = 0;        // compressed
  uint64_t uncompressed = 0;  // of the JSON
  std::string checksum;       // "sha256:<hex>" of the compressed bytes
};

// One payload span: a file's content, or one chunk of it, compressed alone
// in [in_offset, in_offset + in_size) of the blob (one or more zstd frames).
struct ZstdChunkedSpan {
  uint64_t in_offset = 0;
  uint64_t in_size = 0;
  uint64_t out_size = 0;  // decoded bytes
  std::string digest;     // "sha256:<64 lowercase hex>" of the decoded bytes
};

// Spans sorted by in_offset, not overlapping, all inside [0, data_end), where
// data_end is the start of the TOC's skippable frame.
struct ZstdChunkedToc {
  uint64_t data_end = 0;
  std::vector<ZstdChunkedSpan> spans;
};

// Limits on what a TOC may claim before we allocate for it.
inline constexpr uint64_t kMaxZstdChunkedTocBytes = 64ull << 20;      // compressed
inline constexpr uint64_t kMaxZstdChunkedTocJsonBytes = 256ull << 20;  // decompressed
inline constexpr size_t kMaxZstdChunkedTocEntries = 4u << 20;

// The TOC position of a layer from its descriptor's annotations (the
// "io.containers." and the newer "io.github.containers." spellings).
// nullopt: the layer carries no position annotation. kCorrupt "<name>: ..."
// if it is malformed, of a type other than 1, lacks the checksum
// annotation, or does not fit in a blob of `blob_size` bytes.
[[nodiscard]] Result<std::optional<ZstdChunkedPosition>> ZstdChunkedPositionOf(
    const std::map<std::string, std::string>& annotations, uint64_t blob_size, std::string_view name);

// Whether the annotations name a zstd:chunked TOC at all (either spelling).
bool HasZstdChunkedToc(const std::map<std::string, std::string>& annotations);

// `framed` = the blob's bytes [position.offset - 8, position.offset +
// position.length): the skippable frame header and the compressed TOC.
// Checks the header, the checksum and decompresses (bounded by
// position.uncompressed): the TOC's JSON. kCorrupt "<name>: ..." naming what
// was wrong.
[[nodiscard]] Result<std::string> DecompressZstdChunkedToc(std::span<const uint8_t> framed,
                                                         const ZstdChunkedPosition& position, std::string_view name);

// DecompressZstdChunkedToc, then ParseZstdChunkedToc with data_end =
// position.offset - 8. kUnsupported for a TOC version other than 1.
[[nodiscard]] Result<ZstdChunkedToc> DecodeZstdChunkedToc(std::span<const uint8_t> framed,
                                                        const ZstdChunkedPosition& position, std::string_view name);

// Whether the TOC's JSON is the eStargz TOC (stargz-snapshotter's
// zstd:chunked, `ctr-remote image convert --zstdchunked`) rather than
// containers/storage's: its first regular file with content has no
// "endOffset" (a chunk there ends where the next one starts, as in eStargz;
// docs/zstd-chunked.md). False for JSON that does not parse or has no such
// file: ParseZstdChunkedToc then says what is wrong.
bool ZstdChunkedTocIsEstargz(std::string_view json);

// The JSON TOC -> spans. Validates its shape: entries of known types; a
// "reg" entry with content has offset < endOffset inside [0, data_end) and
// a sha256 digest; the "chunk" entries after it start at chunkOffset 0,
// follow each other without gaps, start at increasing offsets within the
// file's range and add up to its size. Spans of different entries must not
// overlap (identical ones, as the same content twice, are kept once).
[[nodiscard]] Result<ZstdChunkedToc> ParseZstdChunkedToc(std::string_view json, uint64_t data_end,
                                                       std::string_view name);

}  // namespace ocifs
