#include "stack/image_stack.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "base/slice_source.h"
#include "cache/cached_source.h"
#include "decode/decoder.h"
#include "disk/disk_view.h"
#include "image/disk_locator.h"
#include "image/sparse_file_source.h"
#include "stack/cache_decoded_store.h"

namespace ocifs {

Result<std::unique_ptr<ImageStack>> ImageStack::Open(const Reference& ref, const StackOptions& options) {
  std::unique_ptr<ImageStack> stack(new ImageStack());
  stack->options_ = options;
  if (!options.cache_dir.empty()) {
    ChunkCacheOptions cache_options;
    cache_options.dir = options.cache_dir;
    cache_options.max_bytes = options.cache_bytes;
    OCIFS_ASSIGN_OR_RETURN(stack->cache_, ChunkCache::Open(cache_options));
  }
  RegistryOptions registry = options.registry;
  if (stack->cache_ && registry.small_blob_dir.empty()) registry.small_blob_dir = options.cache_dir + "/configs";
  OCIFS_ASSIGN_OR_RETURN(stack->source_, OpenImageSource(ref, registry));
  OCIFS_ASSIGN_OR_RETURN(stack->image_, stack->source_->Resolve());
  std::vector<const TarIndex*> indexes;
  for (const Descriptor& layer : stack->image_.layers) {
    OCIFS_ASSIGN_OR_RETURN(LayerView view, stack->OpenLayer(layer));
    stack->layers_.push_back(std::move(view));
  }
  for (const LayerView& view : stack->layers_) indexes.push_back(view.index.get());
  OCIFS_ASSIGN_OR_RETURN(MergedTree tree, MergedTree::Build(indexes));
  stack->tree_.emplace(std::move(tree));
  return stack;
}

Result<LayerView> ImageStack::OpenLayer(const Descriptor& layer) const {
  LayerView view;
  view.descriptor = layer;
  std::string what = "layer " + layer.digest;
  OCIFS_ASSIGN_OR_RETURN(view.blob, source_->OpenBlob(layer));
  if (cache_) view.blob = std::make_shared<CachedSource>(view.blob, cache_, layer.digest);

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

  DecoderOptions decoder_options;
  if (cache_) {
    decoder_options.index_path = cache_->SidePath(layer.digest, "gzidx");
    decoder_options.decoded_store = std::make_shared<CacheDecodedStore>(cache_, layer.digest + ":decoded");
  }
  auto decoded = OpenDecoded(view.blob, view.compression, decoder_options);
  if (!decoded.ok()) return decoded.status().WithContext(what);
  view.decoded = *decoded;

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
    }
  }
  auto index = TarIndex::Build(*view.decoded);
  if (!index.ok()) return index.status().WithContext(what);
  view.index = std::make_shared<TarIndex>(std::move(index).value());
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
  if (node.entry.sparse) {
    OCIFS_ASSIGN_OR_RETURN(auto sparse, SparseFileSource::Make(layer.decoded, node.entry, name));
    return ByteSourcePtr(std::move(sparse));
  }
  OCIFS_ASSIGN_OR_RETURN(auto slice, SliceSource::Make(layer.decoded, node.entry.data_offset, node.entry.size, name));
  return ByteSourcePtr(std::move(slice));
}

Result<ByteSourcePtr> ImageStack::OpenDisk(std::string_view disk_path) const {
  OCIFS_ASSIGN_OR_RETURN(const Node* node, LocateDisk(*tree_, disk_path));
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr file, FileContent(*node));
  DiskViewOptions disk_options;
  disk_options.memory_cache_bytes = options_.memory_cache_bytes;
  auto view = OpenDiskView(file, disk_options);
  if (!view.ok()) return view.status().WithContext("disk /" + node->entry.path);
  return view;
}

}  // namespace ocifs
