#include "csi/volume_spec.h"

#include "config/config_builder.h"

#include <string_view>

namespace ocifs {
namespace {

constexpr std::string_view kKubeletPrefix = "csi.storage.k8s.io/";
constexpr std::string_view kEphemeralKey = "csi.storage.k8s.io/ephemeral";

bool IsReadOnlyMode(AccessMode mode) {
  return mode == AccessMode::kSingleNodeReaderOnly || mode == AccessMode::kMultiNodeReaderOnly;
}

std::string_view ModeName(AccessMode mode) {
  switch (mode) {
    case AccessMode::kUnknown: return "UNKNOWN";
    case AccessMode::kSingleNodeWriter: return "SINGLE_NODE_WRITER";
    case AccessMode::kSingleNodeReaderOnly: return "SINGLE_NODE_READER_ONLY";
    case AccessMode::kMultiNodeReaderOnly: return "MULTI_NODE_READER_ONLY";
    case AccessMode::kMultiNodeSingleWriter: return "MULTI_NODE_SINGLE_WRITER";
    case AccessMode::kMultiNodeMultiWriter: return "MULTI_NODE_MULTI_WRITER";
    case AccessMode::kSingleNodeSingleWriter: return "SINGLE_NODE_SINGLE_WRITER";
    case AccessMode::kSingleNodeMultiWriter: return "SINGLE_NODE_MULTI_WRITER";
  }
  return "UNKNOWN";
}

}  // namespace

bool VolumeSpec::SameAs(const VolumeSpec& o) const {
  return volume_id == o.volume_id && target_path == o.target_path && image == o.image &&
         attributes == o.attributes;
}

Result<VolumeSpec> ParseVolumeSpec(const PublishArgs& args) {
  if (args.volume_id.empty()) return InvalidArgument("volume_id is required");
  if (args.target_path.empty()) return InvalidArgument("target_path is required");
  if (args.target_path.front() != '/') {
    return InvalidArgument("target_path must be absolute: " + args.target_path);
  }
  if (!args.has_capability) return InvalidArgument("volume_capability is required");
  if (args.block) {
    return InvalidArgument("block volumes are not supported: oci-fs volumes are read-only "
                           "filesystems holding disk.img (use volumeMode: Filesystem)");
  }

  VolumeSpec spec;
  spec.volume_id = args.volume_id;
  spec.target_path = args.target_path;
  const auto& ctx = args.volume_context;
  if (auto it = ctx.find(std::string(kEphemeralKey)); it != ctx.end()) {
    spec.ephemeral = it->second == "true";
  }

  MountConfigBuilder mount;  // checks each attribute with the option table's parser
  for (const auto& [key, value] : ctx) {
    if (key.rfind(kKubeletPrefix, 0) == 0) continue;
    if (key == "image") {
      spec.image = value;
      continue;
    }
    Status s = mount.SetVolumeAttribute(key, value);
    if (s.code() == Code::kNotFound) {
      return InvalidArgument("unknown volume attribute \"" + key + "\" (known: image, " + VolumeAttributeNames() +
                             ")");
    }
    OCIFS_RETURN_IF_ERROR(s);
    spec.attributes[key] = value;
  }
  OCIFS_RETURN_IF_ERROR(mount.Build("/").status());

  if (spec.ephemeral) {
    if (spec.image.empty()) {
      return InvalidArgument("inline volume needs the volume attribute \"image\" "
                             "(an image reference such as registry.example/disks/fedora:40)");
    }
  } else {
    if (!IsReadOnlyMode(args.access_mode)) {
      return InvalidArgument(
          "access mode " + std::string(ModeName(args.access_mode)) +
          " is not supported: oci-fs volumes are read-only; use accessModes [ReadOnlyMany]");
    }
    if (spec.image.empty()) spec.image = args.volume_id;
  }
  if (spec.image.find_first_of(" \t\n\r") != std::string::npos || spec.image.front() == '-') {
    return InvalidArgument("image reference \"" + spec.image + "\" is malformed");
  }
  return spec;
}

}  // namespace ocifs
