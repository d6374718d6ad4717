// IdentityService: CSI Identity over gRPC. Probe answers ready=false until
// the VolumeManager has finished recovering its mounts.
#pragma once

#include "csi.grpc.pb.h"
#include "csi/volume_manager.h"

namespace ocifs {

// The driver name, as in the CSIDriver object (docs/kubernetes.md).
inline constexpr char kDriverName[] = "oci-fs.csi.oci-fs.io";

class IdentityService final : public csi::v1::Identity::Service {
 public:
  explicit IdentityService(const VolumeManager* manager) : manager_(manager) {}

  grpc::Status GetPluginInfo(grpc::ServerContext*, const csi::v1::GetPluginInfoRequest*,
                             csi::v1::GetPluginInfoResponse* response) override;
  grpc::Status GetPluginCapabilities(grpc::ServerContext*,
                                     const csi::v1::GetPluginCapabilitiesRequest*,
                                     csi::v1::GetPluginCapabilitiesResponse* response) override;
  grpc::Status Probe(grpc::ServerContext*, const csi::v1::ProbeRequest*,
                     csi::v1::ProbeResponse* response) override;

 private:
  const VolumeManager* manager_;
};

}  // namespace ocifs
