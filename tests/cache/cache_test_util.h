// Helpers shared by the cache tests (TempDir is tests/testing/temp_dir.h): keys, chunk contents, and
// reading the on-disk layout the way docs/cache-format.md describes it.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "testing/temp_dir.h"

namespace ocifs::testing {


inline std::string Digest(char c) { return "sha256:" + std::string(64, c); }
inline const std::string kKey = Digest('a');

// Deterministic bytes for chunk `index` (different chunks differ).
inline std::vector<uint8_t> Pattern(uint64_t index, size_t length, uint64_t salt = 0) {
  std::mt19937_64 rng(index * 1000003 + salt + 1);
  std::vector<uint8_t> v(length);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// The chunk file of (key, index) in a cache with this chunk size.
inline std::filesystem::path ChunkPath(const std::string& dir, uint32_t chunk_size,
                                       const std::string& key, uint64_t index) {
  return std::filesystem::path(dir) / "chunks" / std::to_string(chunk_size) / key / std::to_string(index);
}

// Bytes of chunk files (not temp files) under dir/chunks.
inline uint64_t ChunkBytesOnDisk(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::filesystem::path(dir) / "chunks")) {
    if (e.is_regular_file() && !e.path().filename().string().starts_with(".tmp-")) total += e.file_size();
  }
  return total;
}

}  // namespace ocifs::testing
