#include "registry/small_blob_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/unique_fd.h"
#include "registry/digest.h"

namespace ocifs {

std::string SmallBlobStore::PathOf(const Descriptor& blob) const {
  std::string name = blob.digest;
  for (char& c : name) {
    if (c == ':') c = '-';
  }
  return dir_ + "/" + name;
}

std::optional<std::vector<uint8_t>> SmallBlobStore::Get(const Descriptor& blob) const {
  if (dir_.empty() || !ValidateDigest(blob.digest).ok()) return std::nullopt;
  std::string path = PathOf(blob);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  std::vector<uint8_t> bytes(static_cast<size_t>(blob.size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pread(fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  uint8_t extra;
  bool longer = ::pread(fd.get(), &extra, 1, static_cast<off_t>(done)) == 1;
  if (done != bytes.size() || longer || !VerifyDigest(bytes, blob.digest, path).ok()) {
    spdlog::warn("dropping the damaged copy of {} at {}", blob.digest, path);
    ::unlink(path.c_str());
    return std::nullopt;
  }
  return bytes;
}

void SmallBlobStore::Put(const Descriptor& blob, const std::vector<uint8_t>& bytes) const {
  if (dir_.empty() || bytes.size() > kMaxKeptBytes || !ValidateDigest(blob.digest).ok()) return;
  ::mkdir(dir_.c_str(), 0700);
  std::string path = PathOf(blob);
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    spdlog::debug("cannot keep {} in {}: {}", blob.digest, dir_, std::strerror(errno));
    return;
  }
  bool ok = ::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  fd.reset();
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
}

}  // namespace ocifs
