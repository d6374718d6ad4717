#include "decode/decoder.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <algorithm>
#include <array>
#include <optional>

#include "decode/gzip_source.h"
#include "base/whole_file.h"
#include "decode/index_fallback_source.h"
#include "decode/raw_span_source.h"
#include "decode/zstd_checkpoint_index_v2.h"
#include "decode/zstd_checkpoint_source.h"
#include "decode/estargz_open.h"
#include "decode/zstd_chunked_open.h"
#include "decode/zstd_frame_file.h"
#include "decode/zstd_frame_source.h"
#include "decode/zstd_frames.h"
#include "decode/zstd_stream_source.h"

namespace ocifs {
namespace {

// Frames larger than this are not decompressed whole per read; such blobs go
// through the streaming decoder instead.
constexpr uint64_t kMaxFrameBytes = 32ull << 20;
constexpr uint32_t kDefaultChunkSize = 4u << 20;

bool Seekable(const std::vector<ZstdFrame>& frames) {
  if (frames.size() < 2) return false;
  for (const ZstdFrame& f : frames) {
    if (f.out_size > kMaxFrameBytes || f.in_size > kMaxFrameBytes) return false;
  }
  return true;
}

bool HasCrcs(const std::vector<ZstdFrame>& frames) {
  return std::all_of(frames.begin(), frames.end(), [](const ZstdFrame& f) { return f.crc32.has_value(); });
}

// Where a blob's frames were found, if it can be read frame by frame.
struct LocatedFrames {
  std::optional<std::vector<ZstdFrame>> frames;  // nullopt: read it as a stream
  bool walked = false;                           // found by walking the whole blob
  uint64_t stream_size = ByteSource::kUnknownSize;  // a stream's size when the walk learnt it
};

Result<LocatedFrames> Locate(const ByteSource& compressed) {
  LocatedFrames located;
  // A first frame too large to seek within: a stream, without reading the blob's end.
  OCIFS_ASSIGN_OR_RETURN(std::optional<uint64_t> first, FirstZstdFrameContentSize(compressed));
  if (first && *first > kMaxFrameBytes) return located;
  OCIFS_ASSIGN_OR_RETURN(std::optional<std::vector<ZstdFrame>> table, ReadZstdSeekTable(compressed));
  if (table && Seekable(*table)) {
    located.frames = std::move(table);
    return located;
  }
  OCIFS_ASSIGN_OR_RETURN(ZstdFrameScan scan, ScanZstdFrames(compressed, kMaxFrameBytes));
  if (scan.complete && Seekable(scan.frames)) {
    located.frames = std::move(scan.frames);
    located.walked = true;
    return located;
  }
  if (scan.complete && scan.frames.size() == 1) located.stream_size = scan.frames[0].out_size;
  if (scan.complete && scan.frames.empty()) located.stream_size = 0;
  return located;
}

// What a checkpoint index that proved wrong is replaced with: the side file
// stays (so the artifact's index is not installed again), and is not used.
constexpr std::string_view kWrongIndexMark = "oci-fs: this zstd checkpoint index proved wrong\n";

// The checkpoint index of a single-frame layer from an acceleration
// artifact: the file kept at zstd_checkpoint_path (version 1), else the
// version 2 blob read lazily; nullopt if there is none, or the file is the
// mark of one that proved wrong.
std::optional<Result<ZstdCheckpointIndex>> FindZstdCheckpoints(const ByteSource& compressed,
                                                               const DecoderOptions& options, std::string* what) {
  const std::string& path = options.zstd_checkpoint_path;
  if (!path.empty() && ::access(path.c_str(), F_OK) == 0) {
    *what = path;
    auto bytes = ReadWholeFile(path, uint64_t{64} << 20, "zstd checkpoint index");
    if (!bytes.ok()) return Result<ZstdCheckpointIndex>(bytes.status());
    if (*bytes == kWrongIndexMark) {
      spdlog::debug("zstd layer {}: its checkpoint index proved wrong before; streaming it", compressed.Describe());
      return std::nullopt;
    }
    return ZstdCheckpointIndex::Parse(std::span(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()));
  }
  if (!options.zstd_checkpoint_blob) return std::nullopt;
  *what = options.zstd_checkpoint_blob->Describe();
  if (!options.zstd_checkpoint_from.empty()) *what += " (" + options.zstd_checkpoint_from + ")";
  return ZstdCheckpointIndexV2::Open(options.zstd_checkpoint_blob);
}

// `decoded` (a layer read through an index) with its reads inside
// options.raw_spans copied from `compressed` (RawSpanSource), if there is a
// table for it; as it is otherwise.
ByteSourcePtr WithRawSpans(ByteSourcePtr decoded, const ByteSourcePtr& compressed, const DecoderOptions& options,
                           std::string_view kind) {
  if (!options.raw_spans) return decoded;
  auto raw = RawSpanSource::Open(decoded, compressed, options.raw_spans);
  if (!raw.ok()) {
    spdlog::warn("{} layer {}: ignoring its raw span table: {}", kind, compressed->Describe(), raw.status().ToString());
    return decoded;
  }
  spdlog::debug("{} layer {}: {} raw blocks ({} bytes) read as they are", kind, compressed->Describe(),
                options.raw_spans->spans().size(), options.raw_spans->raw_bytes());
  if (options.record_compressed) (*raw)->RecordNeeded(options.record_compressed);
  return std::move(raw).value();
}

// A frame source over `frames` that reports what `options` ask for: the
// compressed bytes each read needed (record_compressed), and its frames as
// the spans a read decodes whole (index_spans).
std::shared_ptr<ZstdFrameSource> MakeFrameSource(ByteSourcePtr compressed, std::vector<ZstdFrame> frames,
                                                 const DecoderOptions& options) {
  auto source = std::make_shared<ZstdFrameSource>(std::move(compressed), std::move(frames), options.segment_cache_bytes,
                                                  options.scheduler);
  if (options.record_compressed) source->RecordNeeded(options.record_compressed, options.record_unit);
  if (options.index_spans) options.index_spans(source->FrameSpans());
  return source;
}

// A checkpoint index's segments as compressed bytes, in order: from each
// checkpoint's block to the next's (a segment decoded from an earlier frame
// start also needs the bytes from there: not named, a rare case).
std::vector<std::pair<uint64_t, uint64_t>> CheckpointSpans(const ZstdCheckpointIndex& index) {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (size_t k = 0; k < index.checkpoints.size(); ++k) {
    spans.emplace_back(index.checkpoints[k].in, index.SegmentInput(k).second);
  }
  return spans;
}

// A single-frame layer's checkpoint index, if there is one; its reads are
// verified, and one that proves the index wrong drops it (marking the file)
// for the streaming decoder.
std::optional<ByteSourcePtr> OpenZstdCheckpoints(const ByteSourcePtr& compressed, const DecoderOptions& options) {
  const std::string& path = options.zstd_checkpoint_path;
  if (compressed->size() == ByteSource::kUnknownSize) return std::nullopt;
  std::string what;
  std::optional<Result<ZstdCheckpointIndex>> index = FindZstdCheckpoints(*compressed, options, &what);
  if (!index) return std::nullopt;
  Result<std::shared_ptr<ZstdCheckpointSource>> source =
      index->ok() ? ZstdCheckpointSource::Open(compressed, std::move(*index).value(), options.segment_cache_bytes,
                                               options.scheduler)
                  : Result<std::shared_ptr<ZstdCheckpointSource>>(index->status());
  if (!source.ok()) {
    spdlog::warn("zstd layer {}: ignoring its checkpoint index {}: {}", compressed->Describe(), what,
                 source.status().ToString());
    return std::nullopt;
  }
  spdlog::debug("zstd layer {}: {} checkpoints from {}", compressed->Describe(), (*source)->checkpoint_count(), what);
  if (options.index_spans) options.index_spans(CheckpointSpans((*source)->index()));
  if (options.record_compressed) (*source)->RecordNeeded(options.record_compressed, options.record_unit);
  ByteSourcePtr primary = WithRawSpans(std::move(source).value(), compressed, options, "zstd");
  DecoderOptions without = options;
  without.zstd_checkpoint_path.clear();
  without.zstd_checkpoint_blob.reset();
  without.raw_spans.reset();
  return ByteSourcePtr(std::make_shared<IndexFallbackSource>(
      std::move(primary),
      [compressed, without, path]() -> Result<ByteSourcePtr> {
        // The mark keeps a later mount from installing or reading the artifact's index again.
        if (Status s = path.empty() ? Status::Ok() : WriteFileAtomically(path, std::string(kWrongIndexMark));
            !s.ok()) {
          spdlog::warn("cannot mark {} wrong: {}", path, s.ToString());
        }
        return OpenDecoded(compressed, Compression::kZstd, without);
      },
      "zstd checkpoint index"));
}

Result<ByteSourcePtr> OpenZstd(ByteSourcePtr compressed, const DecoderOptions& options, bool use_saved) {
  if (use_saved) {
    if (std::optional<ByteSourcePtr> checkpoints = OpenZstdCheckpoints(compressed, options)) return *checkpoints;
  }
  const std::string& saved_path = options.frame_table_path;
  if (use_saved && !saved_path.empty() && compressed->size() != ByteSource::kUnknownSize) {
    auto saved = ZstdFrameFile::Read(saved_path, compressed->size());
    if (saved.ok() && Seekable(*saved)) {
      spdlog::debug("zstd layer {}: {} frames from {}", compressed->Describe(), saved->size(), saved_path);
      const bool vouched = HasCrcs(*saved);
      ByteSourcePtr frames = MakeFrameSource(compressed, std::move(*saved), options);
      if (!vouched) return frames;  // a table this node found itself
      // A table from an acceleration artifact: a frame that fails its CRC
      // (or does not decode) proves it wrong, and the blob is located anew.
      return ByteSourcePtr(std::make_shared<IndexFallbackSource>(
          std::move(frames), [compressed, options]() { return OpenZstd(compressed, options, false); },
          "zstd frame table"));
    }
    if (!saved.ok() && saved.status().code() != Code::kNotFound) {
      spdlog::warn("zstd layer {}: ignoring its saved frame table: {}", compressed->Describe(),
                   saved.status().ToString());
    }
  }
  OCIFS_ASSIGN_OR_RETURN(LocatedFrames located, Locate(*compressed));
  if (located.frames) {
    // Saved also when read from a seek table: the next open uses it, and does not fill again.
    if (!saved_path.empty()) {
      Status st = ZstdFrameFile::Write(saved_path, compressed->size(), *located.frames);
      if (!st.ok()) spdlog::warn("zstd layer {}: cannot save its frame table: {}", compressed->Describe(), st.ToString());
    }
    const uint64_t blob_size = compressed->size();
    auto frames = MakeFrameSource(std::move(compressed), std::move(*located.frames), options);
    // A first open only: not the fallback from an artifact's wrong table (use_saved false), which runs in a read.
    if (use_saved && options.background_pass && blob_size != ByteSource::kUnknownSize &&
        blob_size <= options.fill_frames_up_to) {
      // Half a pass's read-ahead: shorter runs in flight, the memory they hold beside the frames'
      // (peak PSS 67.8 -> 57.6 MiB on the bench's seekable layer, the same time; docs/benchmarks.md).
      auto start = [weak = std::weak_ptr<ZstdFrameSource>(frames), ahead = options.pass_read_ahead / 2] {
        if (auto source = weak.lock()) source->StartFill(ahead);
      };
      if (options.defer_fill) {
        options.defer_fill(std::move(start));
      } else {
        start();
      }
    }
    return ByteSourcePtr(std::move(frames));
  }
  const uint64_t known = located.stream_size;
  if (known == ByteSource::kUnknownSize && compressed->size() != ByteSource::kUnknownSize) {
    // A single frame too large to walk at open: its header may still carry the size,
    // which is the layer's size if the frame reaches the end of the blob. We cannot
    // know that without walking it, so the size stays unknown until the pass ends.
    spdlog::debug("zstd layer {}: streaming decoder, size known after the first pass", compressed->Describe());
  }
  auto store = options.decoded_store ? options.decoded_store : MakeMemoryDecodedStore(kDefaultChunkSize);
  auto source = std::make_shared<ZstdStreamSource>(std::move(compressed), std::move(store), known,
                                                   options.segment_cache_bytes, options.scheduler,
                                                   options.pass_read_ahead);
  if (options.background_pass) source->StartPass();
  return ByteSourcePtr(std::move(source));
}

}  // namespace

Result<ByteSourcePtr> OpenDecoded(ByteSourcePtr compressed, Compression compression, const DecoderOptions& options) {
  if (!compressed) return InvalidArgument("OpenDecoded: no compressed source");
  switch (compression) {
    case Compression::kNone:
      return compressed;
    case Compression::kGzip: {
      // An eStargz layer's TOC locates its chunks; without one, or with one unusable, as any gzip blob.
      auto estargz = OpenEstargz(compressed, options, kMaxFrameBytes);
      if (!estargz.ok()) return estargz.status();
      if (estargz->has_value()) return estargz->value();
      OCIFS_ASSIGN_OR_RETURN(std::shared_ptr<GzipSource> gzip, GzipSource::Open(compressed, options));
      if (!gzip->loaded_from_file()) return ByteSourcePtr(std::move(gzip));
      ByteSourcePtr primary = WithRawSpans(gzip, compressed, options, "gzip");
      // The loaded index may prove wrong: then a first pass reads the layer and saves a new one over it.
      return ByteSourcePtr(std::make_shared<IndexFallbackSource>(
          std::move(primary), [compressed = std::move(compressed), options]() -> Result<ByteSourcePtr> {
            OCIFS_ASSIGN_OR_RETURN(std::shared_ptr<GzipSource> rebuilt,
                                   GzipSource::Open(compressed, options, GzipSource::SavedIndex::kRebuild));
            return ByteSourcePtr(std::move(rebuilt));
          }));
    }
    case Compression::kZstd: {
      // A zstd:chunked layer's TOC locates its frames; without one, or with one unusable, as any zstd blob.
      OCIFS_ASSIGN_OR_RETURN(std::optional<ByteSourcePtr> chunked,
                             OpenZstdChunked(compressed, options, kMaxFrameBytes));
      if (chunked) return std::move(*chunked);
      return OpenZstd(std::move(compressed), options, /*use_saved=*/true);
    }
  }
  return InvalidArgument("OpenDecoded: unknown compression");
}

Result<std::optional<std::vector<ZstdFrame>>> LocateZstdFrames(const ByteSource& compressed) {
  OCIFS_ASSIGN_OR_RETURN(LocatedFrames located, Locate(compressed));
  return std::move(located.frames);
}

}  // namespace ocifs
