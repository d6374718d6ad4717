// Small files written and read whole: the side files the cache keeps beside
// its chunks (tar indexes, zstd frame tables).
#pragma once

#include <cstdint>
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

}  // namespace ocifs
