#include "fuse/mount_state.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace ocifs {
namespace {

// A live process, not a zombie (a killed keeper whose parent has not reaped it).
bool Alive(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() || (text[paren + 2] != 'Z' && text[paren + 2] != 'X');
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    auto octal = [&](size_t k) { return field[k] >= '0' && field[k] <= '7'; };
    if (field[i] == '\\' && i + 3 < field.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += field[i];
  }
  return out;
}

bool MountedAsOcifs(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point, word;
    fields >> id >> parent >> dev >> root >> point;
    if (Unescape(point) != mountpoint) continue;
    while (fields >> word && word != "-") {}
    std::string fstype;
    fields >> fstype;
    if (fstype == "fuse.oci-fs") return true;
  }
  return false;
}

}  // namespace

std::string MountState::ToJson() const {
  nlohmann::json j = {{"version", 1},          {"mountpoint", mountpoint}, {"reference", reference},
                      {"digest", digest},      {"keeper_pid", keeper_pid}, {"server_pid", server_pid},
                      {"takeovers", takeovers}, {"started", started},      {"binary", binary},
                      {"socket", socket}};
  return j.dump() + "\n";
}

Result<MountState> MountState::FromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Corrupt("mount state is not a JSON object");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != 1) {
    return Corrupt("mount state: \"version\" is not 1");
  }
  MountState s;
  auto text_field = [&](const char* name, std::string* out) -> Status {
    if (!j.contains(name) || !j[name].is_string()) return Corrupt(std::string("mount state: \"") + name + "\" is not a string");
    *out = j[name].get<std::string>();
    return Status::Ok();
  };
  auto number_field = [&](const char* name, auto* out) -> Status {
    if (!j.contains(name) || !j[name].is_number_integer() || j[name].get<int64_t>() < 0) {
      return Corrupt(std::string("mount state: \"") + name + "\" is not a non-negative integer");
    }
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(j[name].get<int64_t>());
    return Status::Ok();
  };
  OCIFS_RETURN_IF_ERROR(text_field("mountpoint", &s.mountpoint));
  OCIFS_RETURN_IF_ERROR(text_field("reference", &s.reference));
  OCIFS_RETURN_IF_ERROR(text_field("digest", &s.digest));
  OCIFS_RETURN_IF_ERROR(text_field("binary", &s.binary));
  OCIFS_RETURN_IF_ERROR(text_field("socket", &s.socket));
  OCIFS_RETURN_IF_ERROR(number_field("keeper_pid", &s.keeper_pid));
  OCIFS_RETURN_IF_ERROR(number_field("server_pid", &s.server_pid));
  OCIFS_RETURN_IF_ERROR(number_field("takeovers", &s.takeovers));
  OCIFS_RETURN_IF_ERROR(number_field("started", &s.started));
  if (s.mountpoint.empty() || s.mountpoint[0] != '/') return Corrupt("mount state: \"mountpoint\" is not absolute");
  return s;
}

std::string MountStateDir() {
  if (const char* dir = std::getenv("OCIFS_RUN_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (::geteuid() == 0) return "/run/oci-fs/mounts";
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/oci-fs/mounts";
  }
  return "/tmp/oci-fs-" + std::to_string(::geteuid()) + "/mounts";
}

std::string MountStatePath(const std::string& dir, const std::string& mountpoint, const std::string& suffix) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, 64 bits
  for (unsigned char c : mountpoint) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return dir + "/" + hex + suffix;
}

Status SaveMountState(const std::string& dir, const MountState& state) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError("cannot create the state directory " + dir + ": " + ec.message());
  std::string path = MountStatePath(dir, state.mountpoint, ".json");
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << state.ToJson();
    out.flush();
    if (!out) return IoError("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("rename " + tmp, errno);
  return Status::Ok();
}

Result<MountState> LoadMountState(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("no mount state " + path);
  std::stringstream text;
  text << in.rdbuf();
  auto state = MountState::FromJson(text.str());
  if (!state.ok()) return state.status().WithContext(path);
  return state;
}

std::vector<MountState> ListMountStates(const std::string& dir) {
  std::vector<MountState> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    auto state = LoadMountState(entry.path().string());
    if (state.ok()) out.push_back(std::move(state).value());
  }
  std::sort(out.begin(), out.end(), [](const MountState& a, const MountState& b) { return a.mountpoint < b.mountpoint; });
  return out;
}

MountHealth CheckMountHealth(const MountState& state) {
  MountHealth h;
  h.keeper_alive = Alive(state.keeper_pid);
  h.server_alive = Alive(state.server_pid);
  h.mounted = MountedAsOcifs(state.mountpoint);
  return h;
}

}  // namespace ocifs
