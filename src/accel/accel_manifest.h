// AccelManifest: an acceleration artifact's manifest (docs/accel-format.md):
// what `oci-fs accelerate` pushes next to an image, and what a mount reads
// back. Building the JSON and parsing it, with every check that does not need
// the image's layers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"
#include "registry/descriptor.h"

namespace ocifs {

namespace accel {
inline constexpr std::string_view kArtifactType = "application/vnd.oci-fs.accel.v1";
inline constexpr std::string_view kGzipIndexMediaType = "application/vnd.oci-fs.gzip-index.v3";
inline constexpr std::string_view kGzipIndexV4MediaType = "application/vnd.oci-fs.gzip-index.v4";
inline constexpr std::string_view kGzipIndexV5MediaType = "application/vnd.oci-fs.gzip-index.v5";
inline constexpr std::string_view kZstdFramesMediaType = "application/vnd.oci-fs.zstd-frames.v2";
inline constexpr std::string_view kZstdCheckpointsMediaType = "application/vnd.oci-fs.zstd-checkpoints.v1";
inline constexpr std::string_view kZstdCheckpointsV2MediaType = "application/vnd.oci-fs.zstd-checkpoints.v2";
inline constexpr std::string_view kTarIndexMediaType = "application/vnd.oci-fs.tar-index.v2";
inline constexpr std::string_view kRawSpansMediaType = "application/vnd.oci-fs.raw-spans.v1";
inline constexpr std::string_view kProfileMediaType = "application/vnd.oci-fs.profile.v1";
inline constexpr std::string_view kEmptyMediaType = "application/vnd.oci.empty.v1+json";
inline constexpr std::string_view kEmptyDigest =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";  // of "{}"
inline constexpr std::string_view kLayerDigestAnnotation = "org.oci-fs.layer.digest";
inline constexpr std::string_view kLayerSizeAnnotation = "org.oci-fs.layer.size";
inline constexpr std::string_view kVersionAnnotation = "org.oci-fs.accel.version";
inline constexpr std::string_view kCreatedAnnotation = "org.opencontainers.image.created";
inline constexpr size_t kMaxPieces = 64;
inline constexpr uint64_t kMaxPieceBytes = uint64_t{64} << 20;  // = kMaxFetchBlobBytes
}  // namespace accel

// What kind of random-access index of one layer a piece is.
enum class LayerIndexKind {
  kGzipIndex,        // a gzip checkpoint index, version 3 (docs/gzip-index-format.md): fetched whole
  kGzipIndexV4,      // a gzip checkpoint index, version 4, table first: read lazily by ranges
  kGzipIndexV5,      // the same with checkpoints inside deflate blocks (version 5)
  kZstdFrames,       // a zstd frame table with frame CRCs, version 2 (docs/zstd-frames-format.md)
  kZstdCheckpoints,  // a single-frame zstd checkpoint index (docs/zstd-checkpoint-format.md): fetched whole
  kZstdCheckpointsV2,  // the same, version 2, table first: read lazily by ranges
};
std::string_view LayerIndexMediaType(LayerIndexKind kind);
// "gzip index", "zstd frame table", "zstd checkpoint index" (either version).
std::string_view LayerIndexName(LayerIndexKind kind);

// Plain value type.
struct AccelManifest {
  // One layer's index, and the layer it describes.
  struct LayerIndex {
    LayerIndexKind kind = LayerIndexKind::kGzipIndex;
    Descriptor blob;
    std::string layer_digest;
    uint64_t layer_size = 0;  // compressed bytes
  };
  // A piece about one layer: its tar index (docs/tar-index-format.md,
  // version 2), its raw span table (docs/raw-spans-format.md).
  struct LayerPiece {
    Descriptor blob;
    std::string layer_digest;
    uint64_t layer_size = 0;  // compressed bytes
  };
  using TarIndexPiece = LayerPiece;
  Descriptor subject;  // the image manifest (one platform's)
  std::vector<LayerIndex> layer_indexes;  // at most one per layer
  std::vector<TarIndexPiece> tar_indexes;  // at most one per layer
  std::vector<LayerPiece> raw_spans;       // at most one per layer
  std::vector<Descriptor> profiles;
  std::string created;  // RFC 3339, or ""
};

// The artifact manifest's JSON (OCI image manifest, artifact form).
std::string SerializeAccelManifest(const AccelManifest& m);

// Parses and checks an artifact manifest: its artifactType, subject, config,
// piece descriptors (digests, sizes within accel::kMaxPieceBytes, at most
// kMaxPieces, one index of any kind, one tar index and one raw span table
// per layer, layer annotations). Pieces of unknown
// media types are skipped. kCorrupt naming `what` and the fault, or
// kUnsupported for another artifact type.
[[nodiscard]] Result<AccelManifest> ParseAccelManifest(std::string_view json, std::string_view what);

// "2026-12-05T10:00:00Z" for now (UTC).
std::string Rfc3339Now();

}  // namespace ocifs
