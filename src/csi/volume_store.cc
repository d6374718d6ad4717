#include "csi/volume_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/unique_fd.h"

namespace ocifs {
namespace {

namespace fs = std::filesystem;

std::string KeyOf(const std::string& s) { return TargetKey(s); }

Status WriteFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("create " + tmp, errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write " + tmp, errno);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("rename " + tmp, errno);
  return Status::Ok();
}

// The attributes of a record written before "attributes" (typed fields).
std::map<std::string, std::string> LegacyAttributes(const nlohmann::json& j) {
  std::map<std::string, std::string> a;
  auto text = [&](const char* key) { return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : ""; };
  if (!text("diskPath").empty()) a["diskPath"] = text("diskPath");
  if (text("mode") == "tree") a["mode"] = "tree";
  if (!text("platform").empty()) a["platform"] = text("platform");
  if (j.contains("tlsVerify") && j["tlsVerify"].is_boolean()) a["tlsVerify"] = j["tlsVerify"].get<bool>() ? "true" : "false";
  if (j.value("prefetchAll", false)) a["prefetchAll"] = "true";
  if (!text("prefetchRate").empty()) a["prefetchRate"] = text("prefetchRate");
  if (!j.value("imageProfile", true)) a["profile"] = "none";
  if (!j.value("clusterCache", true)) a["clusterCache"] = "off";
  return a;
}

}  // namespace

// FNV-1a 64: a stable file name for a target path.
std::string TargetKey(const std::string& target) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : target) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string VolumeRecord::PinnedRef() const {
  if (spec.image.find('@') != std::string::npos) return spec.image;
  return spec.image + "@" + digest;
}

std::string RecordToJson(const VolumeRecord& r) {
  nlohmann::json j = {
      {"version", 1},
      {"volumeId", r.spec.volume_id},
      {"targetPath", r.spec.target_path},
      {"image", r.spec.image},
      {"digest", r.digest},
      {"ephemeral", r.spec.ephemeral},
      {"attributes", r.spec.attributes},
      {"authFile", r.auth_file},
      {"authSource", r.auth_source},
      {"mountPid", r.mount_pid},
      {"accel", r.accel},
      {"ocifsVersion", r.ocifs_version},
  };
  return j.dump(2) + "\n";
}

Result<VolumeRecord> RecordFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Corrupt("volume record is not a JSON object");
  try {
    if (j.value("version", 0) != 1) return Corrupt("volume record version is not 1");
    VolumeRecord r;
    r.spec.volume_id = j.at("volumeId").get<std::string>();
    r.spec.target_path = j.at("targetPath").get<std::string>();
    r.spec.image = j.at("image").get<std::string>();
    r.digest = j.at("digest").get<std::string>();
    if (j.contains("attributes")) {
      r.spec.attributes = j.at("attributes").get<std::map<std::string, std::string>>();
    } else {
      r.spec.attributes = LegacyAttributes(j);
    }
    r.spec.ephemeral = j.value("ephemeral", false);
    r.auth_file = j.value("authFile", "");
    r.auth_source = j.value("authSource", "");
    r.mount_pid = j.value("mountPid", 0);
    r.accel = j.value("accel", "");
    r.ocifs_version = j.value("ocifsVersion", "");
    if (r.spec.volume_id.empty() || r.spec.target_path.empty() || r.spec.image.empty() ||
        r.digest.empty()) {
      return Corrupt("volume record lacks volumeId, targetPath, image or digest");
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return Corrupt(std::string("volume record: ") + e.what());
  }
}

VolumeStore::VolumeStore(std::string state_dir) : state_dir_(std::move(state_dir)) {}

Status VolumeStore::Init() {
  std::error_code ec;
  for (const char* sub : {"volumes", "secrets"}) {
    fs::path dir = fs::path(state_dir_) / sub;
    fs::create_directories(dir, ec);
    if (ec) return IoError("create " + dir.string() + ": " + ec.message());
  }
  fs::permissions(fs::path(state_dir_) / "secrets", fs::perms::owner_all, ec);
  return Status::Ok();
}

std::string VolumeStore::RecordPath(const std::string& target) const {
  return (fs::path(state_dir_) / "volumes" / (KeyOf(target) + ".json")).string();
}

std::string VolumeStore::AuthFilePath(const std::string& target) const {
  return (fs::path(state_dir_) / "secrets" / (KeyOf(target) + ".json")).string();
}

Status VolumeStore::Save(const VolumeRecord& record) const {
  return WriteFileAtomic(RecordPath(record.spec.target_path), RecordToJson(record));
}

Status VolumeStore::Remove(const std::string& target) const {
  std::string path = RecordPath(target);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("remove " + path, errno);
  return Status::Ok();
}

std::vector<VolumeRecord> VolumeStore::LoadAll() const {
  std::vector<VolumeRecord> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(state_dir_) / "volumes", ec)) {
    if (entry.path().extension() != ".json") continue;  // skips *.tmp leftovers
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    auto record = RecordFromJson(ss.str());
    if (!record.ok()) {
      spdlog::warn("csi: skipping {}: {}", entry.path().string(), record.status().ToString());
      continue;
    }
    out.push_back(std::move(record).value());
  }
  if (ec) spdlog::warn("csi: reading {}/volumes: {}", state_dir_, ec.message());
  return out;
}

}  // namespace ocifs
