#include "stack/accel_builder.h"
#include "base/crc32.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "base/whole_file.h"
#include "decode/decoder.h"
#include "decode/gzip_index.h"
#include "decode/gzip_block_checkpoints.h"
#include "decode/gzip_dense_checkpoints.h"
#include "decode/gzip_index_v4.h"
#include "decode/gzip_sparse_windows.h"
#include "decode/deflate_stored_blocks.h"
#include "decode/zstd_checkpoint_builder.h"
#include "decode/zstd_checkpoint_index_v2.h"
#include "decode/estargz_toc.h"
#include "decode/zstd_chunked_toc.h"
#include "decode/zstd_frame_file.h"
#include "image/tar_index_file.h"
#include "registry/digest.h"
#include "registry/fetch_stats.h"
#include "stack/accel_profile.h"
#include "stack/image_stack.h"

namespace ocifs {
namespace {

// A directory made by mkdtemp, removed with everything in it when destroyed.
class TempDirectory {
 public:
  static Result<TempDirectory> Make(const std::string& parent) {
    std::string pattern = parent + "/oci-fs-accelerate.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return ErrnoError("cannot make a directory in " + parent, errno);
    return TempDirectory(std::move(pattern));
  }
  TempDirectory(TempDirectory&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  TempDirectory& operator=(TempDirectory&&) = delete;
  ~TempDirectory() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) spdlog::warn("could not remove {}: {}", path_, ec.message());
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDirectory(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Calls `report` twice a second from its own thread until destroyed.
class ProgressTicker {
 public:
  explicit ProgressTicker(std::function<void()> report) : report_(std::move(report)) {
    if (report_) thread_ = std::thread([this] { Run(); });
  }
  ~ProgressTicker() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return done_; })) {
      lock.unlock();
      report_();
      lock.lock();
    }
  }
  std::function<void()> report_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::thread thread_;
};

// The checksum block size of the gzip indexes accelerate ships (bytes).
constexpr uint32_t kShippedGzipBlockSize = 16u << 10;

// The compressed byte ranges of the chunks `profiles` name, per blob digest.
std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>, std::less<>> CheckpointTargets(
    const std::vector<AccessProfile>& profiles) {
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>, std::less<>> targets;
  for (const AccessProfile& profile : profiles) {
    for (const auto& [digest, chunks] : profile.blobs) {
      auto& ranges = targets[digest];
      for (uint64_t chunk : chunks) ranges.emplace_back(chunk * profile.chunk_size, (chunk + 1) * profile.chunk_size);
    }
  }
  return targets;
}

// Frames up to this size are read whole: the layer gets its frame table. A
// layer of larger frames (the zstd seekable format's 4 MiB, say) gets
// checkpoints inside them, as a single frame does, so a small read neither
// fetches nor decodes a whole frame.
constexpr uint64_t kMaxWholeFrameBytes = 1ull << 20;

// The frame table of a zstd layer read at random by frames of at most
// kMaxWholeFrameBytes, each frame with the CRC-32 of its decoded bytes (read
// through `decoded`, the layer's decoder); nullopt for a layer read as a
// stream or of larger frames.
Result<std::optional<std::string>> ZstdFrameTable(const LayerView& layer) {
  OCIFS_ASSIGN_OR_RETURN(std::optional<std::vector<ZstdFrame>> frames, LocateZstdFrames(*layer.blob));
  if (!frames || std::any_of(frames->begin(), frames->end(),
                             [](const ZstdFrame& f) { return f.out_size > kMaxWholeFrameBytes; })) {
    return std::optional<std::string>();
  }
  std::vector<uint8_t> buf;
  for (ZstdFrame& f : *frames) {
    buf.resize(static_cast<size_t>(f.out_size));
    OCIFS_RETURN_IF_ERROR(ReadExactly(*layer.decoded, f.out_offset, buf));
    f.crc32 = Crc32(buf);
  }
  return std::optional<std::string>(ZstdFrameFile::Encode(layer.blob->size(), *frames));
}

// Fits `profiles` to the version 4 gzip index `bytes` of layer `digest`
// (FitProfileToGzipIndex): where its windows lie is read back from its table.
Status FitProfiles(std::span<const uint8_t> bytes, const std::string& digest, uint64_t layer_size,
                   const RawSpanTable* raw, std::vector<AccessProfile>& profiles) {
  if (profiles.empty()) return Status::Ok();
  const std::string what = "the gzip index of layer " + digest;
  OCIFS_ASSIGN_OR_RETURN(uint64_t table, GzipIndexV4::TableLength(bytes, bytes.size(), what));
  OCIFS_ASSIGN_OR_RETURN(GzipIndex index,
                         GzipIndexV4::ParseTable(bytes.first(static_cast<size_t>(table)), bytes.size(), nullptr, what));
  const ShippedGzipIndex shipped{digest, layer_size, &index, Sha256Digest(bytes), raw};
  for (AccessProfile& profile : profiles) profile = FitProfileToGzipIndex(profile, shipped);
  return Status::Ok();
}

// Fits `profiles` to the version 2 zstd checkpoint index `bytes` of layer
// `digest` (FitProfileToZstdCheckpoints): where its dictionaries lie is read
// back from its table.
Status FitZstdProfiles(std::string_view bytes, const std::string& digest, uint64_t layer_size,
                       const RawSpanTable* raw, std::vector<AccessProfile>& profiles) {
  if (profiles.empty()) return Status::Ok();
  const auto data = std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  OCIFS_ASSIGN_OR_RETURN(uint64_t table, ZstdCheckpointIndexV2::TableLength(data, data.size()));
  OCIFS_ASSIGN_OR_RETURN(ZstdCheckpointIndex index,
                         ZstdCheckpointIndexV2::ParseTable(data.first(static_cast<size_t>(table)), data.size(), nullptr));
  const ShippedZstdCheckpoints shipped{digest, layer_size, &index, Sha256Digest(data), raw};
  for (AccessProfile& profile : profiles) profile = FitProfileToZstdCheckpoints(profile, shipped);
  return Status::Ok();
}

// Ships layer `digest`'s raw span table, if it has one that fits a piece.
void AddRawSpans(const RawSpanTable* raw, const std::string& digest, uint64_t layer_size, AccelPieces& pieces) {
  if (raw == nullptr) return;
  std::string bytes = raw->Serialize();
  if (bytes.size() <= accel::kMaxPieceBytes) pieces.raw_spans.push_back({digest, layer_size, std::move(bytes)});
}

}  // namespace

Result<AccelPieces> BuildAccelPieces(const Reference& ref, const AccelBuildOptions& options) {
  OCIFS_ASSIGN_OR_RETURN(TempDirectory work, TempDirectory::Make(options.work_dir));
  StackOptions stack_options;
  stack_options.registry = options.registry;
  stack_options.cache_dir = work.path();
  // The pass reads each layer once, in order; a gzip layer is then inflated
  // again from what the cache kept (AddSparseCheckpoints). The bound keeps the
  // usual containerDisk (a few hundred MB) whole and the disk this takes
  // bounded whatever the layers' size: a larger layer's chunks evicted are
  // fetched again.
  stack_options.cache_bytes = uint64_t{2} << 30;
  stack_options.cluster_cache = false;
  stack_options.blob_reads.readahead.max = uint64_t{16} << 20;
  stack_options.accel.mode = AccelChoice::Mode::kOff;
  stack_options.ready_at_disk_entry = false;  // index every layer to its end
  stack_options.keep_pass_output = false;     // nothing reads behind the passes
  stack_options.gzip_checkpoint_targets = CheckpointTargets(options.profiles);
  // A mount verifies whole checksum blocks, so a read inflates (and fetches)
  // from its block's start: blocks of a quarter of a mount's own index's keep
  // a profiled read's inflate close to its bytes (GzipIndex::kDefaultBlockSize).
  stack_options.gzip_checksum_block_size = kShippedGzipBlockSize;

  AccelPieces pieces;
  struct Layer {
    Compression compression = Compression::kNone;
    std::string index_path;                // where its gzip index is saved
    std::optional<std::string> zstd_frames;  // its frame table, if read by frames
    std::optional<std::string> zstd_checkpoints;  // its checkpoint index, if read as a stream
    std::optional<RawSpanTable> raw_spans;        // with it: its raw blocks, if any
    std::optional<GzipIndex> gzip_index;   // gzip: its index, windows made sparse
    std::string why_none = "uncompressed: read at random as it is";  // a layer that needs no index
  };
  std::vector<Layer> layers;
  {
    const uint64_t start = GlobalFetchStats().blob_bytes.load();
    std::atomic<uint64_t> total{0};
    ProgressTicker ticker(options.progress ? std::function<void()>([&] {
      options.progress(GlobalFetchStats().blob_bytes.load() - start, total.load());
    })
                                           : nullptr);
    // Open reads every layer's tar to its end: each gzip layer's pass runs
    // through, and saves its index.
    auto stack = ImageStack::Open(ref, stack_options);
    if (!stack.ok()) return stack.status();
    pieces.image = (*stack)->image();
    for (const LayerView& v : (*stack)->layers()) {
      // Open walked every tar layer to its end (ready_at_disk_entry is off).
      if (!v.bare && !v.file && v.index && v.index->complete()) {
        std::string bytes = TarIndexFile::Encode(*v.index, "layer " + v.descriptor.digest);
        if (bytes.size() <= accel::kMaxPieceBytes) {
          pieces.tar_indexes.push_back({v.descriptor.digest, v.descriptor.size, std::move(bytes)});
        } else {
          pieces.unindexed.push_back(v.descriptor.digest + " (its tar index of " + std::to_string(bytes.size()) +
                                     " bytes is over the 64 MiB a piece may hold)");
        }
      }
      layers.push_back({v.compression, (*stack)->cache()->SidePath(v.descriptor.digest, "gzidx"), std::nullopt,
                        std::nullopt, std::nullopt, std::nullopt});
      total += v.descriptor.size;
    }
    OCIFS_RETURN_IF_ERROR((*stack)->WaitUntilIndexed());
    for (size_t i = 0; i < layers.size(); ++i) {
      if (layers[i].compression == Compression::kGzip &&
          EstargzTocDigest((*stack)->layers()[i].descriptor.annotations) &&
          !std::filesystem::exists(layers[i].index_path)) {
        // Read through its own TOC, with no first pass (docs/estargz.md): it needs no index either.
        layers[i].compression = Compression::kNone;
        layers[i].why_none = "eStargz: read at random through its own TOC on any node (docs/estargz.md)";
        continue;
      }
      const LayerView& view = (*stack)->layers()[i];
      const std::string& digest = pieces.image.layers[i].digest;
      if (layers[i].compression == Compression::kGzip) {
        auto index = GzipIndex::Load(layers[i].index_path);
        if (!index.ok()) return index.status().WithContext("layer " + digest + ": its gzip index was not built");
        // A mount fetches the windows its reads start from: only the bytes
        // the data after each checkpoint copies from are shipped.
        SparseWindowStats stats;
        OCIFS_RETURN_IF_ERROR(SparsifyGzipWindows(*view.blob, *index, "layer " + digest, &stats));
        spdlog::info("layer {}: {} of {} gzip windows sparse ({} of {} bytes referenced), {} -> {} bytes compressed",
                     digest, stats.sparse, stats.checkpoints, stats.bytes_kept, stats.window_bytes,
                     stats.zwindow_before, stats.zwindow_after);
        // Then checkpoints between them where their windows are small: a
        // read fetches and inflates ~128 KiB, not a regular span.
        DenseCheckpointStats dense;
        OCIFS_RETURN_IF_ERROR(AddSparseCheckpoints(*view.blob, *index, "layer " + digest, {}, &dense));
        spdlog::info("layer {}: {} gzip checkpoints added between them ({} candidates), {} bytes of windows",
                     digest, dense.added, dense.candidates, dense.zwindow_bytes);
        // And where the profile reads: checkpoints inside deflate blocks at
        // the checksum blocks around its regions, so a profiled read
        // inflates and fetches its own checksum blocks, not the deflate
        // blocks around them.
        if (auto it = stack_options.gzip_checkpoint_targets.find(digest);
            it != stack_options.gzip_checkpoint_targets.end() && !it->second.empty()) {
          const DecoderOptions defaults;
          BlockCheckpointStats inside;
          OCIFS_RETURN_IF_ERROR(AddBlockCheckpoints(
              *view.blob, *index,
              GzipTargetPlacer::Plan(it->second, defaults.checkpoint_target_gap,
                                     static_cast<size_t>(defaults.max_target_checkpoints),
                                     defaults.checkpoint_target_spacing),
              "layer " + digest, {}, &inside));
          spdlog::info("layer {}: {} gzip checkpoints added inside deflate blocks for the profile ({} boundaries "
                       "wanted, {} near one already, {} in stored blocks, {} failed their check), {} bytes of "
                       "windows and headers",
                       digest, inside.added, inside.wanted, inside.near_existing, inside.in_stored,
                       inside.dropped_verify, inside.zwindow_bytes);
        }
        layers[i].gzip_index = std::move(index).value();
        // Its stored blocks: a read there copies the blob's bytes (docs/raw-spans-format.md).
        auto stored = FindStoredBlocks(*view.blob);
        if (!stored.ok()) return stored.status().WithContext("layer " + digest + ": its stored blocks");
        if (!stored->spans().empty()) {
          spdlog::info("layer {}: {} stored blocks ({} bytes)", digest, stored->spans().size(), stored->raw_bytes());
          layers[i].raw_spans = std::move(stored).value();
        }
        continue;
      }
      if (layers[i].compression != Compression::kZstd) continue;
      if (HasZstdChunkedToc(view.descriptor.annotations)) {
        // Its own table of contents makes it random-access on any node (docs/zstd-chunked.md).
        layers[i].compression = Compression::kNone;  // listed with the layers that need no index
        layers[i].why_none = "zstd:chunked: read at random through its own TOC on any node (docs/zstd-chunked.md)";
        continue;
      }
      auto table = ZstdFrameTable(view);
      if (!table.ok()) return table.status().WithContext("layer " + digest);
      layers[i].zstd_frames = std::move(table).value();
      if (layers[i].zstd_frames) continue;
      // Read as a stream, or of large frames: checkpoints that restore the decoder's state.
      ZstdCheckpointOptions checkpoint_options;
      // A read fetches and decodes at most about this much beyond its own bytes (the
      // index's dictionary budget keeps it bounded where matches reach far back).
      // Bench, cold boot trace with the artifact: 1 MiB 10.1 s / 137 MiB, 256 KiB
      // 7.7 s / 120 MiB (docs/benchmarks.md, ninth session).
      checkpoint_options.spacing = 256u << 10;
      if (auto it = stack_options.gzip_checkpoint_targets.find(digest);
          it != stack_options.gzip_checkpoint_targets.end()) {
        checkpoint_options.targets = it->second;
      }
      ZstdCheckpointStats stats;
      RawSpanTable raw;
      auto built = BuildZstdCheckpoints(*view.blob, checkpoint_options, &stats, &raw);
      if (!built.ok() && built.status().code() == Code::kUnsupported) {
        pieces.unindexed.push_back(digest + " (" + built.status().message() + ")");
        continue;
      }
      if (!built.ok()) return built.status().WithContext("layer " + digest + ": its zstd checkpoints");
      // Shipped table first (version 2), so a mount reads its dictionaries lazily.
      auto index = ZstdCheckpointIndexV2::Serialize(*built);
      if (!index.ok()) return index.status().WithContext("layer " + digest + ": its zstd checkpoints");
      spdlog::info("layer {}: {} zstd checkpoints ({} dropped: {} too far back, {} not decoding exactly), {} bytes",
                   digest, stats.checkpoints, stats.dropped_reach + stats.dropped_verify, stats.dropped_reach,
                   stats.dropped_verify, index->size());
      layers[i].zstd_checkpoints = std::move(index).value();
      if (!raw.spans().empty()) {
        spdlog::info("layer {}: {} raw blocks ({} bytes)", digest, raw.spans().size(), raw.raw_bytes());
        layers[i].raw_spans = std::move(raw);
      }
    }
    if (options.progress) options.progress(GlobalFetchStats().blob_bytes.load() - start, total.load());
  }

  pieces.profiles = options.profiles;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Descriptor& layer = pieces.image.layers[i];
    const std::string& digest = layer.digest;
    switch (layers[i].compression) {
      case Compression::kNone:
        pieces.plain_layers.push_back(digest + " (" + layers[i].why_none + ")");
        break;
      case Compression::kZstd:
        if (layers[i].zstd_frames) {
          pieces.layer_indexes.push_back({LayerIndexKind::kZstdFrames, digest, layer.size, *layers[i].zstd_frames});
        } else if (layers[i].zstd_checkpoints) {
          const RawSpanTable* raw = layers[i].raw_spans ? &*layers[i].raw_spans : nullptr;
          Status fitted = FitZstdProfiles(*layers[i].zstd_checkpoints, digest, layer.size, raw, pieces.profiles);
          if (!fitted.ok()) return fitted.WithContext("layer " + digest + ": its zstd checkpoints");
          pieces.layer_indexes.push_back(
              {LayerIndexKind::kZstdCheckpointsV2, digest, layer.size, *layers[i].zstd_checkpoints});
          AddRawSpans(raw, digest, layer.size, pieces);
        }
        break;
      case Compression::kGzip: {
        // Shipped table first (version 4), so a mount reads its windows lazily.
        auto bytes = GzipIndexV4::Serialize(*layers[i].gzip_index);
        if (!bytes.ok()) return bytes.status().WithContext("layer " + digest + ": its gzip index");
        const RawSpanTable* raw = layers[i].raw_spans ? &*layers[i].raw_spans : nullptr;
        OCIFS_RETURN_IF_ERROR(FitProfiles(*bytes, digest, layer.size, raw, pieces.profiles));
        // Version 5 (checkpoints inside blocks) is its own media type: older readers skip it.
        const bool v5 = layers[i].gzip_index->has_inside_block_checkpoints();
        pieces.layer_indexes.push_back({v5 ? LayerIndexKind::kGzipIndexV5 : LayerIndexKind::kGzipIndexV4, digest, layer.size,
                                        std::string(bytes->begin(), bytes->end())});
        AddRawSpans(raw, digest, layer.size, pieces);
        break;
      }
    }
  }
  return pieces;
}

}  // namespace ocifs
