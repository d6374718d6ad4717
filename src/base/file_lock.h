// TryLockFile: a non-blocking exclusive flock on a lock file, for leases
// between processes sharing a cache dir (docs/cache-format.md "Fetch leases").
// The kernel drops the lock when the fd is closed or its process dies, so a
// dead holder never blocks anyone.
#pragma once

#include <string>

#include "base/unique_fd.h"

namespace ocifs {

// flock(LOCK_EX | LOCK_NB) on `path` (created, mode 0600, if missing) in a new
// open file description (so it conflicts with every other one, in this process
// too): the fd holding the lock (closing it unlocks), or an invalid fd when
// someone else holds it (*failed = false) or the file cannot be opened or
// locked (*failed = true). Thread safety: safe from any thread.
UniqueFd TryLockFile(const std::string& path, bool* failed);

}  // namespace ocifs
