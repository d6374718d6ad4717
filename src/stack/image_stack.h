// ImageStack: the read path of one image, assembled.
//
//   registry blob -> chunk cache -> decoder -> tar index (per layer)
//     -> merged tree -> file content (SliceSource) -> disk view
//
// Thread safety: immutable after Open(); every accessor and the sources it
// hands out are safe for concurrent use. The stack owns the registry session,
// the cache handle and the layer sources; sources handed out keep what they
// need alive (shared ownership).
// Background work: every stage's tasks (first passes, fetches, the index
// check) run on one Scheduler: StackOptions::scheduler, or one the stack
// makes and stops in its destructor. A caller that passes its own stops it
// before destroying the stack (a mount does, at unmount): the index check
// otherwise waits for its layer's pass to end.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/cached_source.h"
#include "accel/accel_loader.h"
#include "cache/chunk_cache.h"
#include "decode/compression.h"
#include "image/bare_disk.h"
#include "image/merged_tree.h"
#include "image/tar_index.h"
#include "ocifs/byte_source.h"
#include "registry/image_source.h"
#include "registry/reference.h"
#include "registry/registry_options.h"
#include "sched/task_group.h"
#include "stack/accel_tar_index.h"

namespace ocifs {

struct StackOptions {
  // Runs every background task of the stack's stages; null: the stack makes its own.
  std::shared_ptr<Scheduler> scheduler;
  RegistryOptions registry;
  std::string cache_dir;                    // "" = no on-disk cache (indexes are not kept either)
  uint64_t cache_bytes = 10ull << 30;       // bound of the on-disk cache
  uint32_t chunk_size = 1u << 20;           // the cache's chunk size (ChunkCacheOptions)
  uint64_t memory_cache_bytes = 2ull << 20;  // decompressed qcow2 clusters kept in memory
  // Keep decompressed qcow2 clusters in the on-disk cache too (chunks of the
  // cluster size, same directory and bound), so page-cache refills and later
  // mounts read them instead of inflating again. Needs cache_dir.
  bool cluster_cache = true;
  // How each layer blob is read through the cache: read-ahead on sequential
  // access, background fetch threads, and prefetch_all (fetch the whole blob
  // in idle time, yielding to reads). The window is clamped to cache_bytes / 16,
  // and read-ahead and prefetch_all are off when that is under two chunks.
  FetchPolicy blob_reads;
  // Disk mode: when a layer can only be read as a stream (a gzip layer
  // with no index yet, a single-frame zstd layer), stop indexing it at the
  // disk's entry so the mount is ready at once (the lowest such layer with a
  // disk candidate; the layers above it are indexed whole); the rest of the layer is
  // indexed in the background and, should it contradict the disk chosen
  // (a second file under disk/, say), the disk's reads fail from then on.
  bool ready_at_disk_entry = false;
  // A gzip layer's first pass keeps its output in the cache ("<digest>:decoded"
  // chunks, DecoderOptions::keep_pass_output), so the reads behind it are
  // copies, not inflates from a checkpoint. Needs cache_dir.
  bool keep_pass_output = true;
  std::string disk_path;  // as --disk-path; "" = the one file under disk/
  // As --disk: the bare disk layer to serve, by io.kubevirt.disk.name or
  // title; "" = the only one (image/bare_disk.h PickDisk).
  std::string disk_name;
  // The acceleration artifact to use (docs/accel-format.md); needs cache_dir.
  // Its profile, if it has one, is prefetched from the start unless
  // blob_reads.profile is set or accel_profile is false.
  AccelChoice accel;
  bool accel_profile = true;
  // Per gzip layer (by blob digest): compressed ranges its first pass
  // places extra checkpoints around (DecoderOptions::checkpoint_targets; the
  // chunks of an access profile, for `oci-fs accelerate`). Empty for a mount.
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>, std::less<>> gzip_checkpoint_targets;
  // The block size of the checksums a gzip layer's first pass saves in its
  // index (DecoderOptions::checksum_block_size); 0: the decoder's default.
  uint32_t gzip_checksum_block_size = 0;
};

struct LayerView {
  Descriptor descriptor;
  Compression compression = Compression::kNone;
  ByteSourcePtr blob;     // the compressed blob, through the cache when there is one
  std::shared_ptr<CachedSource> cached;  // that cache stage (blob), or null without a cache dir
  ByteSourcePtr decoded;  // the layer's tar stream
  std::shared_ptr<const TarIndex> index;
  // Set when `index` is an acceleration artifact's: its files are checked
  // entry by entry on their first read (stack/accel_tar_index.h).
  std::shared_ptr<const AccelTarIndex> accel_tar;
  bool index_partial = false;  // stopped at the disk's entry (ready_at_disk_entry)
  // A layer that is a disk by itself (no tar; `decoded` is the disk file and
  // `index` is empty): by its media type, title or bytes (image/bare_disk.h).
  std::optional<BareDiskLayer> bare;
  // A file of an ORAS-style artifact, neither a disk nor a tar (`index` is
  // empty; image/bare_disk.h IsArtifactFile): not served.
  std::optional<ArtifactFile> file;
};

class ImageStack {
 public:
  // Resolves `ref`, opens every layer and indexes its tar (loading a saved
  // index from the cache when there is one, else the acceleration artifact's,
  // checked file by file: LayerView::accel_tar), then merges the layers.
  [[nodiscard]] static Result<std::unique_ptr<ImageStack>> Open(const Reference& ref,
                                                                const StackOptions& options);
  ~ImageStack();
  ImageStack(const ImageStack&) = delete;
  ImageStack& operator=(const ImageStack&) = delete;

  Scheduler& scheduler() const { return *scheduler_; }

  const ResolvedImage& image() const { return image_; }
  // Blocks until every layer's background index (a gzip layer's first pass)
  // is complete and saved; the first failure. ByteSource::WaitUntilIndexed.
  [[nodiscard]] Status WaitUntilIndexed() const;
  // Blocks until every cache stage's owed fetches (the rest of the chunks
  // reads were served around, CachedSource::FinishOwedFetches) are stored: a
  // clean unmount calls it after the last read, before the scheduler stops,
  // so a remount finds every chunk the reads needed. Then lets each layer's
  // first pass that is nearly done end (ByteSource::FinishNearlyDone, at
  // most kNearlyDonePassBudget each), so its index is saved, not dropped.
  void FinishOwedFetches() const;
  static constexpr std::chrono::milliseconds kNearlyDonePassBudget{5000};
  // What the stack took from an acceleration artifact (empty: none).
  const AccelUse& accel() const { return accel_; }
  const MergedTree& tree() const { return *tree_; }
  const std::vector<LayerView>& layers() const { return layers_; }
  const std::shared_ptr<ChunkCache>& cache() const { return cache_; }
  // Counters of the cluster cache (StackOptions::cluster_cache) of the disks
  // opened so far; zeros when there is none.
  struct ClusterCacheStats {
    uint64_t hits = 0;     // clusters (and raw pieces) read back from disk
    uint64_t dropped = 0;  // decompressed pieces not kept: writing them failed (disk full, I/O error)
    uint64_t kept = 0;     // pieces this mount decompressed and kept
    uint64_t claim_waits = 0;  // misses that waited for another mount making the same piece
  };
  ClusterCacheStats cluster_cache_stats() const;

  // The bytes of a regular file of the merged tree.
  [[nodiscard]] Result<ByteSourcePtr> FileContent(const Node& node) const;

  // The VM disk (KubeVirt's contract: the one regular file under disk/, or
  // options.disk_path), as raw bytes: qcow2 is translated, anything else is raw.
  // An image with bare disk layers (disks()) serves one of those instead
  // (options.disk_name, or the only one), unless options.disk_path is set.
  [[nodiscard]] Result<ByteSourcePtr> OpenDisk() const;
  // The bare disk layers, bottom to top; their names are unique (Open checks).
  const std::vector<BareDiskLayer>& disks() const { return disks_; }
  // The layers that are other files of the artifact (LayerView::file), bottom to top.
  const std::vector<ArtifactFile>& files() const { return files_; }
  // `disk` as the guest sees it (raw; qcow2 translated), with the cache,
  // kept pieces and holes a containerDisk's disk gets (bare_disk_stack.cc).
  [[nodiscard]] Result<ByteSourcePtr> OpenBareDisk(const BareDiskLayer& disk) const;
  // The decompressed bytes of `disk`'s layer, as stored (qcow2 not translated;
  // `oci-fs cat`), sized as BareDiskSource says (need_size: wait for a
  // stream of unknown size to end rather than leave the size unknown).
  [[nodiscard]] Result<ByteSourcePtr> BareDiskFile(const BareDiskLayer& disk, bool need_size) const;
  // An access profile shipped inside the image (docs/profile-format.md):
  // the regular file kShippedProfilePath of the merged tree, typically a
  // small layer added on top of the containerDisk. Loads it and starts
  // fetching its chunks of each layer ahead (as --prefetch-profile does).
  // kNotFound if the image ships none; kCorrupt naming the file if malformed.
  [[nodiscard]] Result<AccessProfile> StartShippedProfile() const;
  static constexpr std::string_view kShippedProfilePath = ".oci-fs/profile";
  static constexpr uint64_t kMaxShippedProfileBytes = 16ull << 20;
  // Chunk size of what is kept of a raw disk in a compressed layer (StoredChunkSource).
  static constexpr uint32_t kRawChunkBytes = 64u << 10;
  // A layer read that misses also fetches the rest of its aligned group of
  // this many bytes (FetchPolicy::miss_group_bytes): with chunks
  // smaller than this, a miss still brings its neighbourhood, as 1 MiB
  // chunks do, while a profile fetches only the small chunks it names.
  static constexpr uint64_t kMissGroupBytes = 1ull << 20;

  // A first pass's stream started at a layer's open (CachedSource::Prefetch):
  // long enough to be a stream's hint, short enough to waste little if no
  // pass follows.
  static constexpr uint64_t kEarlyStreamBytes = 8ull << 20;

 private:
  ImageStack() = default;
  [[nodiscard]] Result<LayerView> OpenLayer(const Descriptor& layer, size_t position, bool stop_at_disk) const;
  // The cache stage of the artifact's index blob `digest` (AccelInstallHelpers::cache_index).
  std::shared_ptr<CachedSource> CacheIndexBlob(const std::string& digest, ByteSourcePtr raw);
  // OpenLayer's part for a layer classified as a bare disk (`view.bare`):
  // checks the blob holds what its descriptor says and opens its decoder.
  [[nodiscard]] Status OpenBareLayer(LayerView& view, const struct DecoderOptions& decoder_options) const;
  // The disk view over `file`, the data at `data_offset` of layer `layer`:
  // OpenDiskView with the kept clusters and pieces keyed by that place.
  [[nodiscard]] Result<ByteSourcePtr> ViewOfFile(ByteSourcePtr file, size_t layer, uint64_t data_offset,
                                                 bool check_trailer, const std::string& what) const;
  // Completes layer `partial`'s index in a kFirstPass task and poisons `disk`
  // if the complete image locates another disk (or none).
  void VerifyInBackground(const Node& served, std::shared_ptr<class GuardedSource> disk, ByteSourcePtr file,
                          size_t partial) const;

  // A store of decompressed disk data under `key`, pieces of `chunk_size`
  // bytes (a qcow2 cluster size or kRawChunkBytes): the cache's kept-piece
  // file for that key (KeptPieceFile); nullptr without a cache or when that
  // size is outside 64 KiB..16 MiB.
  std::shared_ptr<class DecodedChunkStore> KeptStore(const std::string& key, uint32_t chunk_size) const;

  std::shared_ptr<Scheduler> scheduler_;
  bool owns_scheduler_ = false;  // made here: stopped by the destructor
  StackOptions options_;
  std::unique_ptr<ImageSource> source_;
  std::shared_ptr<ChunkCache> cache_;
  mutable std::mutex cached_mu_;
  mutable std::vector<std::shared_ptr<CachedSource>> cached_;  // every cache stage made; guarded by cached_mu_
  mutable std::mutex kept_files_mu_;
  mutable std::vector<std::shared_ptr<class KeptPieceFile>> kept_files_;  // guarded by kept_files_mu_
  ResolvedImage image_;
  AccelUse accel_;
  std::vector<LayerView> layers_;
  std::optional<MergedTree> tree_;
  // Frame layers' fills (DecoderOptions::defer_fill), started once Open has
  // read what it needs; one handed over later (a decoder reopened in a read,
  // after an artifact's index proved wrong) starts at once.
  void DeferFill(std::function<void()> start) const;
  mutable std::mutex fills_mu_;
  mutable bool fills_started_ = false;                         // guarded by fills_mu_
  mutable std::vector<std::function<void()>> deferred_fills_;  // guarded by fills_mu_
  std::vector<BareDiskLayer> disks_;
  std::vector<ArtifactFile> files_;
  // The stack's own tasks: the index check of a stack ready at the disk's entry (kFirstPass). Last.
  std::unique_ptr<TaskGroup> tasks_;
};

}  // namespace ocifs
