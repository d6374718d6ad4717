#include "decode/compression.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <memory>

#include "base/little_endian.h"

namespace ocifs {

std::string_view CompressionName(Compression compression) {
  switch (compression) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "unknown";
}

Result<Compression> DetectCompression(const ByteSource& blob) {
  std::array<uint8_t, 4> m{};
  OCIFS_ASSIGN_OR_RETURN(size_t n, blob.ReadAt(0, m));
  return CompressionOfMagic(std::span<const uint8_t>(m.data(), n));
}

Compression CompressionOfMagic(std::span<const uint8_t> m) {
  const size_t n = m.size();
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return Compression::kGzip;
  if (n < 4) return Compression::kNone;
  const uint32_t magic = LoadLe<uint32_t>(m.data());
  if (magic == 0xFD2FB528u) return Compression::kZstd;               // zstd frame
  if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) return Compression::kZstd;  // skippable frame
  return Compression::kNone;
}

namespace {

Result<std::vector<uint8_t>> InflateHead(std::span<const uint8_t> head, size_t want) {
  std::vector<uint8_t> out(want);
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return Internal("inflateInit2 failed");
  z.next_in = const_cast<Bytef*>(head.data());
  z.avail_in = static_cast<uInt>(head.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  int rc = Z_OK;
  while (z.avail_out > 0 && rc == Z_OK) rc = inflate(&z, Z_NO_FLUSH);
  const size_t got = out.size() - z.avail_out;
  inflateEnd(&z);
  // Z_BUF_ERROR: the head ended (no progress possible); Z_STREAM_END: a short stream.
  if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
    return Corrupt(std::string("not gzip data: ") + (z.msg ? z.msg : "inflate error " + std::to_string(rc)));
  }
  out.resize(got);
  return out;
}

Result<std::vector<uint8_t>> ZstdHead(std::span<const uint8_t> head, size_t want) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) return Internal("ZSTD_createDCtx failed");
  std::vector<uint8_t> out(want);
  ZSTD_inBuffer in{head.data(), head.size(), 0};
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  // Until the output is full or no more progress is made with the input there is.
  while (o.pos < o.size) {
    const size_t in_before = in.pos, out_before = o.pos;
    size_t rc = ZSTD_decompressStream(ctx.get(), &o, &in);
    if (ZSTD_isError(rc)) return Corrupt(std::string("not zstd data: ") + ZSTD_getErrorName(rc));
    if (rc == 0 && in.pos == in.size) break;  // the end of the last frame
    if (in.pos == in_before && o.pos == out_before) break;
  }
  out.resize(o.pos);
  return out;
}

}  // namespace

Result<std::vector<uint8_t>> DecompressHead(std::span<const uint8_t> head, Compression compression, size_t want) {
  switch (compression) {
    case Compression::kNone:
      return std::vector<uint8_t>(head.begin(), head.begin() + static_cast<ptrdiff_t>(std::min(want, head.size())));
    case Compression::kGzip:
      return InflateHead(head, want);
    case Compression::kZstd:
      return ZstdHead(head, want);
  }
  return Internal("unknown compression");
}

}  // namespace ocifs
