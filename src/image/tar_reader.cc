#include "image/tar_reader.h"

#include <cstring>

namespace ocifs {

TarReader::TarReader(const ByteSource& source) : source_(source) {}

std::string TarReader::Where(uint64_t offset) const {
  return source_.Describe() + " at offset " + std::to_string(offset);
}

Result<bool> TarReader::ReadBlock(uint64_t offset) {
  block_offset_ = offset;
  if (offset >= buf_offset_ && offset - buf_offset_ + kTarBlockSize <= buf_.size()) return true;
  if (source_.size() != ByteSource::kUnknownSize && offset >= source_.size()) return false;
  buf_.resize(kWindow);
  OCIFS_ASSIGN_OR_RETURN(size_t n, source_.ReadAt(offset, std::span<uint8_t>(buf_)));
  buf_.resize(n);
  buf_offset_ = offset;
  if (n == 0) return false;
  if (n < kTarBlockSize) {
    return Corrupt(Where(offset) + ": truncated tar header (" + std::to_string(n) + " of 512 bytes)");
  }
  return true;
}

Result<std::string> TarReader::ReadBytes(uint64_t offset, uint64_t length, std::string_view what) {
  std::string out(length, '\0');
  // Serve what the read-ahead window holds, read the rest directly.
  uint64_t done = 0;
  if (offset >= buf_offset_ && offset < buf_offset_ + buf_.size()) {
    done = std::min<uint64_t>(length, buf_offset_ + buf_.size() - offset);
    std::memcpy(out.data(), buf_.data() + (offset - buf_offset_), done);
  }
  if (done < length) {
    auto span = std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()) + done, length - done);
    OCIFS_ASSIGN_OR_RETURN(size_t n, source_.ReadAt(offset + done, span));
    if (n != span.size()) {
      return Corrupt(Where(offset + done + n) + ": truncated " + std::string(what) + " (" +
                     std::to_string(done + n) + " of " + std::to_string(length) + " bytes at offset " +
                     std::to_string(offset) + ")");
    }
  }
  return out;
}

Status TarReader::RequireEnd(uint64_t end, std::string_view what) {
  if (end == 0) return Status::Ok();
  uint64_t size = source_.size();
  if (size != ByteSource::kUnknownSize) {
    if (end <= size) return Status::Ok();
  } else {
    // Size unknown (a stream still being decoded): probe the last byte.
    if (end > buf_offset_ && end <= buf_offset_ + buf_.size()) return Status::Ok();
    uint8_t byte;
    OCIFS_ASSIGN_OR_RETURN(size_t n, source_.ReadAt(end - 1, std::span<uint8_t>(&byte, 1)));
    if (n == 1) return Status::Ok();
  }
  return Corrupt(source_.Describe() + ": " + std::string(what) + " extends past the end of the layer (to offset " +
                 std::to_string(end) +
                 (size == ByteSource::kUnknownSize ? std::string() : ", layer is " + std::to_string(size) + " bytes") +
                 ")");
}

}  // namespace ocifs
