// ImageSource: one image of a registry (docker://) or of a local OCI image
// layout (oci:) — its resolved manifest and config, and its blobs as
// range-readable ByteSources.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ocifs/byte_source.h"
#include "ocifs/status.h"
#include "registry/descriptor.h"
#include "registry/platform.h"
#include "registry/reference.h"
#include "registry/referrers.h"
#include "registry/registry_options.h"

namespace ocifs {

// A manifest as a registry served it. Plain value type.
struct FetchedManifest {
  std::string media_type;  // Content-Type or descriptor mediaType
  std::string digest;
  std::string bytes;
};

struct ResolvedImage {
  Reference reference;            // as given, with .digest filled in (pinned: the digest the tag
                                  // pointed to — the index's when there is one)
  std::string manifest_digest;    // digest of the image manifest (not the index)
  std::string manifest_media_type;
  std::string artifact_type;      // the manifest's OCI 1.1 artifactType; "" = none (an image)
  uint64_t manifest_size = 0;     // its bytes (an artifact's subject descriptor carries it)
  std::string index_digest;       // when resolved through an index/manifest list, else empty
  Platform platform;              // from the config (else the index entry)
  Descriptor config;
  nlohmann::json config_json;
  std::vector<Descriptor> layers;  // bottom to top
};

// Thread safety: all methods safe for concurrent use. Owns its HTTP/auth state;
// blobs opened from it stay valid after it is destroyed (they share that state).
class ImageSource {
 public:
  ImageSource() = default;
  ImageSource(const ImageSource&) = delete;
  ImageSource& operator=(const ImageSource&) = delete;
  virtual ~ImageSource() = default;

  // Called once the image manifest is known (the image without its config:
  // config_json null, platform from the index entry if any), on another
  // thread, while the config is fetched; Resolve returns after it returned.
  // It runs even if the config then fails. A mount looks its acceleration
  // artifact up here (one round trip fewer).
  using BesideConfigFn = std::function<void(const ResolvedImage& without_config)>;

  // Fetches the manifest (selecting the platform from an index) and the config;
  // every manifest fetched by digest, and the config, are digest-verified.
  [[nodiscard]] Result<ResolvedImage> Resolve() { return Resolve(BesideConfigFn()); }
  [[nodiscard]] virtual Result<ResolvedImage> Resolve(const BesideConfigFn& beside_config) = 0;
  // A range-readable blob of size() == blob.size. Nothing is fetched yet.
  [[nodiscard]] virtual Result<ByteSourcePtr> OpenBlob(const Descriptor& blob) = 0;
  // The whole blob (at most 64 MiB), digest-verified; for configs.
  [[nodiscard]] virtual Result<std::vector<uint8_t>> FetchBlob(const Descriptor& blob) = 0;
  // The referrers of the manifest `subject_digest` whose artifactType is
  // `artifact_type` ("" = all): the registry's referrers API, else its
  // fallback tag, asked at once (referrers.h ListReferrers). kUnsupported
  // where there is no registry (oci: layouts).
  [[nodiscard]] virtual Result<ReferrerList> ListReferrers(const std::string& subject_digest,
                                                           const std::string& artifact_type);
  // A manifest of this repository by digest (`manifest.digest`; at most 4
  // MiB), digest-verified: an artifact a referrers list named. kUnsupported
  // where there is no registry (oci: layouts).
  [[nodiscard]] virtual Result<FetchedManifest> FetchManifest(const Descriptor& manifest);
  // The platforms of the image index (or manifest list) the reference names,
  // in index order, entries of an unknown platform (attestations) left out;
  // empty if it names one image manifest. One manifest fetch. kUnsupported
  // where there is no registry (oci: layouts).
  [[nodiscard]] virtual Result<std::vector<Platform>> ListPlatforms();
};

// A RegistryClient for docker:// references, an OciLayoutSource for oci:.
// Fails early on bad options (platform, creds, authfile, cert dir); does not
// contact the registry yet.
[[nodiscard]] Result<std::unique_ptr<ImageSource>> OpenImageSource(const Reference& ref,
                                                                   const RegistryOptions& options);

// The platform to select: options.platform parsed, or Platform::Host().
[[nodiscard]] Result<Platform> WantedPlatform(const RegistryOptions& options);

// Bound of FetchBlob.
inline constexpr uint64_t kMaxFetchBlobBytes = uint64_t{64} << 20;

}  // namespace ocifs
