#include "disk/qcow2_decompress.h"

#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include <climits>
#include <memory>
#include <string>

namespace ocifs {
namespace {

constexpr int kZstdMaxWindowLog = 23;  // 8 MiB; qemu clusters are at most 2 MiB

struct DecompressorFree {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};

// The fast path: libdeflate inflates a whole cluster in one call, 2-3 times
// zlib's speed. True only if the stream decoded completely to exactly the
// cluster's size; anything else (a stream that ends short, runs past the
// cluster or is malformed) is left to zlib, whose verdict and message stand.
bool InflateWhole(std::span<const uint8_t> in, std::span<uint8_t> out) {
  thread_local std::unique_ptr<libdeflate_decompressor, DecompressorFree> d;
  if (!d) {
    d.reset(libdeflate_alloc_decompressor());
    if (!d) return false;
  }
  size_t in_used = 0, out_made = 0;
  return libdeflate_deflate_decompress_ex(d.get(), in.data(), in.size(), out.data(), out.size(), &in_used,
                                          &out_made) == LIBDEFLATE_SUCCESS &&
         out_made == out.size();
}

Status Inflate(std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (InflateWhole(in, out)) return Status::Ok();
  if (in.size() > UINT_MAX || out.size() > UINT_MAX) return Corrupt("compressed cluster too large");
  z_stream zs{};
  if (inflateInit2(&zs, -12) != Z_OK) return Internal("inflateInit2 failed");
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  int ret = inflate(&zs, Z_FINISH);
  size_t produced = out.size() - zs.avail_out;
  std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  // Success once the cluster is full, whether or not the stream's end was seen.
  if (zs.avail_out == 0 && (ret == Z_STREAM_END || ret == Z_OK || ret == Z_BUF_ERROR)) return Status::Ok();
  if (ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) {
    return Corrupt("deflate cluster decompressed to " + std::to_string(produced) + " bytes, less than the " +
                   std::to_string(out.size()) + "-byte cluster");
  }
  return Corrupt("deflate cluster is malformed (zlib error " + std::to_string(ret) +
                 (msg.empty() ? "" : ": " + msg) + ")");
}

struct DctxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

Status Unzstd(std::span<const uint8_t> in, std::span<uint8_t> out) {
  thread_local std::unique_ptr<ZSTD_DCtx, DctxFree> dctx;
  if (!dctx) {
    dctx.reset(ZSTD_createDCtx());
    if (!dctx) return Internal("ZSTD_createDCtx failed");
  }
  ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_and_parameters);
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, kZstdMaxWindowLog);
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  while (output.pos < output.size) {
    size_t last_in = input.pos, last_out = output.pos;
    size_t ret = ZSTD_decompressStream(dctx.get(), &output, &input);
    if (ZSTD_isError(ret)) {
      return Corrupt(std::string("zstd cluster is malformed: ") + ZSTD_getErrorName(ret));
    }
    if (input.pos == last_in && output.pos == last_out) break;  // no progress: input exhausted
  }
  if (output.pos < output.size) {
    return Corrupt("zstd cluster decompressed to " + std::to_string(output.pos) + " bytes, less than the " +
                   std::to_string(out.size()) + "-byte cluster");
  }
  return Status::Ok();
}

}  // namespace

Status DecompressCluster(Qcow2Compression type, std::span<const uint8_t> in, std::span<uint8_t> out) {
  return type == Qcow2Compression::kZstd ? Unzstd(in, out) : Inflate(in, out);
}

}  // namespace ocifs
