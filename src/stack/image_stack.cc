#include "stack/image_stack.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>

#include "base/file_lock.h"
#include "cache/kept_piece_file.h"
#include "cache/cache_key.h"
#include "cache/background_fill.h"
#include "cache/cached_source.h"
#include "decode/decoder.h"
#include "decode/estargz_toc.h"
#include "decode/zstd_chunked_toc.h"
#include "disk/disk_format.h"
#include "disk/disk_view.h"
#include "disk/stored_chunk_source.h"
#include "image/disk_locator.h"
#include "stack/accel_profile.h"
#include "stack/cache_decoded_store.h"
#include "stack/guarded_source.h"

namespace ocifs {

Result<std::unique_ptr<ImageStack>> ImageStack::Open(const Reference& ref, const StackOptions& options) {
  std::unique_ptr<ImageStack> stack(new ImageStack());
  stack->options_ = options;
  stack->scheduler_ = options.scheduler;
  if (!stack->scheduler_) {
    stack->scheduler_ = std::make_shared<Scheduler>();
    stack->owns_scheduler_ = true;
  }
  stack->tasks_ = std::make_unique<TaskGroup>(stack->scheduler_, "image stack");
  if (!options.cache_dir.empty()) {
    ChunkCacheOptions cache_options;
    cache_options.dir = options.cache_dir;
    cache_options.max_bytes = options.cache_bytes;
    cache_options.chunk_size = options.chunk_size;
    OCIFS_ASSIGN_OR_RETURN(stack->cache_, ChunkCache::OpenShared(cache_options));
  }
  RegistryOptions registry = options.registry;
  if (stack->cache_ && registry.small_blob_dir.empty()) registry.small_blob_dir = options.cache_dir + "/configs";
  OCIFS_ASSIGN_OR_RETURN(stack->source_, OpenImageSource(ref, registry));
  // The acceleration artifact is looked up beside the config's fetch.
  std::optional<Result<AccelCandidate>> candidate;
  auto beside_config = [&](const ResolvedImage& without_config) {
    if (stack->cache_) {
      candidate.emplace(FindAccelForMount(options.accel, *stack->source_, without_config, registry, *stack->cache_));
    }
  };
  OCIFS_ASSIGN_OR_RETURN(stack->image_, stack->source_->Resolve(beside_config));
  if (stack->cache_) {
    // Before the layers open: their decoders load the gzip indexes it installs.
    AccelInstallHelpers helpers;
    helpers.pool = &stack->scheduler_->fetch_pool();
    std::vector<std::shared_ptr<CachedSource>> index_blobs;
    helpers.cache_index = [&](const std::string& digest, ByteSourcePtr raw) {
      index_blobs.push_back(stack->CacheIndexBlob(digest, std::move(raw)));
      return ByteSourcePtr(index_blobs.back());
    };
    helpers.index_head_bytes = stack->cache_->chunk_size();
    if (!candidate) {
      candidate.emplace(FindAccelForMount(options.accel, *stack->source_, stack->image_, registry, *stack->cache_));
    }
    OCIFS_ASSIGN_OR_RETURN(stack->accel_, InstallAccel(options.accel, std::move(*candidate), *stack->source_,
                                                       stack->image_, *stack->cache_, helpers));
    if (stack->accel_.profile && options.accel_profile && !options.blob_reads.profile) {
      spdlog::info("prefetching the access profile of {} ({} chunks)", stack->accel_.artifact,
                   stack->accel_.profile->ChunkCount());
      stack->options_.blob_reads.profile = stack->accel_.profile;
    }
    // A profile fitted to an artifact's index names the windows its spans
    // need (docs/accel-format.md): they come with the layer's pieces.
    if (const auto& profile = stack->options_.blob_reads.profile) {
      for (const auto& index : index_blobs) index->StartProfile(*profile);
    }
  }
  std::vector<const TarIndex*> indexes;
  // One stream layer at most may stop at the disk's entry: the lowest one
  // holding a disk candidate (the layers above it are small in a containerDisk
  // with a shipped profile, say, and are indexed whole).
  bool stopped = false;
  for (size_t i = 0; i < stack->image_.layers.size(); ++i) {
    OCIFS_ASSIGN_OR_RETURN(LayerView view,
                           stack->OpenLayer(stack->image_.layers[i], i, options.ready_at_disk_entry && !stopped));
    stopped = stopped || view.index_partial;
    if (view.bare) stack->disks_.push_back(*view.bare);
    if (view.file) stack->files_.push_back(*view.file);
    stack->layers_.push_back(std::move(view));
  }
  OCIFS_RETURN_IF_ERROR(CheckDiskNames(stack->disks_).WithContext(ref.ToString()));
  for (const LayerView& view : stack->layers_) indexes.push_back(view.index.get());
  OCIFS_ASSIGN_OR_RETURN(MergedTree tree, MergedTree::Build(indexes));
  stack->tree_.emplace(std::move(tree));
  // The stack's own reads are done: the frame layers' fills may have the link.
  std::vector<std::function<void()>> fills;
  {
    std::lock_guard lock(stack->fills_mu_);
    stack->fills_started_ = true;
    fills.swap(stack->deferred_fills_);
  }
  for (auto& start : fills) start();
  return stack;
}

namespace {

// True when reading `decoded` far ahead means waiting for a sequential pass.
bool IsStream(const ByteSource& decoded) { return decoded.access() == ByteSource::Access::kStream; }

// Whether `e` is an entry LocateDisk could pick: `disk_path`, or a file (or a
// link to one) directly under disk/.
bool IsDiskCandidate(const TarEntry& e, const std::string& disk_path) {
  if (!disk_path.empty()) return e.path == NormalizePath(disk_path);
  if (e.type != EntryType::kFile && e.type != EntryType::kHardlink && e.type != EntryType::kSymlink) return false;
  return e.path.rfind("disk/", 0) == 0 && e.path.find('/', 5) == std::string::npos;
}

// Whether a first pass will read `layer` whole from its first byte: a gzip or
// zstd layer with no index of this node's, none of the artifact's, and no TOC
// annotation (eStargz, zstd:chunked).
bool FirstPassFromTheStart(const Descriptor& layer, LayerCompression declared, const DecoderOptions& o) {
  if (!o.background_pass) return false;
  // A layer with its own table of contents is read through it, not by a pass.
  if (EstargzTocDigest(layer.annotations) || HasZstdChunkedToc(layer.annotations)) return false;
  auto exists = [](const std::string& path) {
    struct stat st {};
    return !path.empty() && ::stat(path.c_str(), &st) == 0;
  };
  if (declared == LayerCompression::kGzip) return !o.gzip_index_blob && !exists(o.index_path);
  if (declared == LayerCompression::kZstd) {
    return !o.zstd_checkpoint_blob && !exists(o.frame_table_path) && !exists(o.zstd_checkpoint_path) &&
           !exists(o.zstd_chunked_toc_path);
  }
  return false;
}

}  // namespace

void ImageStack::DeferFill(std::function<void()> start) const {
  {
    std::lock_guard lock(fills_mu_);
    if (!fills_started_) {
      deferred_fills_.push_back(std::move(start));
      return;
    }
  }
  start();
}

std::shared_ptr<CachedSource> ImageStack::CacheIndexBlob(const std::string& digest, ByteSourcePtr raw) {
  // The artifact's index, read by ranges through the cache like any blob
  // (its windows or dictionaries kept on disk and shared by other mounts):
  // read at random, so no read-ahead; a miss fetches its own bytes first.
  // Its profile starts once the artifact's profile is known (Open).
  FetchPolicy reads;
  reads.scheduler = scheduler_;
  reads.readahead.max = 0;
  auto blob = std::make_shared<CachedSource>(std::move(raw), cache_, digest,
                                             FetchPolicy::ForCache(reads, cache_->chunk_size(), options_.cache_bytes));
  std::lock_guard lock(cached_mu_);
  cached_.push_back(blob);
  return blob;
}

ImageStack::~ImageStack() {
  if (owns_scheduler_) scheduler_->Stop();  // cancels the passes the index check may wait for
  tasks_.reset();
}

Result<LayerView> ImageStack::OpenLayer(const Descriptor& layer, size_t position, bool stop_at_disk) const {
  LayerView view;
  view.descriptor = layer;
  std::string what = "layer " + layer.digest;
  OCIFS_ASSIGN_OR_RETURN(view.bare, ClassifyLayer(layer, position));
  OCIFS_ASSIGN_OR_RETURN(view.blob, source_->OpenBlob(layer));
  // A gzip layer's profile waits for its decoder's index (index_spans below),
  // so that it names the whole spans reads inflate, not only the bytes they
  // needed (docs/profile-format.md "Fetching it"): at most the open's first read later.
  // Not with the artifact's index: its profile is fitted to it already, and
  // fitting again would add each region's neighbouring spans (the units at a
  // span's edges touch the next span too).
  const std::shared_ptr<const AccessProfile> profile = options_.blob_reads.profile;
  const LayerCompression declared_compression = CompressionOfMediaType(layer.media_type);
  const bool fit_profile = cache_ && profile &&
                           (declared_compression == LayerCompression::kGzip ||
                            declared_compression == LayerCompression::kZstd) &&
                           accel_.lazy_indexes.count(layer.digest) == 0;
  if (cache_) {
    FetchPolicy reads = options_.blob_reads;
    reads.scheduler = scheduler_;
    reads.miss_group_bytes = kMissGroupBytes;
    if (fit_profile) reads.profile = nullptr;
    // Its profile, fitted to the artifact's index (gzip checkpoints, zstd
    // checkpoints), names the exact bytes each span's or segment's read reads.
    if (accel_.lazy_indexes.count(layer.digest) != 0) reads.profile_min_piece = ProfilePrefetch::kMinPieceBytes;
    view.cached = std::make_shared<CachedSource>(view.blob, cache_, layer.digest,
                                                 FetchPolicy::ForCache(reads, cache_->chunk_size(), options_.cache_bytes));
    view.blob = view.cached;
    std::lock_guard lock(cached_mu_);
    cached_.push_back(view.cached);
  }

  DecoderOptions decoder_options;
  decoder_options.scheduler = scheduler_;
  decoder_options.layer_annotations = layer.annotations;  // a zstd:chunked layer's TOC position
  if (cache_) {
    decoder_options.index_path = cache_->SidePath(layer.digest, "gzidx");
    decoder_options.pass_lease_path = cache_->LeasePath(layer.digest, "gzpass");
    decoder_options.pass_progress_path = cache_->LeasePath(layer.digest, "gzprogress");
    decoder_options.frame_table_path = cache_->SidePath(layer.digest, "zstdframes");
    decoder_options.zstd_checkpoint_path = cache_->SidePath(layer.digest, "zstdckpt");
    decoder_options.zstd_chunked_toc_path = cache_->SidePath(layer.digest, "zstdtoc");
    decoder_options.decoded_store = std::make_shared<CacheDecodedStore>(cache_, DerivedCacheKey(layer.digest, "decoded"));
    decoder_options.keep_pass_output = options_.keep_pass_output;
    // What a first pass fetches ahead must not evict what it reads next: a 16th of the cache, as read-ahead.
    decoder_options.pass_read_ahead = std::min(decoder_options.pass_read_ahead, options_.cache_bytes / 16);
    // A frame layer seen first here is fetched whole like a stream layer, if it leaves room for the rest.
    decoder_options.fill_frames_up_to = options_.cache_bytes / 2;
    decoder_options.defer_fill = [this](std::function<void()> start) { DeferFill(std::move(start)); };
    if (auto lazy = accel_.lazy_indexes.find(layer.digest); lazy != accel_.lazy_indexes.end()) {
      ByteSourcePtr blob = lazy->second.blob;  // through the cache: CacheIndexBlob
      if (lazy->second.kind == LayerIndexKind::kZstdCheckpointsV2) {
        decoder_options.zstd_checkpoint_blob = std::move(blob);
        decoder_options.zstd_checkpoint_from = lazy->second.from;
      } else {
        decoder_options.gzip_index_blob = std::move(blob);
        decoder_options.gzip_index_name = lazy->second.digest;
        decoder_options.gzip_index_from = lazy->second.from;
      }
    }
    if (auto raw = accel_.raw_spans.find(layer.digest); raw != accel_.raw_spans.end()) {
      decoder_options.raw_spans = raw->second;
    }
  }
  if (const std::shared_ptr<AccessRecorder>& recorder = options_.blob_reads.recorder) {
    // A gzip layer read through an index, and a zstd layer read by frames,
    // report the compressed bytes each read needed, not the whole spans
    // they decoded (docs/profile-format.md).
    decoder_options.record_compressed = [recorder, key = layer.digest](uint64_t offset, uint64_t length) {
      recorder->TouchNeeded(key, offset, length);
    };
    decoder_options.record_unit = recorder->unit();
  }
  if (fit_profile) {
    decoder_options.index_spans = [cached = view.cached, profile, layer](const CompressedSpans& spans) {
      cached->StartProfile(FitProfileToSpans(*profile, layer.digest, layer.size, spans));
    };
  }
  // Without an index (a stream, another decoder), as it is; a no-op once started.
  auto start_profile = [&] {
    if (fit_profile) view.cached->StartProfile(*profile);
  };
  if (options_.gzip_checksum_block_size) decoder_options.checksum_block_size = options_.gzip_checksum_block_size;
  if (auto targets = options_.gzip_checkpoint_targets.find(layer.digest);
      targets != options_.gzip_checkpoint_targets.end()) {
    decoder_options.checkpoint_targets = targets->second;
  }
  if (view.bare) {
    OCIFS_RETURN_IF_ERROR(OpenBareLayer(view, decoder_options));
    start_profile();
    return view;
  }
  // A layer a first pass reads whole starts its stream now, beside the magic check and
  // the tar headers, not a round trip or two after them (the pass's hints continue it;
  // if no pass comes, an unannotated eStargz layer, it fetched kEarlyStreamBytes).
  // Only the process that will stream it does: a gzip layer's pass lease is taken here and
  // handed to the pass. Mounts opening one layer together would otherwise each start a
  // stream, split the chunks between them, and each fetch the bytes of the others' chunks.
  if (view.cached && FirstPassFromTheStart(layer, declared_compression, decoder_options)) {
    bool streams = true;
    if (declared_compression == LayerCompression::kGzip && !decoder_options.pass_lease_path.empty() &&
        !decoder_options.index_path.empty()) {
      bool failed = false;
      UniqueFd lease = TryLockFile(decoder_options.pass_lease_path, &failed);
      if (lease.valid()) {
        decoder_options.pass_lease_taken = std::make_shared<UniqueFd>(std::move(lease));
      } else {
        streams = failed;  // held: another process's pass streams it (this one's follows it)
      }
    }
    if (streams) view.cached->Prefetch(0, kEarlyStreamBytes);
  }
  // The bytes decide the compression; the media type only has to agree.
  auto detected = DetectCompression(*view.blob);
  if (!detected.ok()) return detected.status().WithContext(what);
  view.compression = *detected;
  LayerCompression declared = CompressionOfMediaType(layer.media_type);
  if (declared != LayerCompression::kUnknown &&
      LayerCompressionName(declared) != CompressionName(view.compression)) {
    spdlog::warn("{}: media type {} says {}, the bytes say {}; going by the bytes", what, layer.media_type,
                 LayerCompressionName(declared), CompressionName(view.compression));
  }
  auto decoded = OpenDecoded(view.blob, view.compression, decoder_options);
  // The pass lease is a gzip pass's: released if the bytes are not gzip, or the open failed.
  if (decoder_options.pass_lease_taken && (!decoded.ok() || view.compression != Compression::kGzip)) {
    decoder_options.pass_lease_taken->reset();
  }
  if (!decoded.ok()) return decoded.status().WithContext(what);
  view.decoded = *decoded;
  start_profile();
  // A layer read as a stream is read whole and in order: its record says nothing of the workload.
  if (options_.blob_reads.recorder && IsStream(*view.decoded)) options_.blob_reads.recorder->Exclude(layer.digest);

  std::string index_path = cache_ ? cache_->SidePath(layer.digest, "tarindex") : "";
  if (!index_path.empty()) {
    struct stat st;
    if (::stat(index_path.c_str(), &st) == 0) {
      auto loaded = TarIndex::Load(index_path);
      if (loaded.ok() && loaded->complete()) {
        view.index = std::make_shared<TarIndex>(std::move(loaded).value());
        spdlog::debug("{}: tar index loaded from the cache", what);
        return view;
      }
      spdlog::warn("{}: ignoring the saved tar index {}: {}", what, index_path,
                   loaded.ok() ? std::string("incomplete") : loaded.status().ToString());
    } else if (accel_.tar_indexed_layers.count(layer.digest) != 0) {
      // The artifact's, kept by ApplyAccel: no tar header is read now; each
      // file is checked on its first read (docs/accel-format.md, "Trust").
      auto accel_tar = AccelTarIndex::Load(cache_->SidePath(layer.digest, "tarindex-accel"), view.decoded,
                                           index_path, what + " (" + accel_.artifact + ")");
      if (accel_tar.ok()) {
        view.accel_tar = *accel_tar;
        view.index = (*accel_tar)->index();
        spdlog::debug("{}: listed from the tar index of {}", what, accel_.artifact);
        return view;
      }
      spdlog::warn("{}: not using the tar index of {}: {}", what, accel_.artifact, accel_tar.status().ToString());
    }
  }
  // A layer that is no tar but a qcow2 disk by itself (an ORAS-pushed file
  // with neither a disk media type nor a title): told by its first bytes.
  std::array<uint8_t, 512> head{};
  auto head_read = view.decoded->ReadAt(0, head);
  if (!head_read.ok()) return head_read.status().WithContext(what);
  if (LooksLikeBareQcow2(std::span<const uint8_t>(head.data(), *head_read))) {
    OCIFS_ASSIGN_OR_RETURN(view.bare, ClassifyLayer(Descriptor{.media_type = "application/vnd.oci.image.layer.v1.tar",
                                                               .digest = layer.digest,
                                                               .annotations = layer.annotations},
                                                    position));
    if (!view.bare) {
      view.bare = BareDiskLayer{.layer = position, .digest = layer.digest};
      view.bare->name = "disk-" + layer.digest.substr(layer.digest.find(':') + 1, 12);
    }
    view.bare->media_type = layer.media_type;
    view.bare->compression = view.compression;
    view.bare->reason = "its bytes (qcow2, no tar)";
    view.index = std::make_shared<TarIndex>(TarIndex::Empty(view.decoded->Describe()));
    spdlog::info("{}: a qcow2 disk by itself, not a tar", what);
    return view;
  }
  // A file pushed beside the disk (a README.md, a JSON file): titled, and its bytes are no tar.
  if (IsArtifactFile(layer, std::span<const uint8_t>(head.data(), *head_read))) {
    view.file = ArtifactFile{.layer = position,
                             .digest = layer.digest,
                             .title = layer.annotations.at(std::string(bare_disk::kTitleAnnotation)),
                             .media_type = layer.media_type,
                             .size = layer.size};
    view.index = std::make_shared<TarIndex>(TarIndex::Empty(view.decoded->Describe()));
    spdlog::info("{}: '{}', a file of the artifact, neither a disk nor a tar: not served", what,
                 view.file->title.substr(0, 200));
    return view;
  }
  TarIndexOptions index_options;
  if (stop_at_disk && IsStream(*view.decoded)) {
    const std::string disk_path = options_.disk_path;
    index_options.on_entry = [disk_path](const TarEntry& e) { return !IsDiskCandidate(e, disk_path); };
  }
  auto index = TarIndex::Build(*view.decoded, index_options);
  if (!index.ok()) return index.status().WithContext(what);
  view.index = std::make_shared<TarIndex>(std::move(index).value());
  view.index_partial = !view.index->complete();
  if (view.index_partial) {
    spdlog::info("{}: ready at the disk's entry; indexing the rest in the background", what);
    // The disk is most often the archive's last entry: a stream decoder may
    // decode its end ahead of the pass (a boot reads its disk's end early).
    const std::vector<TarEntry>& entries = view.index->entries();
    if (!entries.empty() && entries.back().type == EntryType::kFile && entries.back().sparse_map.empty()) {
      view.decoded->HintLastEntryEnd((entries.back().data_offset + entries.back().size + 511) / 512 * 512);
    }
  }
  if (!index_path.empty() && view.index->complete()) {
    Status saved = view.index->Save(index_path);
    if (!saved.ok()) spdlog::warn("{}: cannot save its tar index: {}", what, saved.ToString());
  }
  return view;
}

Result<ByteSourcePtr> ImageStack::FileContent(const Node& node) const {
  if (node.layer >= layers_.size()) return Internal("file " + node.entry.path + " names a missing layer");
  if (node.entry.type != EntryType::kFile) return InvalidArgument("/" + node.entry.path + " is not a regular file");
  const LayerView& layer = layers_[node.layer];
  std::string name = "/" + node.entry.path + " in layer " + layer.descriptor.digest;
  if (layer.accel_tar) return layer.accel_tar->Content(node.entry, std::move(name));
  return TarEntryContent(layer.decoded, node.entry, std::move(name));
}

Status ImageStack::WaitUntilIndexed() const {
  for (const LayerView& layer : layers_) {
    OCIFS_RETURN_IF_ERROR(layer.decoded->WaitUntilIndexed().WithContext("layer " + layer.descriptor.digest));
  }
  return Status::Ok();
}

void ImageStack::FinishOwedFetches() const {
  {
    std::lock_guard lock(cached_mu_);
    for (const auto& cached : cached_) cached->FinishOwedFetches();
  }
  for (const LayerView& layer : layers_) {
    if (layer.decoded) layer.decoded->FinishNearlyDone(kNearlyDonePassBudget);
  }
}

Result<AccessProfile> ImageStack::StartShippedProfile() const {
  const std::string path(kShippedProfilePath);
  const Node* node = tree_->Lookup(path);
  if (node == nullptr) return NotFound("the image ships no access profile (/" + path + ")");
  const std::string what = "/" + path + " in layer " +
                           (node->layer < layers_.size() ? layers_[node->layer].descriptor.digest : "?");
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr content, FileContent(*node));
  if (content->size() > kMaxShippedProfileBytes) {
    return Corrupt(what + " is " + std::to_string(content->size()) + " bytes, more than a profile can be");
  }
  std::string text(static_cast<size_t>(content->size()), '\0');
  OCIFS_RETURN_IF_ERROR(
      ReadExactly(*content, 0, std::span(reinterpret_cast<uint8_t*>(text.data()), text.size())).WithContext(what));
  OCIFS_ASSIGN_OR_RETURN(AccessProfile profile, ParseAccessProfile(text, what));
  for (const LayerView& layer : layers_) {
    if (layer.cached) layer.cached->StartProfile(profile);
  }
  return profile;
}

ImageStack::ClusterCacheStats ImageStack::cluster_cache_stats() const {
  ClusterCacheStats sum;
  std::lock_guard lock(kept_files_mu_);
  for (const auto& file : kept_files_) {
    KeptPieceFile::Stats s = file->stats();
    sum.hits += s.hits;
    sum.dropped += s.failed;
    sum.kept += s.kept;
    sum.claim_waits += s.claim_waits;
  }
  return sum;
}

std::shared_ptr<DecodedChunkStore> ImageStack::KeptStore(const std::string& key, uint32_t chunk_size) const {
  if (!cache_ || !ChunkCache::ValidChunkSize(chunk_size)) return nullptr;
  // One sparse file per disk: keeping a piece is two pwrites, cheap enough
  // for the reader that decompressed it (no queue, nothing dropped under load).
  auto file = KeptPieceFile::Open(cache_, key, chunk_size);
  if (!file.ok()) {
    spdlog::warn("not keeping decompressed disk data on disk: {}", file.status().ToString());
    return nullptr;
  }
  std::lock_guard lock(kept_files_mu_);
  kept_files_.push_back(*file);
  return *file;
}

Result<ByteSourcePtr> ImageStack::OpenDisk() const {
  if (!disks_.empty() && options_.disk_path.empty()) {
    OCIFS_ASSIGN_OR_RETURN(const BareDiskLayer* disk, PickDisk(disks_, options_.disk_name));
    return OpenBareDisk(*disk);
  }
  if (!options_.disk_name.empty()) {
    return InvalidArgument("--disk " + options_.disk_name +
                           ": the image has no bare disk layers (a file inside a containerDisk is chosen with --disk-path)");
  }
  OCIFS_ASSIGN_OR_RETURN(const Node* located, LocateDisk(*tree_, options_.disk_path));
  Node checked = *located;
  if (const auto& accel_tar = layers_[checked.layer].accel_tar) {
    // Checked now, not on the first read: what is kept of the disk is named
    // by where its data starts, which must be the layer's, not the artifact's.
    OCIFS_ASSIGN_OR_RETURN(checked.entry, accel_tar->Check(located->entry));
  }
  const Node* node = &checked;
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr file, FileContent(*node));
  auto partial = std::find_if(layers_.begin(), layers_.end(), [](const LayerView& l) { return l.index_partial; });
  // The verifier checks the trailer once the pass is there.
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr view, ViewOfFile(file, node->layer, node->entry.data_offset,
                                                        partial == layers_.end(), "disk /" + node->entry.path));
  if (partial != layers_.end()) {
    // Over everything the disk's reads may be served from (memory, the kept
    // chunks and clusters, the layer), so a poison fails them all.
    auto guarded = std::make_shared<GuardedSource>(view);
    VerifyInBackground(*node, guarded, file, static_cast<size_t>(partial - layers_.begin()));
    view = guarded;
  }
  return view;
}

Result<ByteSourcePtr> ImageStack::ViewOfFile(ByteSourcePtr file, size_t layer_index, uint64_t data_offset,
                                             bool check_trailer, const std::string& what) const {
  DiskViewOptions disk_options;
  disk_options.scheduler = scheduler_;
  disk_options.memory_cache_bytes = options_.memory_cache_bytes;
  const bool keep_decoded = cache_ && options_.cluster_cache;
  // The disk is one file of one immutable layer: what is kept of it is named
  // by the layer's digest and where the file's data starts in the layer's tar.
  auto key_of = [&](std::string_view kind) {
    return DerivedCacheKey(layers_[layer_index].descriptor.digest, kind, data_offset);
  };
  if (keep_decoded) {
    // Called within OpenDiskView below, while `this` is certainly alive.
    disk_options.cluster_store = [this, key = key_of("qcow2-clusters")](uint32_t cluster_size) {
      return KeptStore(key, cluster_size);
    };
  }
  disk_options.check_trailer = check_trailer;
  auto view = OpenDiskView(file, disk_options);
  if (!view.ok()) return view.status().WithContext(what);
  // A raw disk in a compressed layer: keep the chunks its reads decompress
  // (not for a single-frame zstd layer: its decoder keeps the whole stream).
  const LayerView& layer = layers_[layer_index];
  if (keep_decoded && *view == file && layer.compression != Compression::kNone &&
      !layer.decoded->KeepsDecoded() && file->size() != ByteSource::kUnknownSize) {
    if (auto store = KeptStore(key_of("raw-chunks"), kRawChunkBytes)) {
      *view = std::make_shared<StoredChunkSource>(*view, std::move(store));
    }
  }
  return view;
}

}  // namespace ocifs

namespace ocifs {

void ImageStack::VerifyInBackground(const Node& served, std::shared_ptr<GuardedSource> disk, ByteSourcePtr file,
                                    size_t partial) const {
  std::vector<std::shared_ptr<const TarIndex>> lower, upper;
  for (size_t i = 0; i < partial; ++i) lower.push_back(layers_[i].index);
  for (size_t i = partial + 1; i < layers_.size(); ++i) upper.push_back(layers_[i].index);
  const LayerView& top = layers_[partial];
  std::string index_path = cache_ ? cache_->SidePath(top.descriptor.digest, "tarindex") : "";
  std::string what = "layer " + top.descriptor.digest;
  // A task of tasks_: the stack's destructor waits for it (after the
  // scheduler's Stop, which cancels the pass it reads through).
  tasks_->Post(TaskClass::kFirstPass, [decoded = top.decoded, file = std::move(file), lower = std::move(lower), upper = std::move(upper),
               index_path, what, disk = std::move(disk),
               disk_path = options_.disk_path, layer = served.layer, offset = served.entry.data_offset,
               size = served.entry.size] {
    auto full = TarIndex::Build(*decoded);
    if (!full.ok() && full.status().code() == Code::kCancelled) {
      spdlog::debug("{}: index check cancelled: {}", what, full.status().ToString());
      return;
    }
    if (!full.ok()) {
      spdlog::error("{}: indexing the rest of the layer failed; the disk's reads fail from now on: {}", what,
                    full.status().ToString());
      disk->Poison(full.status().WithContext(what));
      return;
    }
    if (!index_path.empty() && full->complete()) {
      Status saved = full->Save(index_path);
      if (!saved.ok()) spdlog::warn("{}: cannot save its tar index: {}", what, saved.ToString());
    }
    std::vector<const TarIndex*> all;
    for (const auto& index : lower) all.push_back(index.get());
    all.push_back(&full.value());
    for (const auto& index : upper) all.push_back(index.get());
    auto tree = MergedTree::Build(all);
    Status verdict = tree.status();
    if (tree.ok()) {
      auto node = LocateDisk(*tree, disk_path);
      verdict = node.status();
      if (node.ok() && ((*node)->layer != layer || (*node)->entry.data_offset != offset ||
                        (*node)->entry.size != size)) {
        verdict = Corrupt("the complete image names /" + (*node)->entry.path + " as its disk, not the file served");
      }
    }
    if (verdict.ok()) verdict = DetectDiskFormat(*file).status();
    if (!verdict.ok()) {
      spdlog::error("{}: the complete index contradicts the disk served; its reads fail from now on: {}", what,
                    verdict.ToString());
      disk->Poison(verdict.WithContext(what));
      return;
    }
    spdlog::info("{}: index complete; the disk is confirmed", what);
  });
}

}  // namespace ocifs
