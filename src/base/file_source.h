// FileSource: a local file as a ByteSource, read with pread(2).
#pragma once

#include <string>

#include "ocifs/byte_source.h"
#include "base/unique_fd.h"

namespace ocifs {

// Thread safety: safe for concurrent use (pread has no shared cursor).
// The file must not change size while open.
class FileSource final : public ByteSource {
 public:
  [[nodiscard]] static Result<std::shared_ptr<FileSource>> Open(const std::string& path);

  uint64_t size() const override { return size_; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  std::string Describe() const override { return path_; }

  FileSource(UniqueFd fd, uint64_t size, std::string path)
      : fd_(std::move(fd)), size_(size), path_(std::move(path)) {}

 private:
  UniqueFd fd_;
  uint64_t size_;
  std::string path_;
};

}  // namespace ocifs
