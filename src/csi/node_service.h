// NodeService: CSI Node over gRPC. Converts requests to PublishArgs /
// VolumeSpec, calls VolumeManager, and maps Status to gRPC codes
// (ToGrpcStatus). Secrets are read here and go no further than the
// volume's credentials file; they are never logged.
#pragma once

#include <string>

#include "csi.grpc.pb.h"
#include "csi/volume_manager.h"

namespace ocifs {

class NodeService final : public csi::v1::Node::Service {
 public:
  NodeService(VolumeManager* manager, std::string node_id)
      : manager_(manager), node_id_(std::move(node_id)) {}

  grpc::Status NodePublishVolume(grpc::ServerContext*, const csi::v1::NodePublishVolumeRequest*,
                                 csi::v1::NodePublishVolumeResponse*) override;
  grpc::Status NodeUnpublishVolume(grpc::ServerContext*,
                                   const csi::v1::NodeUnpublishVolumeRequest*,
                                   csi::v1::NodeUnpublishVolumeResponse*) override;
  grpc::Status NodeGetVolumeStats(grpc::ServerContext*, const csi::v1::NodeGetVolumeStatsRequest*,
                                  csi::v1::NodeGetVolumeStatsResponse*) override;
  grpc::Status NodeGetCapabilities(grpc::ServerContext*,
                                   const csi::v1::NodeGetCapabilitiesRequest*,
                                   csi::v1::NodeGetCapabilitiesResponse*) override;
  grpc::Status NodeGetInfo(grpc::ServerContext*, const csi::v1::NodeGetInfoRequest*,
                           csi::v1::NodeGetInfoResponse*) override;

 private:
  VolumeManager* manager_;
  std::string node_id_;
};

}  // namespace ocifs
