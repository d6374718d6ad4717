#include "csi/node_service.h"

#include <spdlog/spdlog.h>

#include "csi/auth_file.h"
#include "csi/grpc_status.h"
#include "csi/volume_spec.h"

namespace ocifs {
namespace {

PublishArgs ToPublishArgs(const csi::v1::NodePublishVolumeRequest& req) {
  PublishArgs args;
  args.volume_id = req.volume_id();
  args.target_path = req.target_path();
  args.has_capability = req.has_volume_capability();
  args.block = req.volume_capability().has_block();
  args.access_mode = static_cast<AccessMode>(req.volume_capability().access_mode().mode());
  args.readonly = req.readonly();
  args.volume_context.insert(req.volume_context().begin(), req.volume_context().end());
  return args;
}

grpc::Status Fail(std::string_view rpc, const Status& status) {
  spdlog::warn("csi: {}: {}", rpc, status.ToString());
  return ToGrpcStatus(status);
}

}  // namespace

grpc::Status NodeService::NodePublishVolume(grpc::ServerContext*,
                                            const csi::v1::NodePublishVolumeRequest* req,
                                            csi::v1::NodePublishVolumeResponse*) {
  spdlog::info("csi: NodePublishVolume {} at {}", req->volume_id(), req->target_path());
  auto spec = ParseVolumeSpec(ToPublishArgs(*req));
  if (!spec.ok()) return Fail("NodePublishVolume", spec.status());
  std::map<std::string, std::string> secrets(req->secrets().begin(), req->secrets().end());
  auto docker_config = DockerConfigFromSecrets(secrets);
  if (!docker_config.ok()) return Fail("NodePublishVolume", docker_config.status());
  Status s = manager_->Publish(*spec, *docker_config);
  if (!s.ok()) return Fail("NodePublishVolume", s);
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeUnpublishVolume(grpc::ServerContext*,
                                              const csi::v1::NodeUnpublishVolumeRequest* req,
                                              csi::v1::NodeUnpublishVolumeResponse*) {
  spdlog::info("csi: NodeUnpublishVolume {} at {}", req->volume_id(), req->target_path());
  Status s = manager_->Unpublish(req->volume_id(), req->target_path());
  if (!s.ok()) return Fail("NodeUnpublishVolume", s);
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetVolumeStats(grpc::ServerContext*,
                                             const csi::v1::NodeGetVolumeStatsRequest* req,
                                             csi::v1::NodeGetVolumeStatsResponse* resp) {
  auto stats = manager_->Stats(req->volume_id(), req->volume_path());
  if (!stats.ok()) return Fail("NodeGetVolumeStats", stats.status());
  resp->mutable_volume_condition()->set_abnormal(stats->abnormal);
  resp->mutable_volume_condition()->set_message(stats->abnormal ? stats->condition : "mounted");
  if (!stats->abnormal) {
    auto* bytes = resp->add_usage();
    bytes->set_unit(csi::v1::VolumeUsage::BYTES);
    bytes->set_total(stats->total_bytes);
    bytes->set_used(stats->used_bytes);
    bytes->set_available(stats->available_bytes);
    auto* inodes = resp->add_usage();
    inodes->set_unit(csi::v1::VolumeUsage::INODES);
    inodes->set_total(stats->total_inodes);
    inodes->set_used(stats->used_inodes);
    inodes->set_available(stats->available_inodes);
  }
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetCapabilities(grpc::ServerContext*,
                                              const csi::v1::NodeGetCapabilitiesRequest*,
                                              csi::v1::NodeGetCapabilitiesResponse* resp) {
  resp->add_capabilities()->mutable_rpc()->set_type(
      csi::v1::NodeServiceCapability::RPC::GET_VOLUME_STATS);
  // kubelet shows a volume's condition (an event on its pod) only when asked to.
  resp->add_capabilities()->mutable_rpc()->set_type(
      csi::v1::NodeServiceCapability::RPC::VOLUME_CONDITION);
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetInfo(grpc::ServerContext*, const csi::v1::NodeGetInfoRequest*,
                                      csi::v1::NodeGetInfoResponse* resp) {
  resp->set_node_id(node_id_);
  return grpc::Status::OK;
}

}  // namespace ocifs
