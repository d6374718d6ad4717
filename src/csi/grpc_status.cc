#include "csi/grpc_status.h"

namespace ocifs {

grpc::Status ToGrpcStatus(const Status& status) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (status.code()) {
    case Code::kOk: return grpc::Status::OK;
    case Code::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case Code::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case Code::kCorrupt: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case Code::kUnsupported: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case Code::kUnauthenticated: code = grpc::StatusCode::UNAUTHENTICATED; break;
    case Code::kPermissionDenied: code = grpc::StatusCode::PERMISSION_DENIED; break;
    case Code::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case Code::kIoError: code = grpc::StatusCode::INTERNAL; break;
    case Code::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case Code::kCancelled: code = grpc::StatusCode::CANCELLED; break;
    case Code::kInternal: code = grpc::StatusCode::INTERNAL; break;
    case Code::kDataLoss: code = grpc::StatusCode::DATA_LOSS; break;
  }
  return grpc::Status(code, status.message());
}

}  // namespace ocifs
