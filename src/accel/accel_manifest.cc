#include "accel/accel_manifest.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <ctime>
#include <set>

#include "registry/digest.h"

namespace ocifs {
namespace {

nlohmann::json DescriptorJson(const Descriptor& d) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

Result<uint64_t> ParseSizeAnnotation(const std::string& text, const std::string& what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return Corrupt(what + ": annotation " + std::string(accel::kLayerSizeAnnotation) + " is not a byte count: '" +
                   text.substr(0, 40) + "'");
  }
  return v;
}

// The layer a per-layer piece names by its annotations.
Status ParseLayerAnnotations(const Descriptor& d, std::string_view name, const std::string& piece_what,
                             std::string* digest, uint64_t* size) {
  auto layer = d.annotations.find(std::string(accel::kLayerDigestAnnotation));
  auto size_text = d.annotations.find(std::string(accel::kLayerSizeAnnotation));
  if (layer == d.annotations.end() || size_text == d.annotations.end()) {
    return Corrupt(piece_what + ": a " + std::string(name) + " without the annotations " +
                   std::string(accel::kLayerDigestAnnotation) + " and " + std::string(accel::kLayerSizeAnnotation));
  }
  *digest = layer->second;
  if (Status s = ValidateDigest(*digest); !s.ok()) return Corrupt(piece_what + ": layer " + s.message());
  OCIFS_ASSIGN_OR_RETURN(*size, ParseSizeAnnotation(size_text->second, piece_what));
  return Status::Ok();
}

nlohmann::json LayerPieceJson(Descriptor d, std::string_view media_type, const std::string& layer_digest,
                              uint64_t layer_size) {
  d.media_type = std::string(media_type);
  d.annotations[std::string(accel::kLayerDigestAnnotation)] = layer_digest;
  d.annotations[std::string(accel::kLayerSizeAnnotation)] = std::to_string(layer_size);
  return DescriptorJson(d);
}

constexpr LayerIndexKind kKinds[] = {LayerIndexKind::kGzipIndex, LayerIndexKind::kGzipIndexV4, LayerIndexKind::kGzipIndexV5,
                                     LayerIndexKind::kZstdFrames, LayerIndexKind::kZstdCheckpoints,
                                     LayerIndexKind::kZstdCheckpointsV2};

}  // namespace

std::string_view LayerIndexMediaType(LayerIndexKind kind) {
  switch (kind) {
    case LayerIndexKind::kGzipIndex: return accel::kGzipIndexMediaType;
    case LayerIndexKind::kGzipIndexV4: return accel::kGzipIndexV4MediaType;
    case LayerIndexKind::kGzipIndexV5: return accel::kGzipIndexV5MediaType;
    case LayerIndexKind::kZstdFrames: return accel::kZstdFramesMediaType;
    case LayerIndexKind::kZstdCheckpoints: return accel::kZstdCheckpointsMediaType;
    case LayerIndexKind::kZstdCheckpointsV2: return accel::kZstdCheckpointsV2MediaType;
  }
  return {};
}

std::string_view LayerIndexName(LayerIndexKind kind) {
  switch (kind) {
    case LayerIndexKind::kGzipIndex:
    case LayerIndexKind::kGzipIndexV4:
    case LayerIndexKind::kGzipIndexV5: return "gzip index";
    case LayerIndexKind::kZstdFrames: return "zstd frame table";
    case LayerIndexKind::kZstdCheckpoints:
    case LayerIndexKind::kZstdCheckpointsV2: return "zstd checkpoint index";
  }
  return {};
}

std::string SerializeAccelManifest(const AccelManifest& m) {
  nlohmann::json layers = nlohmann::json::array();
  for (const AccelManifest::LayerIndex& g : m.layer_indexes) {
    layers.push_back(LayerPieceJson(g.blob, LayerIndexMediaType(g.kind), g.layer_digest, g.layer_size));
  }
  for (const AccelManifest::TarIndexPiece& t : m.tar_indexes) {
    layers.push_back(LayerPieceJson(t.blob, accel::kTarIndexMediaType, t.layer_digest, t.layer_size));
  }
  for (const AccelManifest::LayerPiece& r : m.raw_spans) {
    layers.push_back(LayerPieceJson(r.blob, accel::kRawSpansMediaType, r.layer_digest, r.layer_size));
  }
  for (Descriptor d : m.profiles) {
    d.media_type = std::string(accel::kProfileMediaType);
    layers.push_back(DescriptorJson(d));
  }
  nlohmann::json annotations = {{std::string(accel::kVersionAnnotation), "1"}};
  if (!m.created.empty()) annotations[std::string(accel::kCreatedAnnotation)] = m.created;
  nlohmann::json j = {
      {"schemaVersion", 2},
      {"mediaType", std::string(media_type::kOciManifest)},
      {"artifactType", std::string(accel::kArtifactType)},
      {"config", {{"mediaType", std::string(accel::kEmptyMediaType)}, {"digest", std::string(accel::kEmptyDigest)},
                  {"size", 2}}},
      {"subject", {{"mediaType", m.subject.media_type}, {"digest", m.subject.digest}, {"size", m.subject.size}}},
      {"layers", layers},
      {"annotations", annotations}};
  return j.dump();
}

Result<AccelManifest> ParseAccelManifest(std::string_view text, std::string_view what_view) {
  const std::string what(what_view);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corrupt(what + ": not JSON");
  if (!j.is_object()) return Corrupt(what + ": not a JSON object");
  auto type = j.find("artifactType");
  if (type == j.end() || !type->is_string()) return Unsupported(what + ": has no artifactType");
  if (type->get<std::string>() != accel::kArtifactType) {
    return Unsupported(what + ": artifactType " + type->get<std::string>().substr(0, 100) + ", not " +
                       std::string(accel::kArtifactType));
  }
  auto media = j.find("mediaType");
  if (media != j.end() && (!media->is_string() || media->get<std::string>() != media_type::kOciManifest)) {
    return Corrupt(what + ": mediaType is not " + std::string(media_type::kOciManifest));
  }
  AccelManifest m;
  auto subject = j.find("subject");
  if (subject == j.end()) return Corrupt(what + ": has no subject");
  OCIFS_ASSIGN_OR_RETURN(m.subject, DescriptorFromJson(*subject, what + " subject"));
  auto config = j.find("config");
  if (config == j.end()) return Corrupt(what + ": has no config");
  OCIFS_ASSIGN_OR_RETURN(Descriptor cfg, DescriptorFromJson(*config, what + " config"));
  (void)cfg;  // the empty descriptor by the format; nothing in it is used
  auto ann = j.find("annotations");
  if (ann != j.end() && ann->is_object()) {
    auto created = ann->find(std::string(accel::kCreatedAnnotation));
    if (created != ann->end() && created->is_string()) m.created = created->get<std::string>();
  }
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return Corrupt(what + ": layers is not an array");
  if (layers->size() > accel::kMaxPieces) {
    return Corrupt(what + ": " + std::to_string(layers->size()) + " pieces, more than " +
                   std::to_string(accel::kMaxPieces));
  }
  std::set<std::string> indexed, tar_indexed, raw_listed;
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string piece_what = what + " piece " + std::to_string(i);
    OCIFS_ASSIGN_OR_RETURN(Descriptor d, DescriptorFromJson((*layers)[i], piece_what));
    if (d.size > accel::kMaxPieceBytes) {
      return Corrupt(piece_what + ": " + std::to_string(d.size) + " bytes, more than " +
                     std::to_string(accel::kMaxPieceBytes));
    }
    const LayerIndexKind* kind = nullptr;
    for (const LayerIndexKind& k : kKinds) {
      if (d.media_type == LayerIndexMediaType(k)) kind = &k;
    }
    if (kind != nullptr) {
      AccelManifest::LayerIndex g;
      g.kind = *kind;
      OCIFS_RETURN_IF_ERROR(
          ParseLayerAnnotations(d, LayerIndexName(*kind), piece_what, &g.layer_digest, &g.layer_size));
      if (!indexed.insert(g.layer_digest).second) {
        return Corrupt(piece_what + ": a second index for layer " + g.layer_digest);
      }
      g.blob = std::move(d);
      m.layer_indexes.push_back(std::move(g));
    } else if (d.media_type == accel::kTarIndexMediaType || d.media_type == accel::kRawSpansMediaType) {
      const bool tar = d.media_type == accel::kTarIndexMediaType;
      const std::string name = tar ? "tar index" : "raw span table";
      AccelManifest::LayerPiece t;
      OCIFS_RETURN_IF_ERROR(ParseLayerAnnotations(d, name, piece_what, &t.layer_digest, &t.layer_size));
      if (!(tar ? tar_indexed : raw_listed).insert(t.layer_digest).second) {
        return Corrupt(piece_what + ": a second " + name + " for layer " + t.layer_digest);
      }
      t.blob = std::move(d);
      (tar ? m.tar_indexes : m.raw_spans).push_back(std::move(t));
    } else if (d.media_type == accel::kProfileMediaType) {
      m.profiles.push_back(std::move(d));
    }  // else: a piece of a later version; skipped
  }
  return m;
}

std::string Rfc3339Now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace ocifs
