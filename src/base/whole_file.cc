#include "base/whole_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <span>

#include "base/file_source.h"
#include "base/unique_fd.h"

namespace ocifs {

Status WriteFileAtomically(const std::string& path, std::string_view bytes) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError("create " + tmp, errno);
  auto fail = [&](const std::string& what, int err) {
    Status s = ErrnoError(what, err);
    ::unlink(tmp.c_str());
    return s;
  };
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write " + tmp, errno);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("fsync " + tmp, errno);
  if (::close(fd.release()) != 0) return fail("close " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename " + tmp + " to " + path, errno);
  return Status::Ok();
}

Result<std::string> ReadWholeFile(const std::string& path, uint64_t max_bytes, std::string_view what) {
  auto file = FileSource::Open(path);
  if (!file.ok()) {
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
      return NotFound(std::string(what) + " " + path + " does not exist");
    }
    return file.status();
  }
  const uint64_t size = (*file)->size();
  if (size > max_bytes) {
    return Corrupt(std::string(what) + " " + path + ": too large (" + std::to_string(size) + " bytes)");
  }
  std::string bytes(size, '\0');
  OCIFS_RETURN_IF_ERROR(ReadExactly(**file, 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(bytes.data()), size)));
  return bytes;
}

Result<MappedFileBytes> MappedFileBytes::Read(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("stat " + path, errno);
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = size == 0 ? nullptr : ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return ErrnoError("map " + std::to_string(size) + " bytes to read " + path, errno);
  MappedFileBytes out(static_cast<uint8_t*>(map), size);
  while (out.size_ < size) {
    ssize_t n = ::pread(fd, out.data_ + out.size_, size - out.size_, static_cast<off_t>(out.size_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + path, errno);
    if (n == 0) break;
    out.size_ += static_cast<size_t>(n);
  }
  return out;
}

MappedFileBytes::~MappedFileBytes() {
  if (data_ != nullptr && mapped_ != 0) ::munmap(data_, mapped_);
}

}  // namespace ocifs
