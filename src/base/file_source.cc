#include "base/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

namespace ocifs {

Result<std::shared_ptr<FileSource>> FileSource::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path, errno);
  return std::make_shared<FileSource>(std::move(fd), static_cast<uint64_t>(st.st_size), path);
}

Result<size_t> FileSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= size_) return size_t{0};
  size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size_ - offset));
  size_t done = 0;
  while (done < want) {
    ssize_t n = ::pread(fd_.get(), buf.data() + done, want - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + path_, errno);
    }
    if (n == 0) return Corrupt("file " + path_ + " shrank while open");
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace ocifs
