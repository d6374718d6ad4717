#include "base/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

namespace ocifs {

UniqueFd TryLockFile(const std::string& path, bool* failed) {
  *failed = false;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) {
    *failed = true;
    return fd;
  }
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EINTR) {
      *failed = errno != EWOULDBLOCK;
      return UniqueFd();
    }
  }
  return fd;
}

}  // namespace ocifs
