// AccelBuilder: what `oci-fs accelerate` learns about an image by reading
// each layer once, streaming: for each gzip layer its checkpoint index
// (version 4, table first, with the checksums of the decoded layer;
// docs/accel-format.md),
// with extra checkpoints before the regions its access profiles name; for
// each zstd layer of several frames of at most 1 MiB its frame table with a
// CRC per frame; for any other zstd layer (one frame, frames without sizes or
// larger) its checkpoint index (docs/zstd-checkpoint-format.md), with
// checkpoints every 256 KiB and at the profiles' regions; and for each tar
// layer its tar index (docs/tar-index-format.md), built by the same pass.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "accel/accel_manifest.h"
#include "cache/access_profile.h"
#include "ocifs/status.h"
#include "registry/image_source.h"
#include "registry/reference.h"
#include "registry/registry_options.h"

namespace ocifs {

struct AccelBuildOptions {
  RegistryOptions registry;
  // Where the layers are kept while they are read (a temporary directory is
  // made in it and removed at the end): room for the compressed layers.
  std::string work_dir = "/var/tmp";
  // Access profiles to be shipped with the index: each gzip layer's index
  // gets an extra checkpoint just before each region they name of it
  // (DecoderOptions::checkpoint_targets), so a mount that uses both inflates
  // and fetches little beyond what the recorded workload reads.
  std::vector<AccessProfile> profiles;
  // Called about twice a second from another thread while layers are read:
  // compressed bytes read so far, and of how many.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// Plain value type.
struct AccelPieces {
  ResolvedImage image;
  struct LayerIndex {
    LayerIndexKind kind = LayerIndexKind::kGzipIndex;
    std::string layer_digest;
    uint64_t layer_size = 0;
    std::string bytes;  // the index file in its format (LayerIndexKind)
  };
  std::vector<LayerIndex> layer_indexes;
  // Each tar layer's tar index (docs/tar-index-format.md, version 2), from
  // the same pass; none for a layer that is no tar (a bare disk, a file).
  struct LayerBytes {
    std::string layer_digest;
    uint64_t layer_size = 0;
    std::string bytes;
  };
  using TarIndexBytes = LayerBytes;
  std::vector<TarIndexBytes> tar_indexes;
  // Each gzip layer's stored blocks and each zstd layer's raw blocks (where
  // it has checkpoints) (docs/raw-spans-format.md): a read there copies the
  // blob's bytes.
  std::vector<LayerBytes> raw_spans;
  // Layers that need no gzip or zstd index: "digest (why)" (uncompressed;
  // eStargz and zstd:chunked, which carry their own TOC). Their tar index
  // and the profiles still apply.
  std::vector<std::string> plain_layers;
  std::vector<std::string> unindexed;  // layers it cannot index: "digest (why)"
  // AccelBuildOptions::profiles as shipped: fitted to the gzip indexes above
  // (FitProfileToGzipIndex: each span they need whole, and the index blob's
  // windows of those spans) and the zstd checkpoint indexes (the units
  // inside raw spans as they are).
  std::vector<AccessProfile> profiles;
};

// Resolves `ref` (one platform: registry.platform, else the host's) and reads
// every layer through a temporary cache, building the indexes a mount builds
// on its first pass. Blocking; kCancelled-free. Errors name the layer.
[[nodiscard]] Result<AccelPieces> BuildAccelPieces(const Reference& ref, const AccelBuildOptions& options);

}  // namespace ocifs
