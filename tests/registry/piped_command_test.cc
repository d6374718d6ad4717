// RunPiped with real programs (/bin/sh): output read, input delivered,
// environment, exit status, the timeout (the child is killed and reaped),
// a child that does not read its stdin, bounded outputs, start errors.
#include "registry/piped_command.h"

#include <signal.h>

#include <catch2/catch.hpp>
#include <string>

using namespace ocifs;
using namespace std::chrono_literals;

namespace {

PipedCommand Sh(std::string script, std::string input = "", std::chrono::milliseconds timeout = 30s) {
  PipedCommand c;
  c.program = "/bin/sh";
  c.args = {"-c", std::move(script)};
  c.input = std::move(input);
  c.timeout = timeout;
  c.what = "test shell";
  return c;
}

}  // namespace

TEST_CASE("RunPiped reads stdout and stderr and delivers stdin") {
  auto r = RunPiped(Sh("cat; echo ' out'; echo err >&2", "hello"));
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK_FALSE(r->timed_out);
  CHECK(r->out == "hello out\n");
  CHECK(r->err == "err\n");

  // An input far larger than a pipe's buffer arrives whole.
  std::string big(1 << 20, 'x');
  big.back() = 'y';
  auto counted = RunPiped(Sh("wc -c", big));
  REQUIRE(counted.ok());
  CHECK(counted->out == std::to_string(big.size()) + "\n");
  auto last = RunPiped(Sh("tail -c 1", big));
  REQUIRE(last.ok());
  CHECK(last->out == "y");

  auto no_err = Sh("echo visible; echo hidden >&2");
  no_err.capture_stderr = false;
  auto quiet = RunPiped(no_err);
  REQUIRE(quiet.ok());
  CHECK(quiet->out == "visible\n");
  CHECK(quiet->err.empty());
}

TEST_CASE("RunPiped sets env over ours and search_path finds programs on PATH") {
  ::setenv("OCIFS_PIPED_KEPT", "kept", 1);
  auto c = Sh("printf '%s %s' \"$OCIFS_PIPED_KEPT\" \"$OCIFS_PIPED_SET\"");
  c.env = {{"OCIFS_PIPED_SET", "set"}};
  auto r = RunPiped(c);
  REQUIRE(r.ok());
  CHECK(r->out == "kept set");
  ::unsetenv("OCIFS_PIPED_KEPT");

  PipedCommand on_path;
  on_path.program = "echo";
  on_path.args = {"found"};
  on_path.timeout = 30s;
  on_path.search_path = true;
  auto found = RunPiped(on_path);
  REQUIRE(found.ok());
  CHECK(found->out == "found\n");

  on_path.program = "ocifs-no-such-program-on-path";
  on_path.what = "helper ocifs-no-such-program-on-path";
  auto missing = RunPiped(on_path);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message() == "helper ocifs-no-such-program-on-path is not on PATH");

  PipedCommand absent;
  absent.program = "/nonexistent/program";
  absent.timeout = 30s;
  absent.what = "program /nonexistent/program";
  auto r2 = RunPiped(absent);
  REQUIRE_FALSE(r2.ok());
  CHECK_THAT(r2.status().message(), Catch::StartsWith("start program /nonexistent/program"));
}

TEST_CASE("RunPiped reports a non-zero exit and a kill") {
  auto r = RunPiped(Sh("echo partial; echo why >&2; exit 7"));
  REQUIRE(r.ok());
  CHECK(r->exit_code == 7);
  CHECK_FALSE(r->timed_out);
  CHECK(r->out == "partial\n");
  CHECK(r->err == "why\n");

  auto killed = RunPiped(Sh("kill -9 $$"));
  REQUIRE(killed.ok());
  CHECK(killed->exit_code == -1);
  CHECK_FALSE(killed->timed_out);
}

TEST_CASE("RunPiped kills a child at the timeout and reaps it") {
  // The child records its pid, then hangs with its outputs open.
  auto start = std::chrono::steady_clock::now();
  auto r = RunPiped(Sh("echo $$; exec sleep 60", "", 300ms));
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(r.ok());
  CHECK(r->timed_out);
  CHECK(r->exit_code == -1);
  CHECK(took < 20s);  // far below the child's 60 s, generous for a busy machine
  int pid = std::stoi(r->out);
  // Reaped: the pid names no process (not even a zombie) of ours.
  CHECK(::kill(pid, 0) != 0);

  // A child that closed its outputs but does not exit is killed too.
  auto closed = RunPiped(Sh("exec >&- 2>&-; exec sleep 60", "", 300ms));
  REQUIRE(closed.ok());
  CHECK(closed->timed_out);
  CHECK(closed->exit_code == -1);
}

TEST_CASE("RunPiped survives a child that does not read its stdin") {
  // Exits at once: our write meets a closed pipe (EPIPE, no SIGPIPE death).
  std::string big(1 << 20, 'x');
  auto r = RunPiped(Sh("echo done", big));
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);
  CHECK_FALSE(r->timed_out);
  CHECK(r->out == "done\n");
  // Our SIGPIPE mask is restored, with no SIGPIPE left pending.
  sigset_t pending;
  sigpending(&pending);
  CHECK_FALSE(sigismember(&pending, SIGPIPE));
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  CHECK_FALSE(sigismember(&mask, SIGPIPE));
}

TEST_CASE("RunPiped bounds its outputs") {
  auto c = Sh("head -c 100000 /dev/zero; head -c 50000 /dev/zero >&2");
  c.max_out = 1000;
  c.max_err = 10;
  auto r = RunPiped(c);
  REQUIRE(r.ok());
  CHECK(r->exit_code == 0);  // the rest was read and dropped, so the child was never blocked
  CHECK(r->out.size() == 1000);
  CHECK(r->err.size() == 10);
}
