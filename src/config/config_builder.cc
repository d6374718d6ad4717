#include "config/config_builder.h"

#include <algorithm>
#include <array>

namespace ocifs {
namespace {

// mount(8)'s generic options: nothing for oci-fs to do.
constexpr std::array<std::string_view, 19> kIgnored = {
    "rw",     "ro",   "defaults", "auto",  "noauto", "user", "users", "nouser", "_netdev",           "nofail",
    "relatime", "strictatime", "dev", "suid", "exec", "async", "sync", "atime", "default_permissions"};
// Kept for FUSE's own mount.
constexpr std::array<std::string_view, 6> kForwarded = {"nodev",   "nosuid",     "noexec",
                                                        "noatime", "nodiratime", "auto_unmount"};

template <size_t N>
bool Contains(const std::array<std::string_view, N>& list, std::string_view key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

// "a,b\,c" -> {"a", "b,c"}; empty items dropped.
std::vector<std::string> SplitOptions(std::string_view list) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '\\' && i + 1 < list.size()) {
      cur += list[++i];
    } else if (list[i] == ',') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += list[i];
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace

Status MountConfigBuilder::Set(const MountOption& option, Spelling how, std::string_view value) {
  Spelled spelled{SpelledName(option, how), option.secret ? std::string() : std::string(value),
                  how == Spelling::kVolumeAttribute};
  std::string_view expect = option.parse(value, how, &config_);
  if (!expect.empty()) return Refusal(spelled, option, expect);
  config_.spelled[std::string(option.name)] = std::move(spelled);
  return Status::Ok();
}

Status MountConfigBuilder::SetFlag(std::string_view name, std::string_view value) {
  if (name.starts_with("--")) name.remove_prefix(2);
  const MountOption* option = FindOption(name);
  if (option == nullptr) return InvalidArgument("unknown option --" + std::string(name));
  return Set(*option, Spelling::kFlag, value);
}

Status MountConfigBuilder::ApplyMountOptions(std::string_view list) {
  for (const std::string& item : SplitOptions(list)) {
    size_t eq = item.find('=');
    std::string_view key = std::string_view(item).substr(0, eq);
    std::string_view value = eq == std::string::npos ? std::string_view() : std::string_view(item).substr(eq + 1);
    auto option = std::find_if(MountOptions().begin(), MountOptions().end(),
                               [&](const MountOption& o) { return !o.key.empty() && o.key == key; });
    if (option != MountOptions().end()) {
      OCIFS_RETURN_IF_ERROR(Set(*option, Spelling::kMountOption, value));
    } else if (key.starts_with("x-") || key.starts_with("comment") || Contains(kIgnored, key)) {
      continue;
    } else if (Contains(kForwarded, key)) {
      config_.fuse_options.push_back(item);
    } else {
      return InvalidArgument("unknown mount option '" + std::string(key) + "'");
    }
  }
  return Status::Ok();
}

Status MountConfigBuilder::SetVolumeAttribute(std::string_view attribute, std::string_view value) {
  for (const MountOption& option : MountOptions()) {
    if (!option.attribute.empty() && option.attribute == attribute) {
      return Set(option, Spelling::kVolumeAttribute, value);
    }
  }
  return NotFound("no volume attribute " + std::string(attribute));
}

Result<MountConfig> MountConfigBuilder::Build(const std::string& cwd) const {
  MountConfig config = config_;
  MakePathsAbsolute(&config, cwd);
  OCIFS_RETURN_IF_ERROR(Validate(config));
  return config;
}

std::string VolumeAttributeNames() {
  std::string names;
  for (const MountOption& option : MountOptions()) {
    if (option.attribute.empty()) continue;
    if (!names.empty()) names += ", ";
    names += option.attribute;
  }
  return names;
}

std::vector<std::string> ToArgs(const MountConfig& config, bool registry_only) {
  static const MountConfig kDefaults;
  std::vector<std::string> args;
  for (const MountOption& option : MountOptions()) {
    if (option.secret || (registry_only && option.group == OptionGroup::kMount)) continue;
    std::string value = option.format(config);
    if (value == option.format(kDefaults)) continue;
    if (option.value_name.empty()) {
      args.push_back("--" + std::string(option.name));  // a switch: on, as the default is off
    } else {
      args.push_back("--" + std::string(option.name) + "=" + value);
    }
  }
  if (!registry_only && !config.fuse_options.empty()) {
    std::string list;
    for (const std::string& o : config.fuse_options) list += (list.empty() ? "" : ",") + o;
    args.insert(args.end(), {"-o", list});
  }
  return args;
}

}  // namespace ocifs
