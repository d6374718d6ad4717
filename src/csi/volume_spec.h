// VolumeSpec: what one NodePublishVolume asks for, validated, without gRPC
// types (the Node service converts the request to PublishArgs first).
//
// Two kinds of volume (docs/kubernetes.md):
//  - inline ephemeral (volume_context["csi.storage.k8s.io/ephemeral"] ==
//    "true"): the image is volume_context["image"], required. Any access mode
//    is accepted: kubelet sends SINGLE_NODE_WRITER for them.
//  - pre-provisioned PV: the image is volume_context["image"] if set, else the
//    volume_handle (volume_id). Only read-only access modes are accepted.
// Optional attributes for both: the mount option table's volume attributes
// (config/option_table.h: diskPath, disk, mode, platform, tlsVerify, prefetchAll,
// prefetchRate, profile, clusterCache), each checked by the table's parser.
// Keys under "csi.storage.k8s.io/" are kubelet's and ignored; any other key
// is refused, so that a typo is not silently ignored.
// Block volumes are refused. The mount is always read-only.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "ocifs/status.h"

namespace ocifs {

// CSI VolumeCapability.AccessMode.Mode values (csi.proto).
enum class AccessMode : int {
  kUnknown = 0,
  kSingleNodeWriter = 1,
  kSingleNodeReaderOnly = 2,
  kMultiNodeReaderOnly = 3,
  kMultiNodeSingleWriter = 4,
  kMultiNodeMultiWriter = 5,
  kSingleNodeSingleWriter = 6,
  kSingleNodeMultiWriter = 7,
};

struct PublishArgs {
  std::string volume_id;
  std::string target_path;
  bool has_capability = false;
  bool block = false;
  AccessMode access_mode = AccessMode::kUnknown;
  bool readonly = false;
  std::map<std::string, std::string> volume_context;
};

struct VolumeSpec {
  std::string volume_id;
  std::string target_path;
  std::string image;      // the reference as the user wrote it (tag or digest)
  // The mount's volume attributes as given (the table's names), valid; the
  // launcher applies them over the node's defaults (MountConfigBuilder).
  std::map<std::string, std::string> attributes;
  bool ephemeral = false;

  // Same volume, same target, same attributes: a repeated publish.
  bool SameAs(const VolumeSpec& other) const;
};

// InvalidArgument with a message naming the field when the request is not
// one we serve.
Result<VolumeSpec> ParseVolumeSpec(const PublishArgs& args);

}  // namespace ocifs
