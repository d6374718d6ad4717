// Status and Result<T>: how every module reports failure across its boundary.
// errno appears only at the OS edge (a syscall) and the FUSE reply.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ocifs {

enum class Code {
  kOk = 0,
  kInvalidArgument,   // the caller's input is malformed (a reference, an option)
  kNotFound,          // manifest unknown, blob unknown, path not in image
  kCorrupt,           // the data is malformed (tar, gzip, qcow2, manifest, digest mismatch)
  kUnsupported,       // a valid feature we do not implement (qcow2 encryption)
  kUnauthenticated,   // 401: missing or wrong credentials
  kPermissionDenied,  // 403
  kUnavailable,       // unreachable host, 5xx after retries, timeouts
  kIoError,           // local I/O failed
  kAlreadyExists,
  kCancelled,
  kInternal,
  kDataLoss,          // bytes failed a checksum that vouches for them (a wrong gzip index)
};

std::string_view CodeName(Code code);

// A cheap value type: OK, or a code plus a message that names what went wrong.
// Messages never contain credentials.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: gzip header of layer sha256:ab..: bad magic"
  std::string ToString() const;

  // Returns a copy whose message is "context: message".
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Corrupt(std::string m) { return {Code::kCorrupt, std::move(m)}; }
inline Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status DataLoss(std::string m) { return {Code::kDataLoss, std::move(m)}; }
// IoError with strerror(err) appended: "open /x: No such file or directory".
Status ErrnoError(std::string what, int err);

// A value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ocifs

#define OCIFS_CONCAT_INNER_(a, b) a##b
#define OCIFS_CONCAT_(a, b) OCIFS_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define OCIFS_RETURN_IF_ERROR(expr)                 \
  do {                                              \
    ::ocifs::Status ocifs_status_ = (expr);         \
    if (!ocifs_status_.ok()) return ocifs_status_;  \
  } while (0)

// `OCIFS_ASSIGN_OR_RETURN(auto x, F());` declares x from a Result or returns its Status.
#define OCIFS_ASSIGN_OR_RETURN(lhs, expr) \
  OCIFS_ASSIGN_OR_RETURN_IMPL_(OCIFS_CONCAT_(ocifs_result_, __LINE__), lhs, expr)
#define OCIFS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
