#include <catch2/catch.hpp>

#include "csi/process_error.h"

using namespace ocifs;

namespace {
ProcessResult Failed(std::string err) {
  ProcessResult r;
  r.exit_code = 1;
  r.err = std::move(err);
  return r;
}
}  // namespace

TEST_CASE("the Status prefix of an oci-fs message gives the code") {
  CHECK(CodeFromMessage("not found: manifest unknown") == Code::kNotFound);
  CHECK(CodeFromMessage("unauthenticated: 401") == Code::kUnauthenticated);
  CHECK(CodeFromMessage("permission denied: 403") == Code::kPermissionDenied);
  CHECK(CodeFromMessage("unavailable: connect to 127.0.0.1:1") == Code::kUnavailable);
  CHECK(CodeFromMessage("invalid argument: bad reference") == Code::kInvalidArgument);
}

TEST_CASE("without a prefix the code is guessed from the words") {
  CHECK(CodeFromMessage("registry said 401 Unauthorized") == Code::kUnauthenticated);
  CHECK(CodeFromMessage("access denied to repository") == Code::kPermissionDenied);
  CHECK(CodeFromMessage("MANIFEST_UNKNOWN for tag v9") == Code::kNotFound);
  CHECK(CodeFromMessage("Connection refused") == Code::kUnavailable);
  CHECK(CodeFromMessage("bad reference ::") == Code::kInvalidArgument);
}

TEST_CASE("the last oci-fs line of stderr is the message") {
  Status s = StatusFromProcessFailure(
      "resolve r/d:v1", Failed("warning: retrying\noci-fs: not found: manifest unknown\n"));
  CHECK(s.code() == Code::kNotFound);
  CHECK(s.message() == "resolve r/d:v1: not found: manifest unknown");
}

TEST_CASE("timeouts, signals and silent failures are reported") {
  ProcessResult timed_out;
  timed_out.timed_out = true;
  CHECK(StatusFromProcessFailure("x", timed_out).code() == Code::kUnavailable);
  ProcessResult killed;
  killed.signal = 9;
  CHECK(StatusFromProcessFailure("x", killed).code() == Code::kInternal);
  CHECK(StatusFromProcessFailure("x", Failed("")).code() == Code::kInternal);
}
