// AccelLoader: a mount's use of an acceleration artifact (docs/accel-format.md):
// finds it next to the image (or fetches the one pinned), checks it against
// the image, and installs its layer indexes (gzip checkpoint indexes, zstd
// frame tables) as the layers' side files in the cache directory, where the
// layers' decoders load (and verify) them, and its tar indexes, which the
// stack lists the layers from (checking each file on its first read).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "accel/accel_manifest.h"
#include "cache/access_profile.h"
#include "ocifs/byte_source.h"
#include "ocifs/status.h"
#include "registry/image_source.h"
#include "registry/reference.h"
#include "registry/registry_options.h"

namespace ocifs {

class ChunkCache;

// Which artifact a mount uses (--accel, the CSI attribute accel).
struct AccelChoice {
  enum class Mode { kAuto, kOff, kPinned };
  Mode mode = Mode::kAuto;
  Reference pinned;  // kPinned: REGISTRY/REPO@DIGEST
  // "auto", "off" or a reference with a digest; kInvalidArgument otherwise.
  [[nodiscard]] static Result<AccelChoice> Parse(std::string_view text);
};

// What a mount took from its artifact. Plain value type.
struct AccelUse {
  std::string artifact;                   // "REGISTRY/REPO@sha256:.."; "" = no artifact used
  std::vector<std::string> indexed_layers;  // layers whose index came from it (installed now or earlier)
  std::shared_ptr<const AccessProfile> profile;  // its first profile that parsed; null if none
  // Layers whose tar index the artifact gives, kept (checked as far as it
  // can be without the layer) as side/<layer digest>.tarindex-accel; for
  // layers with no walked tar index (side/<layer digest>.tarindex) yet.
  std::set<std::string> tar_indexed_layers;
  // Per layer digest, a table-first index to read lazily (a version 4 gzip
  // index, docs/gzip-index-format.md; a version 2 zstd checkpoint index,
  // docs/zstd-checkpoint-format.md), for layers with no index in the cache
  // yet: nothing of it is fetched by ApplyAccel; the stack reads it through
  // the chunk cache (DecoderOptions::gzip_index_blob, zstd_checkpoint_blob).
  struct LazyIndex {
    LayerIndexKind kind = LayerIndexKind::kGzipIndexV4;  // or kZstdCheckpointsV2
    std::string digest;  // the index blob's, its key in the chunk cache
    ByteSourcePtr blob;  // the index blob, straight from the registry
    std::string from;    // "acceleration artifact REGISTRY/REPO@sha256:..", for logs
  };
  std::map<std::string, LazyIndex> lazy_indexes;
};

// An artifact found next to an image. Plain value type.
struct FoundAccel {
  std::string reference;  // REGISTRY/REPO@sha256:..
  AccelManifest manifest;
};

// Looks up the newest artifact of `image` in its repository (one round trip
// when there is none), and parses it; nullopt if there is none. Installs
// nothing. For `oci-fs inspect`.
[[nodiscard]] Result<std::optional<FoundAccel>> FindAccel(ImageSource& source, const ResolvedImage& image);

// Finds the artifact (kAuto: one lookup, docs/accel-format.md "Finding it";
// a later mount of the same image reads the record it kept instead), checks
// it, and writes the index of each layer that has none yet into `cache`
// (a gzip index's runs of zeros dropped: docs/accel-format.md "Trust"),
// except a table-first index, which it only opens (AccelUse::lazy_indexes). `source` is the
// image's own source (the artifact's repository for kAuto).
//
// kAuto never fails the mount: a lookup or artifact that fails is logged as a
// warning and the result is empty. kPinned fails on anything that prevents
// using the artifact named. kOff returns an empty result at once.
// Blocking (registry round trips); call before the layers are opened.
[[nodiscard]] Result<AccelUse> ApplyAccel(const AccelChoice& choice, ImageSource& source,
                                          const ResolvedImage& image, const RegistryOptions& registry,
                                          ChunkCache& cache);

}  // namespace ocifs
