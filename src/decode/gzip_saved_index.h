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

// An index from elsewhere (an acceleration artifact from a registry), made
// fit for a cache's side path: it may be wrong (truncated, for another blob,
// tampered with), so only what reads can verify is kept. It must be a valid
// index carrying block checksums (version 3): kUnsupported if it has none
// (version 1 or 2: unverifiable), kCorrupt if it does not parse. Its zero
// runs are dropped (they would be served without inflating, so unchecked)
// and flag bit 0 set: the mount learns them from verified blocks instead.
// `what` names it in errors, which begin "gzip index <what>" (so `what` is
// e.g. "sha256:ab.. of layer sha256:cd..", not "gzip index ...").
[[nodiscard]] Result<GzipIndex> UntrustedGzipIndex(std::span<const uint8_t> bytes, const std::string& what);
// UntrustedGzipIndex, saved atomically at `out_path` (temp file, fsync, rename).
[[nodiscard]] Status SaveUntrustedGzipIndex(std::span<const uint8_t> bytes, const std::string& what,
                                            const std::string& out_path);
// The same for an index already in a file: loads `in_path`, checks it as
// UntrustedGzipIndex does and writes it without zero runs to `out_path`
// (which may be `in_path`). kNotFound if `in_path` does not exist.
[[nodiscard]] Status RewriteWithoutZeroRuns(const std::string& in_path, const std::string& out_path);

// The index saved at `path` if it is valid and was built for `compressed`
// (same size and tail: one small range read) and, with checksums, its runs
// of zeros agree with them (every whole block inside a run has the checksum
// of zeros); nullopt otherwise: no file, an invalid or inconsistent one or
// another blob's (logged as warnings), or an empty path. Its reads verify the
// rest (GzipSource).
[[nodiscard]] std::optional<GzipIndex> LoadGzipIndexFor(const ByteSource& compressed, const std::string& path);

// A version 4 index blob from elsewhere (an acceleration artifact's piece,
// read through the chunk cache: DecoderOptions::gzip_index_blob), opened
// lazily: its table is read now (GzipIndexV4::Open), its windows when reads
// need them (each checked against its CRC-32, then inflated: kCorrupt if
// wrong). Untrusted as UntrustedGzipIndex makes it (zero runs dropped, block
// checksums required), and used only if it was built for `compressed` (size
// and tail). nullopt otherwise (logged as a warning: a read failed, or the
// table is wrong or for another blob), and the caller runs its own first pass.
// `name` names the index in errors ("" = index_blob->Describe()), `from`
// where it came from in the warning ("" = nothing).
[[nodiscard]] std::optional<GzipIndex> OpenLazyGzipIndexFor(const ByteSource& compressed,
                                                            const ByteSourcePtr& index_blob,
                                                            const std::string& name = "",
                                                            const std::string& from = "");

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
  // Whether runs are being learnt (Start was called).
  bool active() const { return span_count_ > 0; }
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
