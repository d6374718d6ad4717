#include "ocifs/status.h"

#include <cstring>

namespace ocifs {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kCorrupt: return "corrupt";
    case Code::kUnsupported: return "unsupported";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kUnavailable: return "unavailable";
    case Code::kIoError: return "I/O error";
    case Code::kAlreadyExists: return "already exists";
    case Code::kCancelled: return "cancelled";
    case Code::kInternal: return "internal error";
    case Code::kDataLoss: return "data loss";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(CodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

Status ErrnoError(std::string what, int err) {
  what += ": ";
  what += std::strerror(err);
  return Status(Code::kIoError, std::move(what));
}

}  // namespace ocifs
