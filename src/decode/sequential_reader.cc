#include "decode/sequential_reader.h"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

namespace ocifs {

SequentialReader::SequentialReader(const ByteSource& source, uint64_t start, size_t piece, uint64_t ahead)
    : source_(source), piece_(std::max<size_t>(piece, 64)), position_(start), ahead_(ahead), hinted_(start) {}

void SequentialReader::HintAhead(size_t reading) {
  const uint64_t from = std::max(hinted_, position_ + end_ + reading);
  uint64_t to = position_ + end_ + reading + ahead_;
  const uint64_t size = source_.size();
  if (size != ByteSource::kUnknownSize) to = std::min(to, size);
  // In quarter-window steps (one hint queues a few range requests), and the last bytes at once.
  if (to <= from || (to - from < ahead_ / 4 && to != size)) return;
  source_.Prefetch(from, to - from);
  hinted_ = to;
}

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
    // The first read is small when hinting, and the hint of what follows it goes out
    // first: a cached blob streams those bytes beside the first read's.
    const bool first = ahead_ > 0 && bytes_read_ == 0;
    if (first) want = std::min(want, kFirstRead);
    if (size != ByteSource::kUnknownSize) {
      if (at >= size) {
        eof_ = true;
        break;
      }
      want = static_cast<size_t>(std::min<uint64_t>(want, size - at));
    }
    if (first && hinted_ <= at) {
      hinted_ = at + want;
      HintAhead(want);
    }
    const auto t0 = std::chrono::steady_clock::now();
    OCIFS_ASSIGN_OR_RETURN(size_t n, source_.ReadAt(at, std::span<uint8_t>(buf_.data() + end_, want)));
    read_time_ += std::chrono::steady_clock::now() - t0;
    bytes_read_ += n;
    if (n == 0) eof_ = true;
    end_ += n;
    // After the read: its own bytes had the link to themselves (a mount waits for the first ones).
    if (ahead_ > 0 && n > 0) HintAhead();
  }
  return Status::Ok();
}

void LogStreamPass(const std::string& name, uint64_t bytes, std::chrono::steady_clock::duration read_time,
                   std::chrono::steady_clock::time_point started) {
  using Seconds = std::chrono::duration<double>;
  const double total = Seconds(std::chrono::steady_clock::now() - started).count();
  spdlog::info("{}: read {:.1f} MiB in {:.2f} s ({:.1f} MiB/s), {:.2f} s of it waiting for the compressed bytes", name,
               static_cast<double>(bytes) / (1 << 20), total,
               total > 0 ? static_cast<double>(bytes) / (1 << 20) / total : 0.0, Seconds(read_time).count());
}

}  // namespace ocifs
