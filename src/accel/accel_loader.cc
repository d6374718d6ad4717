#include "accel/accel_loader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "accel/accel_manifest.h"
#include "accel/accel_pieces.h"
#include "base/whole_file.h"
#include "base/worker_pool.h"
#include "cache/chunk_cache.h"
#include "registry/digest.h"

namespace ocifs {
namespace {

constexpr uint64_t kMaxManifestBytes = uint64_t{4} << 20;

// An artifact manifest as fetched: where from, and its bytes (digest-verified).
struct FetchedArtifact {
  std::string reference;  // REGISTRY/REPO@DIGEST
  std::string bytes;
};

// The record of the artifact a mount of `subject` used: side/<subject>.accel,
// "<artifact reference>\n<its manifest bytes>" (docs/cache-format.md).
std::string RecordPath(ChunkCache& cache, const std::string& subject) { return cache.SidePath(subject, "accel"); }

std::optional<FetchedArtifact> ReadRecord(ChunkCache& cache, const std::string& subject) {
  const std::string path = RecordPath(cache, subject);
  if (!PathExists(path)) return std::nullopt;
  auto text = ReadWholeFile(path, kMaxManifestBytes + 4096, "acceleration record");
  if (!text.ok()) {
    spdlog::warn("ignoring {}: {}", path, text.status().ToString());
    return std::nullopt;
  }
  const size_t nl = text->find('\n');
  if (nl != std::string::npos) {
    FetchedArtifact a{text->substr(0, nl), text->substr(nl + 1)};
    auto ref = Reference::Parse(a.reference);
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(a.bytes.data()), a.bytes.size());
    if (ref.ok() && !ref->digest.empty() && Sha256Digest(bytes) == ref->digest) return a;
  }
  spdlog::warn("ignoring {}: not an acceleration record, or its manifest does not match its digest", path);
  return std::nullopt;
}

// The newest descriptor: the latest created annotation, the last listed on a tie.
const Descriptor* Newest(const std::vector<Descriptor>& list) {
  const Descriptor* best = nullptr;
  auto created = [](const Descriptor& d) {
    auto it = d.annotations.find(std::string(accel::kCreatedAnnotation));
    return it == d.annotations.end() ? std::string() : it->second;
  };
  for (const Descriptor& d : list) {
    if (best == nullptr || created(d) >= created(*best)) best = &d;
  }
  return best;
}

Result<FetchedArtifact> FetchArtifact(ImageSource& source, const Reference& repo, const Descriptor& desc) {
  OCIFS_ASSIGN_OR_RETURN(FetchedManifest m, source.FetchManifest(desc));
  Reference at = repo;
  at.tag.clear();
  at.digest = m.digest;
  return FetchedArtifact{at.ToString(), std::move(m.bytes)};
}

// Looks the artifact up next to the image; nullopt if there is none.
Result<std::optional<FetchedArtifact>> LookUp(ImageSource& source, const ResolvedImage& image) {
  OCIFS_ASSIGN_OR_RETURN(ReferrerList found,
                         source.ListReferrers(image.manifest_digest, std::string(accel::kArtifactType)));
  spdlog::debug("{} acceleration artifacts for {} (through the {})", found.manifests.size(), image.manifest_digest,
                ReferrerSourceName(found.source));
  const Descriptor* newest = Newest(found.manifests);
  if (newest == nullptr) return std::optional<FetchedArtifact>();
  OCIFS_ASSIGN_OR_RETURN(FetchedArtifact a, FetchArtifact(source, image.reference, *newest));
  return std::optional<FetchedArtifact>(std::move(a));
}

// Checks `artifact` against `image` and installs what it carries. Its
// pieces (tar indexes, an older artifact's whole indexes, the first
// profile) and the heads of its lazily read indexes are fetched side by side
// on helpers.pool: one round trip for all of them.
Result<AccelUse> Install(ImageSource& pieces, const FetchedArtifact& artifact, const ResolvedImage& image,
                         ChunkCache& cache, const AccelInstallHelpers& helpers) {
  const std::string what = "acceleration artifact " + artifact.reference;
  OCIFS_ASSIGN_OR_RETURN(AccelManifest m, ParseAccelManifest(artifact.bytes, what));
  if (m.subject.digest != image.manifest_digest) {
    return InvalidArgument(what + " is for the image manifest " + m.subject.digest + ", not " +
                           image.manifest_digest + " (" + image.reference.ToString() + ")");
  }
  AccelUse use;
  use.artifact = artifact.reference;
  // The fetches, run together below; each writes its own slot.
  std::vector<std::function<void()>> jobs;
  struct IndexJob {
    const AccelManifest::LayerIndex* index;
    std::string path;
    Status status;
  };
  std::vector<IndexJob> index_jobs;
  for (const AccelManifest::LayerIndex& g : m.layer_indexes) {
    const std::string_view name = LayerIndexName(g.kind);
    auto layer = std::find_if(image.layers.begin(), image.layers.end(),
                              [&](const Descriptor& d) { return d.digest == g.layer_digest; });
    if (layer == image.layers.end() || layer->size != g.layer_size) {
      spdlog::warn("{}: its {} names layer {} ({} bytes), which the image does not have; skipped", what, name,
                   g.layer_digest, g.layer_size);
      continue;
    }
    const std::string path = IndexSidePath(cache, g);
    const bool gzip_lazy = g.kind == LayerIndexKind::kGzipIndexV4 || g.kind == LayerIndexKind::kGzipIndexV5;
    const bool lazy = gzip_lazy || g.kind == LayerIndexKind::kZstdCheckpointsV2;
    if (lazy && !PathExists(path)) {
      // Nothing installed: the layer's decoder reads its table at open and
      // each window (dictionary) when a read needs it, through the chunk cache.
      // A side file there (a gzip first pass's index, the mark of a zstd index
      // that proved wrong) wins.
      auto blob = pieces.OpenBlob(g.blob);
      if (!blob.ok()) {
        spdlog::warn("{}: not using its {} of layer {}: {}", what, name, g.layer_digest, blob.status().ToString());
        continue;
      }
      ByteSourcePtr source = std::move(blob).value();
      if (helpers.cache_index) source = helpers.cache_index(g.blob.digest, std::move(source));
      if (helpers.index_head_bytes > 0 && source->size() > 0) {
        // Its table is read at the layer's open: fetched now, beside the other pieces.
        jobs.push_back([source, n = std::min(source->size(), helpers.index_head_bytes), digest = g.blob.digest] {
          std::vector<uint8_t> head(static_cast<size_t>(n));
          if (Status s = ReadExactly(*source, 0, head); !s.ok()) {
            spdlog::debug("reading the head of index {} ahead: {}", digest, s.ToString());
          }
        });
      }
      use.lazy_indexes[g.layer_digest] = AccelUse::LazyIndex{g.kind, g.blob.digest, std::move(source), what};
      spdlog::info("{}: reading the {} of layer {} lazily ({} bytes: its table at open, {} on use)", what, name,
                   g.layer_digest, g.blob.size,
                   gzip_lazy ? "windows" : "dictionaries");
      use.indexed_layers.push_back(g.layer_digest);
    } else if (!PathExists(path)) {
      index_jobs.push_back(IndexJob{&g, path, Status::Ok()});
    } else {
      use.indexed_layers.push_back(g.layer_digest);
    }
  }
  for (IndexJob& j : index_jobs) jobs.push_back([&j, &pieces] { j.status = InstallIndex(pieces, *j.index, j.path); });
  std::vector<Status> tar_status(m.tar_indexes.size());
  for (size_t i = 0; i < m.tar_indexes.size(); ++i) {
    jobs.push_back([&, i] { tar_status[i] = InstallTarIndex(pieces, m.tar_indexes[i], image, cache); });
  }
  // Raw span tables of the layers whose index the artifact gives.
  std::vector<Result<std::shared_ptr<const RawSpanTable>>> raw_tables(m.raw_spans.size(), std::shared_ptr<const RawSpanTable>());
  for (size_t i = 0; i < m.raw_spans.size(); ++i) {
    const AccelManifest::LayerPiece& r = m.raw_spans[i];
    auto layer = std::find_if(image.layers.begin(), image.layers.end(),
                              [&](const Descriptor& d) { return d.digest == r.layer_digest && d.size == r.layer_size; });
    const bool indexed = std::any_of(m.layer_indexes.begin(), m.layer_indexes.end(),
                                     [&](const auto& g) { return g.layer_digest == r.layer_digest; });
    if (layer == image.layers.end() || !indexed) continue;
    jobs.push_back([&, i] { raw_tables[i] = LoadRawSpans(pieces, m.raw_spans[i], cache); });
  }
  // The first profile beside the rest; the others, in turn, only if it fails.
  std::optional<Result<std::shared_ptr<const AccessProfile>>> first_profile;
  if (!m.profiles.empty()) {
    jobs.push_back([&] {
      first_profile.emplace(LoadProfile(pieces, m.profiles[0], cache, what + " profile " + m.profiles[0].digest));
    });
  }
  if (helpers.pool != nullptr && jobs.size() > 1) {
    (void)helpers.pool->ParallelFor(jobs.size(), [&jobs](size_t i) {
      jobs[i]();
      return Status::Ok();
    });
  } else {
    for (const auto& job : jobs) job();
  }

  for (const IndexJob& j : index_jobs) {
    const std::string_view name = LayerIndexName(j.index->kind);
    if (!j.status.ok()) {
      spdlog::warn("{}: not using its {} of layer {}: {}", what, name, j.index->layer_digest, j.status.ToString());
      continue;
    }
    spdlog::info("{}: installed the {} of layer {} ({} bytes)", what, name, j.index->layer_digest, j.index->blob.size);
    use.indexed_layers.push_back(j.index->layer_digest);
  }
  for (size_t i = 0; i < m.tar_indexes.size(); ++i) {
    const AccelManifest::TarIndexPiece& t = m.tar_indexes[i];
    if (!tar_status[i].ok()) {
      spdlog::warn("{}: not using its tar index of layer {}: {}", what, t.layer_digest, tar_status[i].ToString());
    } else if (!PathExists(cache.SidePath(t.layer_digest, "tarindex"))) {
      use.tar_indexed_layers.insert(t.layer_digest);
    }
  }
  for (size_t i = 0; i < m.raw_spans.size(); ++i) {
    const std::string& layer = m.raw_spans[i].layer_digest;
    if (!raw_tables[i].ok()) {
      spdlog::warn("{}: not using its raw span table of layer {}: {}", what, layer, raw_tables[i].status().ToString());
    } else if (*raw_tables[i] &&
               std::find(use.indexed_layers.begin(), use.indexed_layers.end(), layer) != use.indexed_layers.end()) {
      use.raw_spans[layer] = std::move(raw_tables[i]).value();
    }
  }
  for (size_t i = 0; i < m.profiles.size(); ++i) {
    const Descriptor& p = m.profiles[i];
    auto profile = i == 0 ? std::move(*first_profile) : LoadProfile(pieces, p, cache, what + " profile " + p.digest);
    if (profile.ok()) {
      use.profile = std::move(profile).value();
      break;
    }
    spdlog::warn("{}: not using its profile {}: {}", what, p.digest, profile.status().ToString());
  }
  return use;
}

// The record of the artifact a mount of `image` used, kept in the cache.
Status KeepRecord(ChunkCache& cache, const ResolvedImage& image, const FetchedArtifact& artifact) {
  return WriteFileAtomically(RecordPath(cache, image.manifest_digest), artifact.reference + "\n" + artifact.bytes);
}

}  // namespace

Result<std::optional<FoundAccel>> FindAccel(ImageSource& source, const ResolvedImage& image) {
  OCIFS_ASSIGN_OR_RETURN(std::optional<FetchedArtifact> artifact, LookUp(source, image));
  if (!artifact) return std::optional<FoundAccel>();
  OCIFS_ASSIGN_OR_RETURN(AccelManifest m,
                         ParseAccelManifest(artifact->bytes, "acceleration artifact " + artifact->reference));
  return std::optional<FoundAccel>(FoundAccel{artifact->reference, std::move(m)});
}

Result<AccelChoice> AccelChoice::Parse(std::string_view text) {
  AccelChoice c;
  if (text == "auto" || text.empty()) return c;
  if (text == "off") {
    c.mode = Mode::kOff;
    return c;
  }
  auto ref = Reference::Parse(text);
  if (!ref.ok() || ref->digest.empty() || ref->transport != Reference::Transport::kDocker) {
    return InvalidArgument("--accel must be auto, off or an artifact REGISTRY/REPO@sha256:DIGEST, not '" +
                           std::string(text) + "'");
  }
  c.mode = Mode::kPinned;
  c.pinned = std::move(ref).value();
  return c;
}

Result<AccelCandidate> FindAccelForMount(const AccelChoice& choice, ImageSource& source, const ResolvedImage& image,
                                         const RegistryOptions& registry, ChunkCache& cache) {
  AccelCandidate c;
  switch (choice.mode) {
    case AccelChoice::Mode::kOff:
      return c;
    case AccelChoice::Mode::kPinned: {
      // A pinned artifact the cache's record holds (a CSI volume's remount,
      // say) is not fetched again: no round trip, and no failure if it was deleted.
      auto pinned = OpenImageSource(choice.pinned, registry);
      if (!pinned.ok()) return pinned.status().WithContext("--accel " + choice.pinned.ToString());
      c.source = std::move(pinned).value();
      std::optional<FetchedArtifact> artifact = ReadRecord(cache, image.manifest_digest);
      c.recorded = artifact && artifact->reference == choice.pinned.ToString();
      if (!c.recorded) {
        Descriptor desc;
        desc.digest = choice.pinned.digest;
        desc.media_type = std::string(media_type::kOciManifest);
        auto fetched = FetchArtifact(*c.source, choice.pinned, desc);
        if (!fetched.ok()) return fetched.status().WithContext("--accel " + choice.pinned.ToString());
        artifact = std::move(fetched).value();
      }
      c.reference = std::move(artifact->reference);
      c.manifest_bytes = std::move(artifact->bytes);
      return c;
    }
    case AccelChoice::Mode::kAuto:
      break;
  }
  if (image.reference.transport != Reference::Transport::kDocker) return c;
  std::optional<FetchedArtifact> artifact = ReadRecord(cache, image.manifest_digest);
  c.recorded = artifact.has_value();
  if (!c.recorded) {
    auto found = LookUp(source, image);
    if (!found.ok()) {
      spdlog::warn("no acceleration artifact: looking it up failed: {}", found.status().ToString());
      return c;
    }
    if (!found->has_value()) {
      spdlog::debug("no acceleration artifact for {}", image.manifest_digest);
      return c;
    }
    artifact = std::move(**found);
  }
  c.reference = std::move(artifact->reference);
  c.manifest_bytes = std::move(artifact->bytes);
  return c;
}

Result<AccelUse> InstallAccel(const AccelChoice& choice, Result<AccelCandidate> candidate, ImageSource& source,
                              const ResolvedImage& image, ChunkCache& cache, const AccelInstallHelpers& helpers) {
  const bool pinned = choice.mode == AccelChoice::Mode::kPinned;
  if (!candidate.ok()) {
    if (pinned) return candidate.status();
    spdlog::warn("no acceleration artifact: {}", candidate.status().ToString());
    return AccelUse{};
  }
  if (candidate->reference.empty()) return AccelUse{};
  const FetchedArtifact artifact{candidate->reference, candidate->manifest_bytes};
  ImageSource& pieces = candidate->source ? *candidate->source : source;
  auto use = Install(pieces, artifact, image, cache, helpers);
  if (!use.ok()) {
    if (pinned) return use.status().WithContext("--accel " + choice.pinned.ToString());
    spdlog::warn("not using {}: {}", artifact.reference, use.status().ToString());
    return AccelUse{};
  }
  if (candidate->recorded) return use;  // the record says so already: no rewrite (and fsync) at every mount
  if (Status s = KeepRecord(cache, image, artifact); !s.ok()) {
    spdlog::warn("not keeping the acceleration record: {}", s.ToString());
  }
  return use;
}

Result<AccelUse> ApplyAccel(const AccelChoice& choice, ImageSource& source, const ResolvedImage& image,
                            const RegistryOptions& registry, ChunkCache& cache) {
  return InstallAccel(choice, FindAccelForMount(choice, source, image, registry, cache), source, image, cache, {});
}

}  // namespace ocifs
