#include "registry/oci_layout_source.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "base/file_source.h"
#include "base/unique_fd.h"
#include "registry/digest.h"
#include "registry/image_resolver.h"
#include "registry/manifest.h"

namespace ocifs {
namespace {
constexpr const char* kRefName = "org.opencontainers.image.ref.name";
}

Result<std::unique_ptr<OciLayoutSource>> OciLayoutSource::Open(const Reference& ref, const RegistryOptions& options) {
  if (ref.transport != Reference::Transport::kOciLayout) return InvalidArgument("not an oci: reference: " + ref.ToString());
  OCIFS_ASSIGN_OR_RETURN(Platform platform, WantedPlatform(options));
  struct stat st;
  std::string index = ref.layout_path + "/index.json";
  if (::stat(index.c_str(), &st) != 0) {
    return Status(errno == ENOENT ? Code::kNotFound : Code::kIoError,
                  "oci:" + ref.layout_path + " is not an OCI image layout (no index.json)");
  }
  return std::make_unique<OciLayoutSource>(ref, std::move(platform));
}

std::string OciLayoutSource::BlobPath(const std::string& digest) const {
  size_t colon = digest.find(':');
  return ref_.layout_path + "/blobs/" + digest.substr(0, colon) + "/" + digest.substr(colon + 1);
}

Result<std::string> OciLayoutSource::ReadFileBounded(const std::string& path, uint64_t max_bytes) const {
  OCIFS_ASSIGN_OR_RETURN(auto file, FileSource::Open(path));
  if (file->size() > max_bytes) {
    return Corrupt(path + " is larger than expected (" + std::to_string(file->size()) + " > " +
                   std::to_string(max_bytes) + " bytes)");
  }
  std::string bytes(static_cast<size_t>(file->size()), '\0');
  OCIFS_RETURN_IF_ERROR(ReadExactly(*file, 0, {reinterpret_cast<uint8_t*>(bytes.data()), bytes.size()}));
  return bytes;
}

Result<ResolvedImage> OciLayoutSource::Resolve(const BesideConfigFn& beside_config) {
  std::string index_path = ref_.layout_path + "/index.json";
  OCIFS_ASSIGN_OR_RETURN(std::string index_bytes, ReadFileBounded(index_path, kMaxManifestBytes));
  OCIFS_ASSIGN_OR_RETURN(ParsedManifest index,
                         ParseManifest(index_bytes, media_type::kOciIndex, "oci:" + ref_.layout_path + " index.json"));
  if (!index.is_index) return Corrupt(index_path + " is not an image index");
  std::optional<Descriptor> chosen;
  if (!ref_.digest.empty()) {
    for (const auto& d : index.manifests) {
      if (d.digest == ref_.digest) chosen = d;
    }
    if (!chosen) {
      // Any manifest blob of the layout, e.g. one platform of an index.
      OCIFS_ASSIGN_OR_RETURN(auto file, FileSource::Open(BlobPath(ref_.digest)));
      chosen = Descriptor{"", ref_.digest, file->size(), {}, std::nullopt};
    }
  } else if (!ref_.tag.empty()) {
    for (const auto& d : index.manifests) {
      auto it = d.annotations.find(kRefName);
      if (it != d.annotations.end() && it->second == ref_.tag) {
        chosen = d;
        break;
      }
    }
  } else if (index.manifests.size() == 1) {
    chosen = index.manifests[0];
  }
  if (!chosen) {
    std::string names;
    for (const auto& d : index.manifests) {
      auto it = d.annotations.find(kRefName);
      if (!names.empty()) names += ", ";
      names += it != d.annotations.end() ? it->second : d.digest;
    }
    std::string which = ref_.tag.empty() ? "no tag given and the layout holds " + std::to_string(index.manifests.size()) +
                                               " images"
                                         : "no image tagged \"" + ref_.tag + "\"";
    return NotFound("oci:" + ref_.layout_path + ": " + which + " (it has: " + (names.empty() ? "none" : names) + ")");
  }
  auto fetch_manifest = [this](const Descriptor& d) -> Result<FetchedManifest> {
    OCIFS_RETURN_IF_ERROR(ValidateDigest(d.digest));
    OCIFS_ASSIGN_OR_RETURN(std::string bytes, ReadFileBounded(BlobPath(d.digest), kMaxManifestBytes));
    std::span<const uint8_t> span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    OCIFS_RETURN_IF_ERROR(VerifyDigest(span, d.digest, "manifest " + d.digest + " of oci:" + ref_.layout_path));
    return FetchedManifest{d.media_type, d.digest, std::move(bytes)};
  };
  auto fetch_blob = [this](const Descriptor& d) { return FetchBlob(d); };
  OCIFS_ASSIGN_OR_RETURN(FetchedManifest top, fetch_manifest(*chosen));
  return ResolveImage(ref_, std::move(top), platform_, fetch_manifest, fetch_blob, beside_config);
}

Result<ByteSourcePtr> OciLayoutSource::OpenBlob(const Descriptor& blob) {
  OCIFS_RETURN_IF_ERROR(ValidateDigest(blob.digest));
  auto file = FileSource::Open(BlobPath(blob.digest));
  if (!file.ok()) {
    return NotFound("blob " + blob.digest + " unknown in oci:" + ref_.layout_path + ": " + file.status().message());
  }
  if ((*file)->size() != blob.size) {
    return Corrupt("blob " + blob.digest + " of oci:" + ref_.layout_path + " has " + std::to_string((*file)->size()) +
                   " bytes, its descriptor says " + std::to_string(blob.size));
  }
  return ByteSourcePtr(std::move(file).value());
}

Result<std::vector<uint8_t>> OciLayoutSource::FetchBlob(const Descriptor& blob) {
  OCIFS_RETURN_IF_ERROR(ValidateDigest(blob.digest));
  if (blob.size > kMaxFetchBlobBytes) {
    return InvalidArgument("blob " + blob.digest + " is too large to fetch whole (limit 64 MiB)");
  }
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr src, OpenBlob(blob));
  std::vector<uint8_t> bytes(static_cast<size_t>(blob.size));
  OCIFS_RETURN_IF_ERROR(ReadExactly(*src, 0, bytes));
  OCIFS_RETURN_IF_ERROR(VerifyDigest(bytes, blob.digest, "blob " + blob.digest + " of oci:" + ref_.layout_path));
  return bytes;
}

}  // namespace ocifs
