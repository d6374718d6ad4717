// AccelLoader: a mount's use of an acceleration artifact (docs/accel-format.md):
// finds it next to the image (or fetches the one pinned), checks it against
// the image, and installs its layer indexes (gzip checkpoint indexes, zstd
// frame tables) as the layers' side files in the cache directory, where the
// layers' decoders load (and verify) them, and its tar indexes, which the
// stack lists the layers from (checking each file on its first read).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "accel/accel_manifest.h"
#include "cache/access_profile.h"
#include "decode/raw_span_table.h"
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
    ByteSourcePtr blob;  // the index blob: from the registry, or cached (AccelInstallHelpers::cache_index)
    std::string from;    // "acceleration artifact REGISTRY/REPO@sha256:..", for logs
  };
  std::map<std::string, LazyIndex> lazy_indexes;
  // Per layer digest, its raw span table (docs/raw-spans-format.md), for a
  // layer whose index came from the artifact (DecoderOptions::raw_spans);
  // checked against the layer's size, each span's bytes when read.
  std::map<std::string, std::shared_ptr<const RawSpanTable>> raw_spans;
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

// The artifact a mount would use, found but not yet checked or installed:
// the network half of ApplyAccel, which a mount runs beside its config's
// fetch (ImageSource::BesideConfigFn). Plain value type.
struct AccelCandidate {
  std::string reference;       // REGISTRY/REPO@sha256:..; "" = none
  std::string manifest_bytes;  // its manifest, digest-verified
  bool recorded = false;       // read from the cache's record, not fetched now
  std::shared_ptr<ImageSource> source;  // kPinned: the artifact's repository; null: the image's
};

// kOff: none. kAuto: the cache's record, else one lookup (a failed lookup is
// logged and gives none). kPinned: the record if it names the artifact, else
// its fetch; errors name --accel. Needs only the image's manifest (not its
// config). Blocking (registry round trips).
[[nodiscard]] Result<AccelCandidate> FindAccelForMount(const AccelChoice& choice, ImageSource& source,
                                                       const ResolvedImage& image, const RegistryOptions& registry,
                                                       ChunkCache& cache);

class WorkerPool;

// How a mount's InstallAccel fetches (all optional).
struct AccelInstallHelpers {
  // The artifact's pieces (tar indexes, the profile, the heads of lazy
  // indexes) are fetched side by side on it; null: one after another.
  WorkerPool* pool = nullptr;
  // Wraps a lazily read index blob (its digest, the registry's source) in
  // the mount's cached source (AccelUse::LazyIndex::blob is what it returns).
  std::function<ByteSourcePtr(const std::string& digest, ByteSourcePtr raw)> cache_index;
  // Bytes of each lazy index read at once through cache_index's source
  // (its table, read at the layer's open); 0: none.
  uint64_t index_head_bytes = 0;
};

// The rest of ApplyAccel: checks `candidate` and installs what it carries.
// `source` is the image's own source.
[[nodiscard]] Result<AccelUse> InstallAccel(const AccelChoice& choice, Result<AccelCandidate> candidate,
                                            ImageSource& source, const ResolvedImage& image, ChunkCache& cache,
                                            const AccelInstallHelpers& helpers);

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
