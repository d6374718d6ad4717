#include "csi/auth_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/unique_fd.h"

namespace ocifs {

Result<std::optional<std::string>> DockerConfigFromSecrets(
    const std::map<std::string, std::string>& secrets) {
  if (secrets.empty()) return std::optional<std::string>();
  auto it = secrets.find(".dockerconfigjson");
  if (it == secrets.end() || secrets.size() != 1) {
    std::string keys;
    for (const auto& [k, v] : secrets) keys += (keys.empty() ? "" : ", ") + k;
    return InvalidArgument("nodePublishSecretRef must name a kubernetes.io/dockerconfigjson "
                           "Secret (one key \".dockerconfigjson\"); got keys: " + keys);
  }
  auto json = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("auths") ||
      !json["auths"].is_object()) {
    return InvalidArgument("secret key .dockerconfigjson is not a docker config JSON "
                           "object with \"auths\"");
  }
  return std::optional<std::string>(it->second);
}

Status WriteAuthFile(const std::string& path, const std::string& content) {
  std::error_code ec;
  auto dir = std::filesystem::path(path).parent_path();
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("create " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("create " + tmp, errno);
  if (::fchmod(fd.get(), 0600) != 0) return ErrnoError("chmod " + tmp, errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return ErrnoError("write " + tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("save " + path, err);
  }
  return Status::Ok();
}

void RemoveAuthFile(const std::string& path) {
  if (!path.empty()) ::unlink(path.c_str());
}

}  // namespace ocifs
