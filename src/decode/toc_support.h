// What the readers of layers that carry their own table of contents
// (zstd:chunked, docs/zstd-chunked.md; eStargz, docs/estargz.md) share: the
// checks of the TOC's JSON fields and the check of a chunk's decoded bytes
// against the sha256 digest the TOC gives for it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "decode/zstd_frame_source.h"

namespace ocifs {

// Bounds every number a TOC gives (no overflow in sums of two).
inline constexpr uint64_t kMaxTocNumber = uint64_t{1} << 56;
// Deepest nesting of JSON arrays and objects a TOC may have (the DOM parser recurses).
inline constexpr int kMaxTocJsonDepth = 32;

// "sha256:<64 lowercase hex>".
bool IsSha256Digest(std::string_view d);

// Deepest nesting of arrays and objects in `json`, outside strings; stops
// counting past kMaxTocJsonDepth.
int JsonNestingDepth(std::string_view json);

// entry[key] as a non-negative integer below kMaxTocNumber; nullopt if
// absent or null. Sets `why` (and returns nullopt) if it is anything else.
std::optional<uint64_t> TocNumber(const nlohmann::json& entry, const char* key, std::string& why);

// entry[key] if it is a string, else "".
std::string TocText(const nlohmann::json& entry, const char* key);

// The TOC's JSON document: an object of "version": 1 and an "entries" array
// of at most max_entries. kCorrupt "<what>: ..." (what: "<layer>: eStargz
// TOC", say) if it is not; kUnsupported for another version. The document is
// returned whole; its "entries" are checked to be an array.
[[nodiscard]] Result<nlohmann::json> ParseTocDocument(std::string_view json, const std::string& what,
                                                      size_t max_entries);

// "sha256:<hex>" of the bytes (OpenSSL).
std::string Sha256Of(std::span<const uint8_t> bytes);

// What a TOC vouches for in frame i of a ZstdFrameSource: the sha256
// `digest` of its first `length` decoded bytes (the whole frame if length is
// 0). An empty digest: nothing (bytes the TOC does not describe).
struct TocFrameDigest {
  std::string digest;
  uint64_t length = 0;
};

// A FrameCheck failing a frame whose bytes do not match its TocFrameDigest
// with kDataLoss "<name>: the chunk at compressed offset N decodes to X, its
// TOC says Y"; the first mismatch is logged (spdlog::error), later ones are
// not. in_offsets[i]: frame i's compressed offset (for the message).
// Thread safety: the returned function is safe for concurrent calls.
ZstdFrameSource::FrameCheck TocDigestCheck(std::vector<uint64_t> in_offsets, std::vector<TocFrameDigest> digests,
                                           std::string name);

}  // namespace ocifs
