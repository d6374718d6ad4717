#include "csi/volume_credentials.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "csi/auth_file.h"
#include "registry/reference.h"

namespace ocifs {

std::string ReadAuthFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<std::optional<VolumeCredentials::Provided>> VolumeCredentials::AskProviders(const std::string& image,
                                                                                   Clock::time_point now) {
  if (!providers_) return std::optional<Provided>();
  auto ref = Reference::Parse(image);
  if (!ref.ok() || ref->transport != Reference::Transport::kDocker) return std::optional<Provided>();
  // What the kubelet hands its providers: the image without tag or digest.
  OCIFS_ASSIGN_OR_RETURN(auto found, providers_->Lookup(ref->registry + "/" + ref->repository, now));
  if (!found) return std::optional<Provided>();
  Provided provided;
  provided.config = DockerConfigFor(ref->registry, found->creds);
  provided.refresh_at = std::max(found->expires, now + kMinRefreshInterval);
  return std::optional<Provided>(std::move(provided));
}

Status VolumeCredentials::Prepare(VolumeRecord* record, const std::optional<std::string>& secret_config) {
  const std::string& target = record->spec.target_path;
  std::string config;
  if (secret_config) {
    config = *secret_config;
    record->auth_source = "secret";
  } else {
    const auto now = Clock::now();
    OCIFS_ASSIGN_OR_RETURN(auto provided, AskProviders(record->spec.image, now));
    if (!provided) return Status::Ok();
    config = std::move(provided->config);
    record->auth_source = "provider";
    std::lock_guard lock(mu_);
    refresh_at_[target] = provided->refresh_at;
  }
  record->auth_file = store_->AuthFilePath(target);
  if (Status s = WriteAuthFile(record->auth_file, config); !s.ok()) {
    return s.WithContext("volume " + record->spec.volume_id + ": credentials");
  }
  return Status::Ok();
}

Status VolumeCredentials::Republish(const VolumeRecord& record, const std::optional<std::string>& secret_config) {
  if (!secret_config) return Status::Ok();
  if (record.auth_file.empty()) {
    spdlog::warn("csi: volume {} at {} was published without credentials; its mount cannot take the secret it "
                 "is published with now (unpublish and publish it again)",
                 record.spec.volume_id, record.spec.target_path);
    return Status::Ok();
  }
  if (ReadAuthFile(record.auth_file) == *secret_config) return Status::Ok();
  if (Status s = WriteAuthFile(record.auth_file, *secret_config); !s.ok()) {
    return s.WithContext("volume " + record.spec.volume_id + ": rotated credentials");
  }
  spdlog::info("csi: volume {} at {}: its secret changed; the mount reads the new credentials when the registry "
               "refuses the old ones",
               record.spec.volume_id, record.spec.target_path);
  return Status::Ok();
}

void VolumeCredentials::Refresh(const VolumeRecord& record, Clock::time_point now) {
  if (record.auth_source != "provider" || record.auth_file.empty() || !providers_) return;
  const std::string& target = record.spec.target_path;
  {
    std::lock_guard lock(mu_);
    auto it = refresh_at_.find(target);
    if (it != refresh_at_.end() && now < it->second) return;
    refresh_at_[target] = now + kMinRefreshInterval;  // also the retry time after a failure
  }
  auto provided = AskProviders(record.spec.image, now);
  if (!provided.ok()) {
    spdlog::warn("csi: volume {}: refreshing its credentials: {}", record.spec.volume_id,
                 provided.status().message());
    return;
  }
  if (!*provided) {
    spdlog::warn("csi: volume {}: no credential provider has credentials for {} any more; keeping the old ones",
                 record.spec.volume_id, record.spec.image);
    return;
  }
  {
    std::lock_guard lock(mu_);
    refresh_at_[target] = (*provided)->refresh_at;
  }
  if (ReadAuthFile(record.auth_file) == (*provided)->config) return;
  if (Status s = WriteAuthFile(record.auth_file, (*provided)->config); !s.ok()) {
    spdlog::warn("csi: volume {}: {}", record.spec.volume_id, s.ToString());
    return;
  }
  spdlog::info("csi: volume {} at {}: new credentials from its credential provider", record.spec.volume_id, target);
}

void VolumeCredentials::Forget(const std::string& target) {
  std::lock_guard lock(mu_);
  refresh_at_.erase(target);
}

}  // namespace ocifs
