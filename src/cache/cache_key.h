// Cache keys: which strings may name a blob in the chunk cache, and the one
// hash stored in every chunk header.
//
// A key is a blob digest, optionally followed by suffix parts:
//   key    = digest *( ":" part )
//   digest = "sha256:" 64 lowercase hex | "sha512:" 128 lowercase hex
//   part   = 1..32 of [a-z0-9-], the first not "-"        e.g. "zstd-decoded"
// at most kMaxKeyLength bytes in all. A valid key contains no "/", no "." and
// no NUL, so it is used verbatim as a directory name (docs/cache-format.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

inline constexpr size_t kMaxKeyLength = 200;

// OK, or kInvalidArgument naming what is wrong with `key`. Allocation-free
// when the key is valid (it runs on every cache hit).
[[nodiscard]] Status ValidateCacheKey(std::string_view key);

// A side-file suffix ("gzidx", "tarindex"): 1..32 of [a-z0-9-], first not "-".
[[nodiscard]] Status ValidateSideSuffix(std::string_view suffix);

// The key of data derived from blob `digest` (the one place keys are made):
// "<digest>:<part>", e.g. part "decoded" for a single-frame zstd layer's
// decompressed stream.
std::string DerivedCacheKey(std::string_view digest, std::string_view part);
// "<digest>:<part>-<offset in lowercase hex>": data derived from the file
// whose bytes start at `offset` in the blob's decoded stream (a disk's kept
// qcow2 clusters, part "qcow2-clusters"; its raw pieces, "raw-chunks").
std::string DerivedCacheKey(std::string_view digest, std::string_view part, uint64_t offset);

// 64-bit FNV-1a of the key's bytes (offset basis 0xcbf29ce484222325, prime
// 0x100000001b3), stored in chunk headers to catch a file under the wrong key.
uint64_t CacheKeyHash(std::string_view key);

}  // namespace ocifs
