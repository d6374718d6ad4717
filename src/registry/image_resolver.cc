#include "registry/image_resolver.h"

#include <system_error>
#include <thread>

#include "registry/manifest.h"

namespace ocifs {

Result<ResolvedImage> ResolveImage(const Reference& ref, FetchedManifest top, const Platform& want,
                                   const FetchManifestFn& fetch_manifest, const FetchBlobFn& fetch_blob,
                                   const ImageSource::BesideConfigFn& beside_config) {
  ResolvedImage out;
  out.reference = ref;
  if (out.reference.digest.empty()) out.reference.digest = top.digest;
  FetchedManifest current = std::move(top);
  std::optional<Platform> index_platform;
  ParsedManifest parsed;
  for (int depth = 0;; ++depth) {
    OCIFS_ASSIGN_OR_RETURN(parsed, ParseManifest(current.bytes, current.media_type, "manifest " + current.digest));
    if (!parsed.is_index) break;
    if (depth == 3) return Corrupt("manifest " + current.digest + ": indexes nested more than 3 deep");
    if (out.index_digest.empty()) out.index_digest = current.digest;
    OCIFS_ASSIGN_OR_RETURN(Descriptor chosen,
                           SelectPlatform(parsed, want, "index " + current.digest + " of " + ref.ToString()));
    index_platform = chosen.platform;
    OCIFS_ASSIGN_OR_RETURN(current, fetch_manifest(chosen));
    if (current.media_type.empty()) current.media_type = chosen.media_type;
  }
  out.manifest_digest = current.digest;
  out.manifest_media_type = parsed.media_type;
  out.artifact_type = parsed.artifact_type;
  out.manifest_size = current.bytes.size();
  out.config = parsed.config;
  out.layers = std::move(parsed.layers);
  if (out.config.size > kMaxFetchBlobBytes) {
    return Corrupt("config " + out.config.digest + " of " + ref.ToString() + " is implausibly large (" +
                   std::to_string(out.config.size) + " bytes)");
  }
  if (index_platform) out.platform = *index_platform;
  Result<std::vector<uint8_t>> fetched = std::vector<uint8_t>();
  {
    // The caller's work beside the config's round trip; joined before the config is used.
    std::jthread beside;
    if (beside_config) {
      try {
        beside = std::jthread([&beside_config, &out] { beside_config(out); });
      } catch (const std::system_error&) {
        beside_config(out);  // no thread to spare: in turn
      }
    }
    fetched = fetch_blob(out.config);
  }
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> config_bytes, std::move(fetched));
  out.config_json = nlohmann::json::parse(config_bytes.begin(), config_bytes.end(), nullptr, false);
  if (out.config_json.is_discarded() || !out.config_json.is_object()) {
    return Corrupt("config " + out.config.digest + " of " + ref.ToString() + " is not a JSON object");
  }
  auto str = [&](const char* key) {
    auto it = out.config_json.find(key);
    return it != out.config_json.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  out.platform = Platform{str("os"), str("architecture"), str("variant")};
  if (out.platform.os.empty() && index_platform) out.platform = *index_platform;
  return out;
}

}  // namespace ocifs
