// PipedCommand: run a program with a small input on its stdin, read its
// stdout (and stderr) with a deadline. Used for the programs that hand us
// credentials: docker credential helpers and kubelet credential provider
// plugins.
//
// Contract of RunPiped:
// - The child gets `input` on stdin (then EOF), its stdout and stderr go to
//   pipes we read until both reach EOF and the child has exited, or until
//   `timeout` (from the start of the call) runs out. At the timeout the
//   child is sent SIGKILL and timed_out is set; the child is always reaped
//   before RunPiped returns (no zombie, no child outlives the call).
//   Grandchildren are not killed: one that keeps a pipe open only makes the
//   call last until the timeout.
// - A child that does not read its stdin (or exits early) neither blocks us
//   nor kills us with SIGPIPE: the input is written without blocking and
//   SIGPIPE is blocked in the calling thread for the call.
// - Outputs are bounded: at most max_out bytes of stdout and max_err bytes
//   of stderr are kept, the rest is read and dropped.
// - Nothing is logged: input and output may hold secrets. Give secrets
//   only through `input` (stdin), never `args` or `env`.
// Thread safety: RunPiped is safe to call from several threads at once
// (each call owns its pipes; they are close-on-exec, so a concurrent spawn
// does not inherit them). It blocks the calling thread up to `timeout`.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

struct PipedCommand {
  std::string program;            // a path; a bare name is looked up on PATH when search_path
  std::vector<std::string> args;  // after argv[0], which is `program`
  // Set over our own environment (which the child inherits as is when empty).
  std::vector<std::pair<std::string, std::string>> env;
  std::string input;                     // written to stdin, then stdin is closed
  std::chrono::milliseconds timeout{0};  // for the whole run
  bool search_path = false;              // posix_spawnp instead of posix_spawn
  bool capture_stderr = true;            // false: the child's stderr is /dev/null
  size_t max_out = 1 << 20;              // bytes of stdout kept
  size_t max_err = 64 << 10;             // bytes of stderr kept
  // Names the program in error messages, e.g. "credential helper docker-credential-pass".
  std::string what;
};

struct PipedResult {
  int exit_code = -1;  // -1: killed by a signal (also at the timeout)
  bool timed_out = false;
  std::string out;  // stdout, at most max_out bytes; may hold a secret: never log it
  std::string err;  // stderr, at most max_err bytes (empty unless capture_stderr)
};

// Runs `command` (see the contract above). Errors only when the child
// cannot be started: kNotFound "WHAT is not on PATH" when search_path and
// the program is not found, else an ErrnoError "start WHAT: ...". A child
// that fails or times out is a PipedResult, not an error.
[[nodiscard]] Result<PipedResult> RunPiped(const PipedCommand& command);

}  // namespace ocifs
