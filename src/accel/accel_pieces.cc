#include "accel/accel_pieces.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>

#include "base/whole_file.h"
#include "cache/chunk_cache.h"
#include "decode/gzip_saved_index.h"
#include "decode/zstd_checkpoint_index.h"
#include "decode/zstd_frame_file.h"
#include "image/tar_index_file.h"
#include "registry/digest.h"

namespace ocifs {
namespace {

std::string_view AsText(const std::vector<uint8_t>& v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}

// A zstd frame table from an artifact is kept only if it is well formed for
// the layer and every frame has a CRC (what makes its reads checkable).
Status SaveUntrustedZstdFrames(const std::vector<uint8_t>& bytes, const AccelManifest::LayerIndex& index,
                               const std::string& path) {
  OCIFS_ASSIGN_OR_RETURN(std::vector<ZstdFrame> frames,
                         ZstdFrameFile::Decode(AsText(bytes), index.layer_size, index.blob.digest));
  if (frames.size() < 2 || !std::all_of(frames.begin(), frames.end(), [](const ZstdFrame& f) { return f.crc32; })) {
    return Corrupt("zstd frame table " + index.blob.digest + ": not a table of several frames, each with its CRC-32");
  }
  return WriteFileAtomically(path, AsText(bytes));
}

// A zstd checkpoint index from an artifact is kept only if it parses and
// describes a blob of the layer's size (its reads are verified on use).
// Its dictionaries (most of its bytes) are checked but not copied: the mount
// parses the kept file again, and each copy of tens of MiB costs a loaded
// node seconds.
Status SaveUntrustedZstdCheckpoints(const std::vector<uint8_t>& bytes, const AccelManifest::LayerIndex& index,
                                    const std::string& path) {
  OCIFS_ASSIGN_OR_RETURN(ZstdCheckpointIndex parsed,
                         ZstdCheckpointIndex::Parse(bytes, ZstdCheckpointIndex::Dicts::kSkip));
  if (parsed.blob_size != index.layer_size) {
    return Corrupt("zstd checkpoint index " + index.blob.digest + ": made for a blob of " +
                   std::to_string(parsed.blob_size) + " bytes, not " + std::to_string(index.layer_size));
  }
  return WriteFileAtomically(path, AsText(bytes));
}

}  // namespace

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The layer's side file (docs/cache-format.md) an index of `kind` is kept in.
std::string IndexSidePath(ChunkCache& cache, const AccelManifest::LayerIndex& index) {
  switch (index.kind) {
    case LayerIndexKind::kGzipIndex:
    case LayerIndexKind::kGzipIndexV4:
    case LayerIndexKind::kGzipIndexV5: return cache.SidePath(index.layer_digest, "gzidx");
    case LayerIndexKind::kZstdFrames: return cache.SidePath(index.layer_digest, "zstdframes");
    case LayerIndexKind::kZstdCheckpoints:
    case LayerIndexKind::kZstdCheckpointsV2: return cache.SidePath(index.layer_digest, "zstdckpt");
  }
  return {};
}

// Writes one index piece as the layer's side file: checked as far as it can
// be without the layer, a gzip index's runs of zeros dropped.
Status InstallIndex(ImageSource& pieces, const AccelManifest::LayerIndex& index, const std::string& path) {
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, pieces.FetchBlob(index.blob));
  switch (index.kind) {
    case LayerIndexKind::kGzipIndex: return SaveUntrustedGzipIndex(bytes, index.blob.digest, path);
    case LayerIndexKind::kZstdFrames: return SaveUntrustedZstdFrames(bytes, index, path);
    case LayerIndexKind::kZstdCheckpoints: return SaveUntrustedZstdCheckpoints(bytes, index, path);
    case LayerIndexKind::kGzipIndexV4:
    case LayerIndexKind::kGzipIndexV5:
    case LayerIndexKind::kZstdCheckpointsV2: break;  // not installed: read lazily (Install)
  }
  return Unsupported("a " + std::string(LayerIndexName(index.kind)) + " is not used by this version");
}

// Keeps a tar index piece as side/<layer>.tarindex-accel, checked as far as
// it can be without the layer (docs/accel-format.md, "Trust"): it names a
// layer of the image by digest and size, and parses strictly as a complete
// version 2 index. Nothing is fetched when the layer has a walked index
// (side/<layer>.tarindex, trusted) or the piece is kept already.
Status InstallTarIndex(ImageSource& pieces, const AccelManifest::TarIndexPiece& t, const ResolvedImage& image,
                       ChunkCache& cache) {
  auto layer = std::find_if(image.layers.begin(), image.layers.end(),
                            [&](const Descriptor& d) { return d.digest == t.layer_digest; });
  if (layer == image.layers.end() || layer->size != t.layer_size) {
    return InvalidArgument("it names layer " + t.layer_digest + " (" + std::to_string(t.layer_size) +
                           " bytes), which the image does not have");
  }
  const std::string path = cache.SidePath(t.layer_digest, "tarindex-accel");
  if (PathExists(cache.SidePath(t.layer_digest, "tarindex")) || PathExists(path)) return Status::Ok();
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, pieces.FetchBlob(t.blob));
  OCIFS_ASSIGN_OR_RETURN(TarIndex index, TarIndexFile::Decode(AsText(bytes), t.blob.digest));
  if (!index.has_header_offsets() || !index.complete()) {
    return Corrupt("tar index " + t.blob.digest + ": not a complete index with header offsets (version 2)");
  }
  OCIFS_RETURN_IF_ERROR(WriteFileAtomically(path, AsText(bytes)));
  spdlog::info("kept the tar index of layer {} ({} entries, {} bytes)", t.layer_digest, index.entries().size(),
               bytes.size());
  return Status::Ok();
}

Result<std::shared_ptr<const AccessProfile>> LoadProfile(ImageSource& pieces, const Descriptor& piece,
                                                         ChunkCache& cache, const std::string& what) {
  const std::string path = cache.SidePath(piece.digest, "profile");
  std::string text;
  if (auto kept = ReadWholeFile(path, accel::kMaxPieceBytes, "profile"); kept.ok() &&
      Sha256Digest(std::span(reinterpret_cast<const uint8_t*>(kept->data()), kept->size())) == piece.digest) {
    text = std::move(kept).value();
  } else {
    OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, pieces.FetchBlob(piece));
    text.assign(AsText(bytes));
    if (Status s = WriteFileAtomically(path, text); !s.ok()) spdlog::warn("not keeping {}: {}", what, s.ToString());
  }
  OCIFS_ASSIGN_OR_RETURN(AccessProfile profile, ParseAccessProfile(text, what));
  return std::make_shared<const AccessProfile>(std::move(profile));
}

// A raw span table of layer `r` (kept in the cache by its digest, else
// fetched and kept), parsed and checked against the layer's size.
Result<std::shared_ptr<const RawSpanTable>> LoadRawSpans(ImageSource& pieces, const AccelManifest::LayerPiece& r,
                                                         ChunkCache& cache) {
  const std::string path = cache.SidePath(r.blob.digest, "rawspans");
  std::vector<uint8_t> bytes;
  if (auto kept = ReadWholeFile(path, accel::kMaxPieceBytes, "raw span table");
      kept.ok() && Sha256Digest(std::span(reinterpret_cast<const uint8_t*>(kept->data()), kept->size())) ==
                       r.blob.digest) {
    bytes.assign(kept->begin(), kept->end());
  } else {
    OCIFS_ASSIGN_OR_RETURN(bytes, pieces.FetchBlob(r.blob));
    if (Status s = WriteFileAtomically(path, AsText(bytes)); !s.ok()) {
      spdlog::warn("not keeping raw span table {}: {}", r.blob.digest, s.ToString());
    }
  }
  Result<RawSpanTable> table = RawSpanTable::Parse(bytes);
  if (!table.ok()) return table.status().WithContext("raw span table " + r.blob.digest);
  if (table->blob_size() != r.layer_size) {
    return Corrupt("raw span table " + r.blob.digest + " is for a blob of " + std::to_string(table->blob_size()) +
                   " bytes, not the layer's " + std::to_string(r.layer_size));
  }
  return std::make_shared<const RawSpanTable>(std::move(table).value());
}

}  // namespace ocifs
