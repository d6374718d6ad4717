#include <catch2/catch.hpp>

#include "csi/subprocess.h"

using namespace ocifs;
using namespace std::chrono_literals;

TEST_CASE("a process's exit status, stdout and stderr are captured") {
  auto r = RunProcess({{"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, 10s, false});
  REQUIRE(r.ok());
  CHECK(r->exit_code == 3);
  CHECK_FALSE(r->ok());
  CHECK(r->out == "out\n");
  CHECK(r->err == "err\n");
}

TEST_CASE("a child that daemonizes and keeps stderr open does not block the caller") {
  auto start = std::chrono::steady_clock::now();
  auto r = RunProcess(
      {{"/bin/sh", "-c", "(sleep 3 >&2 &) ; echo ready; exit 0"}, 10s, /*new_session=*/true});
  REQUIRE(r.ok());
  CHECK(r->ok());
  CHECK(r->out == "ready\n");
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("a process that runs too long is killed") {
  auto r = RunProcess({{"/bin/sleep", "30"}, 200ms, true});
  REQUIRE(r.ok());
  CHECK(r->timed_out);
  CHECK_FALSE(r->ok());
}

TEST_CASE("a missing program exits 127") {
  auto r = RunProcess({{"/nonexistent/oci-fs"}, 5s, false});
  REQUIRE(r.ok());
  CHECK(r->exit_code == 127);
}

TEST_CASE("a child that cannot move into its cgroup does not run, and says why") {
  ProcessSpec spec{{"/bin/sh", "-c", "echo ran"}, 5s, false};
  spec.cgroup_procs = "/nonexistent/cgroup/cgroup.procs";
  auto r = RunProcess(spec);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 126);
  CHECK(r->out.empty());
  CHECK(r->err.find("cannot move into its cgroup /nonexistent/cgroup/cgroup.procs") != std::string::npos);
}
