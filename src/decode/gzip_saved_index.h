// A gzip layer's saved index as GzipSource opens it: the file is used only if
// it was built for this blob; and the compatibility with version 1 files,
// which carry no runs of zeros (docs/gzip-index-format.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "decode/gzip_index.h"
#include "decode/zero_ranges.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// The index saved at `path` if it is valid and was built for `compressed`
// (same size and tail: one small range read); nullopt otherwise: no file,
// an invalid one or another blob's (both logged as warnings), or an empty path.
[[nodiscard]] std::optional<GzipIndex> LoadGzipIndexFor(const ByteSource& compressed, const std::string& path);

// Version 1 compatibility. A version 1 index knows no runs of zeros, so a
// mount that loaded one learns them as it goes: each span is inflated whole
// once (ChooseSpanLoad, gzip_source.h: even one larger than the segment
// cache) and its runs are added to `zeros`. Later reads of them are zeros
// without inflating, and the span is then inflated only up to a read's end.
// Inactive (nothing to learn) unless Start is called: after a pass or with a
// version 2 index every run is known.
//
// Thread safety: Learning and Learn are safe for concurrent use and take no
// lock (one atomic flag per span); Start comes before them.
// Ownership: borrows `zeros`, which must outlive it.
class Version1Zeros {
 public:
  explicit Version1Zeros(ZeroRanges& zeros) : zeros_(zeros) {}
  Version1Zeros(const Version1Zeros&) = delete;
  Version1Zeros& operator=(const Version1Zeros&) = delete;

  // A version 1 index of `span_count` spans was loaded: its zeros are unknown.
  void Start(size_t span_count);
  // Whether span `index`'s runs of zeros are still to be learnt.
  bool Learning(size_t index) const {
    return index < span_count_ && !scanned_[index].load(std::memory_order_acquire);
  }
  // Span `index` was inflated whole: `bytes`, at decompressed offset `out`.
  // Adds its runs of zeros (when active) and marks it learnt.
  void Learn(size_t index, uint64_t out, std::span<const uint8_t> bytes);

 private:
  ZeroRanges& zeros_;
  size_t span_count_ = 0;  // 0: inactive; set by Start
  std::unique_ptr<std::atomic<bool>[]> scanned_;
};

}  // namespace ocifs
