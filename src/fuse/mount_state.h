// MountState: what a kept mount publishes about itself, one JSON file per
// mount point in the state directory (docs/mount-state-format.md), written
// by its keeper and read by `oci-fs status` and `oci-fs restart`.
//
// Thread safety: plain values and free functions; Save replaces the file
// atomically (write a temporary, rename), so a reader sees a whole file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

#include "ocifs/status.h"

namespace ocifs {

struct MountState {
  std::string mountpoint;  // absolute
  std::string reference;   // as given to `oci-fs mount`
  std::string digest;      // the manifest digest the server resolved ("" until it serves)
  pid_t keeper_pid = 0;
  pid_t server_pid = 0;    // 0 while no server is serving
  uint64_t takeovers = 0;  // servers started after the first (crashes and restarts)
  int64_t started = 0;     // the keeper's start, seconds since the epoch
  std::string binary;      // what the keeper starts servers from
  std::string socket;      // the keeper's control socket

  // The JSON text of the file (one object, a trailing newline).
  std::string ToJson() const;
  // kCorrupt naming the field at fault.
  [[nodiscard]] static Result<MountState> FromJson(const std::string& text);
};

// The state directory: $OCIFS_RUN_DIR if set, else /run/oci-fs/mounts as
// root, else $XDG_RUNTIME_DIR/oci-fs/mounts (or /tmp/oci-fs-<uid>/mounts).
std::string MountStateDir();

// "<dir>/<16 hex digits of FNV-1a of the mount point>" + suffix (".json", ".sock").
std::string MountStatePath(const std::string& dir, const std::string& mountpoint, const std::string& suffix);

// Writes `state` to MountStatePath(dir, state.mountpoint, ".json"), creating dir.
[[nodiscard]] Status SaveMountState(const std::string& dir, const MountState& state);
[[nodiscard]] Result<MountState> LoadMountState(const std::string& path);
// Every *.json file of `dir` that parses, sorted by mount point.
std::vector<MountState> ListMountStates(const std::string& dir);

// What `status` checks of a published state.
struct MountHealth {
  bool keeper_alive = false;
  bool server_alive = false;
  bool mounted = false;  // a fuse.oci-fs mount at the mount point (/proc/self/mountinfo)
  bool stale() const { return !keeper_alive || !mounted; }
};
MountHealth CheckMountHealth(const MountState& state);

}  // namespace ocifs
