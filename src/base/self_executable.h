// The running executable's path, for commands that run themselves or a
// program installed beside them (a mount's keeper and server, `oci-fs csi`
// and the CSI plugin's mounts).
// Thread safety: safe for concurrent use (reads /proc/self/exe).
#pragma once

#include <string>

namespace ocifs {

// The running executable's absolute path (/proc/self/exe resolved); "" if
// it cannot be read.
std::string SelfExecutable();

// `name` in the running executable's directory; `name` alone (found through
// PATH by an exec that searches it) if that directory is unknown.
std::string SiblingExecutable(const std::string& name);

}  // namespace ocifs
