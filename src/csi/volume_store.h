// VolumeStore: the plugin's memory of what it mounted, one JSON file per
// published target in STATE_DIR/volumes/, so that a restarted plugin can
// adopt or repair its mounts. Per-volume credential files live in
// STATE_DIR/secrets/ (0700 directory, 0600 files).
//
// Record format (docs/kubernetes.md, "State directory"):
//   {"version": 1, "volumeId": "...", "targetPath": "/var/lib/kubelet/...",
//    "image": "reg/disk:v1", "digest": "sha256:...", "ephemeral": true,
//    "attributes": {"mode": "tree", "prefetchRate": "20M", ...},
//    "authFile": "" | "STATE_DIR/secrets/<key>.json",
//    "authSource": "" | "secret" | "provider", "mountPid": 1234,
//    "accel": "" | "reg/disk@sha256:..."}
// "attributes" are the volume's mount attributes as published. Records
// written before it (typed diskPath, mode, platform, tlsVerify, prefetchAll,
// prefetchRate, imageProfile, clusterCache) are read as those attributes.
// Files are written atomically (temp file, fsync, rename). The file name is a
// hash of the target path. Thread-safe: no in-memory state; callers
// serialize writes to one target.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "csi/volume_spec.h"
#include "ocifs/status.h"

namespace ocifs {

// The name of `target`'s files (16 hex digits, a hash of the path); also the
// name of its mount cgroup (mount_cgroup.h).
std::string TargetKey(const std::string& target);

struct VolumeRecord {
  VolumeSpec spec;
  std::string digest;     // the manifest digest pinned at publish ("sha256:...")
  // The acceleration artifact pinned at publish (REGISTRY/REPO@sha256:..,
  // docs/accel-format.md): the one found next to the image when the volume's
  // `accel` attribute was auto. "" = none (none found, or not auto).
  std::string accel;
  std::string auth_file;  // this volume's credentials, or ""
  // Where auth_file's credentials came from: "secret" (nodePublishSecretRef),
  // "provider" (a kubelet credential provider plugin), "" (no file, or a
  // record of an earlier version: a secret).
  std::string auth_source;
  pid_t mount_pid = 0;    // the `oci-fs mount` daemon, 0 if unknown
  // The oci-fs version whose serving process serves the volume (set at
  // publish, remount and restart; "" in records of earlier versions).
  std::string ocifs_version;

  // REF@DIGEST: the image reference pinned to the digest.
  std::string PinnedRef() const;
};

class VolumeStore {
 public:
  explicit VolumeStore(std::string state_dir);

  // Creates the directories. Call once before anything else.
  Status Init();

  Status Save(const VolumeRecord& record) const;
  // Removes the record of `target`; a missing record is not an error.
  Status Remove(const std::string& target) const;
  // Every readable record; unreadable files are logged and skipped.
  std::vector<VolumeRecord> LoadAll() const;

  // Where the credential file of the volume at `target` goes.
  std::string AuthFilePath(const std::string& target) const;
  const std::string& state_dir() const { return state_dir_; }

 private:
  std::string RecordPath(const std::string& target) const;

  std::string state_dir_;
};

// Exposed for tests.
std::string RecordToJson(const VolumeRecord& record);
Result<VolumeRecord> RecordFromJson(const std::string& text);

}  // namespace ocifs
