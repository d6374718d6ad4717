// ToGrpcStatus: the one place where a Status becomes a gRPC status code.
#pragma once

#include <grpcpp/support/status.h>

#include "ocifs/status.h"

namespace ocifs {

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace ocifs
