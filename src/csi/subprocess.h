// RunProcess: runs a helper program (`oci-fs inspect`, `oci-fs mount`,
// `fusermount3`) to completion and captures what it printed.
//
// The child's stdout and stderr are anonymous memory files, not pipes, so a
// child that daemonizes and keeps them open (`oci-fs mount`) cannot block
// us: we wait for the launched process itself to exit, then read. stdin is
// /dev/null. With `new_session` the child calls setsid() first, so it and
// whatever it forks outlive a restart of the plugin and are not hit by
// signals sent to the plugin's process group.
//
// argv is visible to every user on the machine: never put credentials in it.
// Thread-safe (no shared state); blocks the calling thread.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path or a name on $PATH
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};
  bool new_session = false;
  // If set, the child moves itself into this cgroup (the path of its
  // cgroup.procs) before exec, after joining the cgroup namespace
  // `cgroup_ns_fd` if that is >= 0 (mount_cgroup.h). A failed move fails
  // the child: exit 126, the reason on its stderr.
  std::string cgroup_procs = {};
  int cgroup_ns_fd = -1;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, or 0
  bool timed_out = false;
  std::string out;     // stdout, at most 1 MiB
  std::string err;     // stderr, at most 1 MiB

  bool ok() const { return exit_code == 0 && !timed_out; }
};

// Fails only if the process could not be started (IoError); a process that
// ran and failed is an OK Result with a non-zero exit_code. On timeout the
// child (and with new_session, its whole process group) is killed with
// SIGKILL and reaped.
Result<ProcessResult> RunProcess(const ProcessSpec& spec);

}  // namespace ocifs
