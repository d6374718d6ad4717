// Referrers (OCI distribution spec 1.1): the manifests whose `subject` is a
// given image manifest, found through the registry's referrers API
// (GET /v2/<repo>/referrers/<digest>) or, where a registry lacks it (404,
// e.g. Debian's docker-registry 2.8), through the index its clients keep at
// the referrers tag schema's fallback tag "<alg>-<hex>".
// Pure functions over bytes, plus the lookup through a RegistrySession.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"
#include "registry/descriptor.h"
#include "registry/manifest.h"

namespace ocifs {

class RegistrySession;

// Plain value type.
struct ReferrerList {
  enum class Source {
    kReferrersApi,    // the referrers API answered 200
    kFallbackTag,     // the API is absent; the fallback tag holds an index
    kNoFallbackTag,   // the API is absent and the fallback tag unknown: no referrers
  };
  Source source = Source::kNoFallbackTag;
  // The referrers of the wanted artifactType (all of them when none was
  // asked for), in the order of the index.
  std::vector<Descriptor> manifests;
  // The registry said it filtered by artifactType (OCI-Filters-Applied).
  // The list is filtered here either way.
  bool registry_filtered = false;
};

// "referrers API", "fallback tag", "no fallback tag" (for messages and logs).
std::string_view ReferrerSourceName(ReferrerList::Source source);

// A referrers index (an API page or the fallback tag) is at most this long.
inline constexpr size_t kMaxReferrersIndexBytes = kMaxManifestBytes;
// It lists at most this many manifests (all pages together).
inline constexpr size_t kMaxReferrers = 4096;

// The fallback tag of a manifest digest: its algorithm (at most 32
// characters), '-', its encoded part (at most 64 characters); characters a tag
// may not hold become '-'. "sha256:ab.." -> "sha256-ab..". kInvalidArgument
// unless `subject_digest` is a valid sha256 digest.
[[nodiscard]] Result<std::string> ReferrersTag(std::string_view subject_digest);

// The manifests of a referrers index: an OCI image index (schemaVersion 2,
// mediaType absent or the OCI index type, a "manifests" array of at most
// kMaxReferrers descriptors). `what` names it in errors; malformed is
// kCorrupt naming the field ("<what>: manifests[2]: missing digest").
[[nodiscard]] Result<std::vector<Descriptor>> ParseReferrersIndex(std::string_view bytes, std::string_view what);

// The entries whose artifactType is `artifact_type`; all when it is "".
std::vector<Descriptor> FilterByArtifactType(std::vector<Descriptor> all, std::string_view artifact_type);

// The fallback index with `artifact` added: `index_bytes` (empty: no index
// yet) with any entry of the same digest dropped and `artifact` appended;
// other entries, and fields this module does not know, are kept as they
// were. kCorrupt (naming `what`) if index_bytes is not a referrers index.
[[nodiscard]] Result<std::string> MergeIntoReferrersIndex(std::string_view index_bytes, const Descriptor& artifact,
                                                          std::string_view what);

// Lists the referrers of `subject_digest` of `artifact_type` ("" = all).
// Asks the referrers API (with ?artifactType=) and reads the fallback tag at
// the same time, on two threads, so a registry without the API costs one
// round trip, not two; the API's answer wins when it is 200 (later pages
// follow its Link header). The API counts as absent on 400, 404, 405, 406, or
// a 200 that is not an index (by Content-Type). Errors: kInvalidArgument (bad
// digest), kCorrupt (a malformed index or too many pages), the session's
// errors (kUnauthenticated, kUnavailable, ...) naming the registry.
// Thread safety: as the session's (safe for concurrent use).
[[nodiscard]] Result<ReferrerList> ListReferrers(RegistrySession& session, const std::string& subject_digest,
                                                 const std::string& artifact_type);

}  // namespace ocifs
