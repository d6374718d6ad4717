#include "decode/sequential_reader.h"

#include <algorithm>
#include <cstring>

namespace ocifs {

SequentialReader::SequentialReader(const ByteSource& source, uint64_t start, size_t piece)
    : source_(source), piece_(std::max<size_t>(piece, 64)), position_(start) {}

Result<std::span<const uint8_t>> SequentialReader::Next() {
  if (begin_ == end_) OCIFS_RETURN_IF_ERROR(Fill(1));
  return std::span<const uint8_t>(buf_.data() + begin_, end_ - begin_);
}

Result<std::span<const uint8_t>> SequentialReader::Peek(size_t n) {
  n = std::min(n, piece_);
  if (end_ - begin_ < n) OCIFS_RETURN_IF_ERROR(Fill(n));
  return std::span<const uint8_t>(buf_.data() + begin_, end_ - begin_);
}

void SequentialReader::Skip(uint64_t n) {
  position_ += n;
  if (n < end_ - begin_) {
    begin_ += static_cast<size_t>(n);
  } else {
    begin_ = end_ = 0;
    eof_ = false;  // a later Fill decides again from the new position
  }
}

Status SequentialReader::Fill(size_t min_bytes) {
  if (buf_.size() < piece_) buf_.resize(piece_);
  // Keep the unconsumed tail, then read after it until min_bytes or the end.
  size_t have = end_ - begin_;
  if (have > 0 && begin_ > 0) std::memmove(buf_.data(), buf_.data() + begin_, have);
  begin_ = 0;
  end_ = have;
  while (end_ < min_bytes && !eof_) {
    uint64_t at = position_ + end_;
    uint64_t size = source_.size();
    size_t want = buf_.size() - end_;
    if (size != ByteSource::kUnknownSize) {
      if (at >= size) {
        eof_ = true;
        break;
      }
      want = static_cast<size_t>(std::min<uint64_t>(want, size - at));
    }
    OCIFS_ASSIGN_OR_RETURN(size_t n, source_.ReadAt(at, std::span<uint8_t>(buf_.data() + end_, want)));
    if (n == 0) eof_ = true;
    end_ += n;
  }
  return Status::Ok();
}

}  // namespace ocifs
