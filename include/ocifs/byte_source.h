// ByteSource: the one interface between stages of the read path.
//
//   registry blob -> chunk cache -> decoder -> tar entry -> disk view -> FUSE
//
// Each stage is a ByteSource that wraps the one below and changes only offsets
// and bytes (nbdkit's filters, leveldb's RandomAccessFile).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "ocifs/status.h"

namespace ocifs {

// A run of bytes [offset, offset + length) that is all data or all hole.
// A hole reads as zeros and costs nothing to read.
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;
};

// Bytes [offset, offset + length) of a source.
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const ByteRange&) const = default;
};

// An immutable sequence of size() bytes, read by offset.
//
// Thread safety: every method is const and safe to call concurrently from any
// number of threads; implementations guard their own state.
// Units: offsets and sizes are bytes.
class ByteSource {
 public:
  ByteSource() = default;
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;
  virtual ~ByteSource() = default;

  // Total length in bytes; constant for the object's lifetime, with one
  // exception: a streaming decoder whose end is not known until it has been
  // decompressed to it (a gzip layer before its index exists) reports
  // kUnknownSize until then, and reads past the true end return 0.
  static constexpr uint64_t kUnknownSize = UINT64_MAX;
  virtual uint64_t size() const = 0;

  // Fills buf with the bytes at [offset, offset + buf.size()), clamped to
  // size(). Returns the count written: buf.size(), or less only when the read
  // reaches the end (0 at or past the end). Never returns partial data on error.
  [[nodiscard]] virtual Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const = 0;

  // The extent that contains `offset` (offset < size()). The default says the
  // whole rest of the source is data. Used for SEEK_DATA/SEEK_HOLE.
  [[nodiscard]] virtual Result<Extent> ExtentAt(uint64_t offset) const {
    return Extent{offset, size() > offset ? size() - offset : 0, false};
  }

  // A hint that [offset, offset + length) will be read soon. May start
  // background work; never blocks for long and never fails. Default: nothing.
  virtual void Prefetch(uint64_t offset, uint64_t length) const {
    (void)offset;
    (void)length;
  }

  // Hands the bytes [offset, offset + length) (clamped to size()) to
  // `consume` in order as they arrive: over the network with ONE request,
  // not one per piece (a first pass reading a whole layer). consume(at,
  // bytes): `at` is bytes[0]'s offset in the range; it may go back after a
  // failed attempt (those bytes come again); false stops the stream, which
  // then returns kCancelled. Errors as ReadAt's; a range past the end is
  // kCorrupt. Default: ReadAt in pieces of kStreamPiece bytes.
  using StreamConsumer = std::function<bool(uint64_t at, std::span<const uint8_t> bytes)>;
  static constexpr size_t kStreamPiece = 1u << 20;
  [[nodiscard]] virtual Status ReadStream(uint64_t offset, uint64_t length, const StreamConsumer& consume) const;
  // A hint from the stage above: the source holds a tar archive whose last
  // entry's data ends at `data_end` (a multiple of 512), so the source ends
  // with the archive's end blocks right after it. A source that decodes in
  // one pass may decode its end ahead of the pass (gzip: GzipTail). Never
  // blocks, never fails. Default: nothing.
  virtual void HintLastEntryEnd(uint64_t data_end) const { (void)data_end; }
  // At a clean unmount, before the background work stops: a first pass that
  // is nearly done (what WaitUntilIndexed waits for is a few seconds of work
  // away) is waited for, at most `budget`, so that what it built is saved
  // rather than dropped. Default: nothing.
  virtual void FinishNearlyDone(std::chrono::milliseconds budget) const { (void)budget; }
  // Hands several ranges to `consume` as they arrive, over the network with
  // ONE request for all of them (an HTTP multi-range request): `ranges`
  // sorted by offset, disjoint, non-empty, inside size(). consume(offset,
  // bytes): `offset` is bytes[0]'s offset in the source, inside one range;
  // each range's bytes come in order, the ranges in any order, and after a
  // failed attempt some come again; false stops it (kCancelled).
  // kUnsupported: the source reads one range per request (a server that
  // answers such a request with the whole blob, or with one range); some
  // ranges may have come whole before it said so, and the caller reads the
  // rest on their own. Other errors as ReadAt's. Default: kUnsupported.
  using RangesConsumer = std::function<bool(uint64_t offset, std::span<const uint8_t> bytes)>;
  [[nodiscard]] virtual Status ReadRanges(std::span<const ByteRange> ranges, const RangesConsumer& consume) const {
    (void)ranges;
    (void)consume;
    return Unsupported(Describe() + " reads one range per request");
  }
  // A short human name for logs and errors, e.g. "layer sha256:ab12..".
  virtual std::string Describe() const { return "byte source"; }

  // How the source is read, for the stage that assembles the path (which
  // must not ask what it built by casting):
  // - kRandom: any offset at once.
  // - kStream: a sequential pass produces the bytes; a read ahead of it waits
  //   (a gzip layer before its index exists, a single-frame zstd layer).
  enum class Access { kRandom, kStream };
  virtual Access access() const { return Access::kRandom; }
  // Whether the source keeps the decompressed bytes it produced itself, so
  // a stage above need not keep them again (a single-frame zstd layer's
  // decoded store). Default: false.
  virtual bool KeepsDecoded() const { return false; }
  // Blocks until what the source builds in the background about its bytes
  // (a gzip layer's checkpoint index) is complete and saved where it is
  // kept, or has failed (that status). Ok at once for a source that builds
  // nothing. For callers that want the index itself (`oci-fs accelerate`):
  // reading the last byte is not enough, the pass saves after it.
  [[nodiscard]] virtual Status WaitUntilIndexed() const { return Status::Ok(); }
};

using ByteSourcePtr = std::shared_ptr<const ByteSource>;

// Reads exactly buf.size() bytes at offset or fails with kCorrupt naming `what`
// ("unexpected end of <what>").
[[nodiscard]] Status ReadExactly(const ByteSource& source, uint64_t offset, std::span<uint8_t> buf);

}  // namespace ocifs
