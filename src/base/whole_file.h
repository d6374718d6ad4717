// Small files written and read whole: the side files the cache keeps beside
// its chunks (tar indexes, zstd frame tables).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

// Writes `bytes` to a temp file beside `path` (`<path>.tmp.<pid>.<n>`),
// fsyncs it and renames it over `path`, so a reader sees the old file or the
// new one, never a part. The directory must exist. Errors name the step and
// the file; the temp file is removed on failure.
[[nodiscard]] Status WriteFileAtomically(const std::string& path, std::string_view bytes);

// The whole content of `path`. kNotFound "<what> <path> does not exist";
// kCorrupt "<what> <path>: too large (N bytes)" over max_bytes; other errors
// name the file. Thread safety: stateless.
[[nodiscard]] Result<std::string> ReadWholeFile(const std::string& path, uint64_t max_bytes, std::string_view what);

// A file's bytes read whole into a mapping of their own (anonymous mmap), not
// malloc's heap: for a file of several MiB read once and dropped (a gzip
// index checked at load). glibc takes a block that large from mmap too, but
// once it is freed raises its mmap and trim thresholds to its size, so from
// then on the buffers every malloc arena frees stay resident. Move-only;
// unmapped when destroyed. Thread safety: none (one owner).
class MappedFileBytes {
 public:
  // All of the open file `fd` (`path` names it in errors), from offset 0 to
  // the end its size gave (fewer bytes if it shrank meanwhile).
  [[nodiscard]] static Result<MappedFileBytes> Read(int fd, const std::string& path);
  MappedFileBytes(MappedFileBytes&& o) noexcept : data_(o.data_), size_(o.size_), mapped_(o.mapped_) { o.data_ = nullptr; }
  MappedFileBytes& operator=(MappedFileBytes&&) = delete;
  MappedFileBytes(const MappedFileBytes&) = delete;
  ~MappedFileBytes();
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFileBytes(uint8_t* data, size_t mapped) : data_(data), mapped_(mapped) {}
  uint8_t* data_ = nullptr;
  size_t size_ = 0;    // bytes read
  size_t mapped_ = 0;  // bytes mapped (0: nothing, an empty file)
};

}  // namespace ocifs
