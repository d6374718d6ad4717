#include "csi/identity_service.h"

#ifndef OCIFS_VERSION
#define OCIFS_VERSION "0.0.0"
#endif

namespace ocifs {

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*,
                                            const csi::v1::GetPluginInfoRequest*,
                                            csi::v1::GetPluginInfoResponse* response) {
  response->set_name(kDriverName);
  response->set_vendor_version(OCIFS_VERSION);
  return grpc::Status::OK;
}

grpc::Status IdentityService::GetPluginCapabilities(
    grpc::ServerContext*, const csi::v1::GetPluginCapabilitiesRequest*,
    csi::v1::GetPluginCapabilitiesResponse*) {
  // A node-only plugin: no CONTROLLER_SERVICE, no topology constraints.
  return grpc::Status::OK;
}

grpc::Status IdentityService::Probe(grpc::ServerContext*, const csi::v1::ProbeRequest*,
                                    csi::v1::ProbeResponse* response) {
  response->mutable_ready()->set_value(manager_->ready());
  return grpc::Status::OK;
}

}  // namespace ocifs
