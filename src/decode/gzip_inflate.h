// Inflating gzip data: a RAII z_stream, and decompressing one span of a layer
// from a checkpoint (zlib's zran technique: inflatePrime + inflateSetDictionary).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decode/gzip_index.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Owns one inflate z_stream. Thread safety: none (one thread at a time).
class ZInflateStream {
 public:
  ZInflateStream() = default;
  ZInflateStream(const ZInflateStream&) = delete;
  ZInflateStream& operator=(const ZInflateStream&) = delete;
  ~ZInflateStream() {
    if (initialized_) inflateEnd(&strm_);
  }

  // window_bits as for inflateInit2: 31 = gzip member, -15 = raw deflate.
  [[nodiscard]] Status Init(int window_bits) {
    if (initialized_) {
      if (inflateReset2(&strm_, window_bits) != Z_OK) return Internal("inflateReset2 failed");
      return Status::Ok();
    }
    if (inflateInit2(&strm_, window_bits) != Z_OK) return Internal("inflateInit2 failed (out of memory?)");
    initialized_ = true;
    return Status::Ok();
  }
  z_stream* get() { return &strm_; }
  z_stream* operator->() { return &strm_; }
  // zlib's message for the last error, or `fallback`.
  std::string Message(const char* fallback) const { return strm_.msg ? strm_.msg : fallback; }

 private:
  z_stream strm_{};
  bool initialized_ = false;
};

// Feeds a raw inflate stream (fresh, or with only its dictionary set) the
// `bits` bits of a deflate block's header, packed from bit 0 of header[0]
// (GzipCheckpoint::block_header), so that it decodes the block's codes next.
// kCorrupt if `header` is not (bits + 7) / 8 bytes or does not decode.
[[nodiscard]] Status FeedBlockHeader(ZInflateStream& z, std::span<const uint8_t> header, unsigned bits);

// Decompresses `length` bytes of the layer starting at checkpoint `cp`
// (crossing gzip member boundaries as needed). `compressed_hint` is about how
// many compressed bytes that takes (sizes the first range read; 0 = unknown).
// Returns fewer bytes only at the end of the data. Errors: kCorrupt naming
// `layer` and the compressed offset; errors of `compressed`.
// `input_marks` (optional): set to where the compressed input stood when the
// output reached each multiple of kInputMarkBytes from cp.out, and at its end:
// mark k is the blob offset inflate had consumed up to (a few bytes of
// zlib's look-ahead at most past the bytes that made output k *
// kInputMarkBytes), so the compressed bytes output [a, b) took lie within
// [marks[a / kInputMarkBytes], marks[ceil(b / kInputMarkBytes)]]; the last
// mark is the end of the input consumed.
// Thread safety: reentrant; `compressed` must be safe for concurrent use.
inline constexpr uint64_t kInputMarkBytes = 4 << 10;
// A span's inflate reads its compressed bytes in one range from its
// checkpoint's first byte to this many bytes past the next checkpoint's byte
// (compressed_hint + kSpanReadPast): what a profile of the span names.
inline constexpr uint64_t kSpanReadPast = 64;
[[nodiscard]] Result<std::vector<uint8_t>> InflateFromCheckpoint(const ByteSource& compressed,
                                                                 const GzipCheckpoint& cp, size_t length,
                                                                 uint64_t compressed_hint,
                                                                 const std::string& layer,
                                                                 std::vector<uint64_t>* input_marks = nullptr);

// Inflates `in`, which must be one or more whole gzip members back to back
// (an eStargz chunk's members, docs/estargz.md), into its decoded bytes.
// kCorrupt naming `what` if it is not whole members (truncated, trailing
// bytes, bad data or CRC) or decodes to more than `max_out` bytes.
// Thread safety: reentrant.
[[nodiscard]] Result<std::vector<uint8_t>> InflateGzipMembers(std::span<const uint8_t> in, uint64_t max_out,
                                                              const std::string& what);

}  // namespace ocifs
