#include "csi/mount_health.h"

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {

PublishedMount Published(int64_t updated_ms, int64_t last_error_ms) {
  PublishedMount p;
  MountStats s;
  s.pid = 77;
  s.updated_ms = updated_ms;
  s.fuse_reads = 9;
  s.fuse_read_errors = last_error_ms ? 2 : 0;
  s.last_read_error = last_error_ms ? "corrupt: layer sha256:ab: the disk's reads fail" : "";
  s.last_read_error_ms = last_error_ms;
  p.stats = s;
  return p;
}

}  // namespace

TEST_CASE("a mount that publishes and reads well is not judged") {
  PublishedMount p = Published(100'000, 0);
  JudgePublished(&p, 101'000);
  CHECK(p.state.empty());
  CHECK(p.problem.empty());
  PublishedMount none;
  JudgePublished(&none, 101'000);
  CHECK(none.state.empty());
}

TEST_CASE("a mount whose counters are not rewritten is stalled, naming its process") {
  PublishedMount p = Published(100'000, 0);
  JudgePublished(&p, 100'000 + kStalledAfterMs + 5'000);
  CHECK(p.state == "stalled");
  CHECK(p.problem.find("pid 77") != std::string::npos);
  CHECK(p.problem.find("35 s") != std::string::npos);
}

TEST_CASE("a mount whose reads failed lately is failing, with the error; later it is not") {
  PublishedMount p = Published(100'000, 99'000);
  JudgePublished(&p, 100'500);
  CHECK(p.state == "failing");
  CHECK(p.problem.find("2 of 9") != std::string::npos);
  CHECK(p.problem.find("the disk's reads fail") != std::string::npos);
  p.stats->updated_ms = 99'000 + kFailingForMs + 1000;
  JudgePublished(&p, 99'000 + kFailingForMs + 1000);
  CHECK(p.state.empty());
}
