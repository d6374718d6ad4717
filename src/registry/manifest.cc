#include "registry/manifest.h"

#include <nlohmann/json.hpp>

namespace ocifs {

std::string ManifestAcceptHeader() {
  return std::string(media_type::kOciManifest) + ", " + std::string(media_type::kOciIndex) + ", " +
         std::string(media_type::kDockerManifest) + ", " + std::string(media_type::kDockerManifestList);
}

bool IsIndexMediaType(std::string_view mt) {
  return mt == media_type::kOciIndex || mt == media_type::kDockerManifestList;
}

bool IsImageManifestMediaType(std::string_view mt) {
  return mt == media_type::kOciManifest || mt == media_type::kDockerManifest;
}

Result<ParsedManifest> ParseManifest(std::string_view bytes, std::string_view content_type, std::string_view what) {
  std::string w(what);
  if (bytes.size() > kMaxManifestBytes) return Corrupt(w + " is larger than 4 MiB");
  if (size_t semi = content_type.find(';'); semi != std::string_view::npos) content_type = content_type.substr(0, semi);
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  if (content_type == media_type::kDockerSchema1 || content_type == media_type::kDockerSchema1Signed) {
    return Unsupported(w + " is a Docker schema 1 manifest, which is not supported (re-push the image "
                           "with a current docker, or convert it with skopeo copy)");
  }
  nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corrupt(w + " is not valid JSON");
  if (!j.is_object()) return Corrupt(w + " is not a JSON object");
  auto sv = j.find("schemaVersion");
  if (sv != j.end() && sv->is_number_integer() && sv->get<int64_t>() == 1) {
    return Unsupported(w + " is a Docker schema 1 manifest, which is not supported (re-push the image "
                           "with a current docker, or convert it with skopeo copy)");
  }
  if (sv == j.end() || !sv->is_number_integer() || sv->get<int64_t>() != 2) {
    return Corrupt(w + ": schemaVersion is not 2");
  }
  ParsedManifest m;
  auto mt = j.find("mediaType");
  if (mt != j.end() && mt->is_string()) {
    m.media_type = mt->get<std::string>();
  } else if (!content_type.empty() && content_type != "application/json" &&
             content_type != "application/octet-stream" && content_type != "text/plain") {
    m.media_type = std::string(content_type);
  } else if (j.contains("manifests")) {
    m.media_type = std::string(media_type::kOciIndex);
  } else {
    m.media_type = std::string(media_type::kOciManifest);
  }
  if (IsIndexMediaType(m.media_type)) {
    m.is_index = true;
    auto list = j.find("manifests");
    if (list == j.end() || !list->is_array()) return Corrupt(w + ": index without a \"manifests\" array");
    if (list->size() > kMaxLayers) return Corrupt(w + ": index lists too many manifests");
    for (size_t i = 0; i < list->size(); ++i) {
      OCIFS_ASSIGN_OR_RETURN(Descriptor d, DescriptorFromJson((*list)[i], w + ": manifests[" + std::to_string(i) + "]"));
      m.manifests.push_back(std::move(d));
    }
    return m;
  }
  if (!IsImageManifestMediaType(m.media_type)) {
    return Unsupported(w + " has media type \"" + m.media_type.substr(0, 200) +
                       "\", which is not an image manifest or index");
  }
  if (auto at = j.find("artifactType"); at != j.end() && at->is_string()) m.artifact_type = at->get<std::string>();
  auto config = j.find("config");
  if (config == j.end()) return Corrupt(w + ": image manifest without a config");
  OCIFS_ASSIGN_OR_RETURN(m.config, DescriptorFromJson(*config, w + ": config"));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return Corrupt(w + ": image manifest without a \"layers\" array");
  if (layers->size() > kMaxLayers) return Corrupt(w + ": too many layers (" + std::to_string(layers->size()) + ")");
  for (size_t i = 0; i < layers->size(); ++i) {
    OCIFS_ASSIGN_OR_RETURN(Descriptor d, DescriptorFromJson((*layers)[i], w + ": layers[" + std::to_string(i) + "]"));
    m.layers.push_back(std::move(d));
  }
  return m;
}

Result<Descriptor> SelectPlatform(const ParsedManifest& index, const Platform& want, std::string_view what) {
  std::string present;
  for (const auto& d : index.manifests) {
    if (!d.platform) continue;
    if (want.Matches(*d.platform)) return d;
    if (d.platform->os == "unknown") continue;  // attestation manifests
    if (!present.empty()) present += ", ";
    present += d.platform->ToString();
  }
  return NotFound("no image for platform " + want.ToString() + " in " + std::string(what) + "; it has " +
                  (present.empty() ? std::string("no platform entries") : present) + " (choose one with --platform)");
}

}  // namespace ocifs
