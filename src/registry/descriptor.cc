#include "registry/descriptor.h"

#include <nlohmann/json.hpp>

#include "registry/digest.h"

namespace ocifs {

LayerCompression CompressionOfMediaType(std::string_view mt) {
  auto ends = [mt](std::string_view suffix) {
    return mt.size() >= suffix.size() && mt.substr(mt.size() - suffix.size()) == suffix;
  };
  if (mt == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
      mt == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") {
    return LayerCompression::kGzip;
  }
  bool oci = mt.starts_with("application/vnd.oci.image.layer.");
  if (!oci) return LayerCompression::kUnknown;
  if (ends(".tar+gzip")) return LayerCompression::kGzip;
  if (ends(".tar+zstd")) return LayerCompression::kZstd;
  if (ends(".tar")) return LayerCompression::kNone;
  return LayerCompression::kUnknown;
}

std::string_view LayerCompressionName(LayerCompression c) {
  switch (c) {
    case LayerCompression::kNone: return "none";
    case LayerCompression::kGzip: return "gzip";
    case LayerCompression::kZstd: return "zstd";
    case LayerCompression::kUnknown: return "unknown";
  }
  return "unknown";
}

Result<Descriptor> DescriptorFromJson(const nlohmann::json& j, std::string_view what) {
  std::string w(what);
  if (!j.is_object()) return Corrupt(w + ": descriptor is not an object");
  Descriptor d;
  auto media = j.find("mediaType");
  if (media != j.end()) {
    if (!media->is_string()) return Corrupt(w + ": mediaType is not a string");
    d.media_type = media->get<std::string>();
  }
  auto digest = j.find("digest");
  if (digest == j.end() || !digest->is_string()) return Corrupt(w + ": missing digest");
  d.digest = digest->get<std::string>();
  Status st = ValidateDigest(d.digest);
  if (!st.ok()) return Status(st.code() == Code::kUnsupported ? Code::kUnsupported : Code::kCorrupt,
                              w + ": " + st.message());
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return Corrupt(w + ": missing or negative size");
  }
  d.size = static_cast<uint64_t>(size->get<int64_t>());
  if (d.size > (uint64_t{1} << 50)) return Corrupt(w + ": implausible size " + std::to_string(d.size));
  auto artifact = j.find("artifactType");
  if (artifact != j.end()) {
    if (!artifact->is_string()) return Corrupt(w + ": artifactType is not a string");
    d.artifact_type = artifact->get<std::string>();
  }
  auto ann = j.find("annotations");
  if (ann != j.end() && ann->is_object()) {
    for (const auto& [k, v] : ann->items()) {
      if (v.is_string()) d.annotations[k] = v.get<std::string>();
    }
  }
  auto plat = j.find("platform");
  if (plat != j.end() && plat->is_object()) {
    Platform p;
    if (plat->contains("os") && (*plat)["os"].is_string()) p.os = (*plat)["os"].get<std::string>();
    if (plat->contains("architecture") && (*plat)["architecture"].is_string()) {
      p.architecture = (*plat)["architecture"].get<std::string>();
    }
    if (plat->contains("variant") && (*plat)["variant"].is_string()) {
      p.variant = (*plat)["variant"].get<std::string>();
    }
    d.platform = p;
  }
  return d;
}

nlohmann::json DescriptorToJson(const Descriptor& d) {
  nlohmann::json j = nlohmann::json::object();
  if (!d.media_type.empty()) j["mediaType"] = d.media_type;
  j["digest"] = d.digest;
  j["size"] = d.size;
  if (!d.artifact_type.empty()) j["artifactType"] = d.artifact_type;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform) {
    nlohmann::json p = {{"architecture", d.platform->architecture}, {"os", d.platform->os}};
    if (!d.platform->variant.empty()) p["variant"] = d.platform->variant;
    j["platform"] = std::move(p);
  }
  return j;
}

}  // namespace ocifs
