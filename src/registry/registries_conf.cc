#include "registry/registries_conf.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>
#include <unistd.h>

namespace ocifs {
namespace {

namespace fs = std::filesystem;

Status Bad(const std::string& source, const std::string& what) {
  return InvalidArgument("registries.conf " + source + ": " + what);
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("registries.conf " + path + ": cannot read it");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Reads key `key` of `table` as a string into *out ("" when absent).
Status GetString(const toml::table& table, std::string_view key, const std::string& where, std::string* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  auto value = node->value<std::string>();
  if (!node->is_string() || !value) return InvalidArgument(where + ": '" + std::string(key) + "' must be a string");
  *out = *value;
  return Status::Ok();
}

Status GetBool(const toml::table& table, std::string_view key, const std::string& where, bool* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return Status::Ok();
  if (!node->is_boolean()) return InvalidArgument(where + ": '" + std::string(key) + "' must be true or false");
  *out = *node->value<bool>();
  return Status::Ok();
}

Result<RegistryMirror> ParseMirror(const toml::node& node, const std::string& where, bool digest_only_rule) {
  const toml::table* table = node.as_table();
  if (table == nullptr) return InvalidArgument(where + " must be a table");
  RegistryMirror m;
  OCIFS_RETURN_IF_ERROR(GetString(*table, "location", where, &m.location));
  OCIFS_RETURN_IF_ERROR(GetBool(*table, "insecure", where, &m.insecure));
  std::string pull;
  OCIFS_RETURN_IF_ERROR(GetString(*table, "pull-from-mirror", where, &pull));
  if (m.location.empty()) return InvalidArgument(where + ": 'location' is missing");
  if (pull.empty() || pull == "all") {
    m.pull_from_mirror = PullFromMirror::kAll;
  } else if (pull == "digest-only") {
    m.pull_from_mirror = PullFromMirror::kDigestOnly;
  } else if (pull == "tag-only") {
    m.pull_from_mirror = PullFromMirror::kTagOnly;
  } else {
    return InvalidArgument(where + ": 'pull-from-mirror' must be all, digest-only or tag-only, not '" + pull + "'");
  }
  if (digest_only_rule && m.pull_from_mirror != PullFromMirror::kAll) {
    return InvalidArgument(where + ": 'pull-from-mirror' cannot be set when the registry has mirror-by-digest-only");
  }
  return m;
}

Result<RegistryRule> ParseRule(const toml::node& node, const std::string& where, const std::string& source) {
  const toml::table* table = node.as_table();
  if (table == nullptr) return InvalidArgument(where + " must be a table");
  RegistryRule rule;
  rule.source = source;
  OCIFS_RETURN_IF_ERROR(GetString(*table, "prefix", where, &rule.prefix));
  OCIFS_RETURN_IF_ERROR(GetString(*table, "location", where, &rule.location));
  OCIFS_RETURN_IF_ERROR(GetBool(*table, "insecure", where, &rule.insecure));
  OCIFS_RETURN_IF_ERROR(GetBool(*table, "blocked", where, &rule.blocked));
  OCIFS_RETURN_IF_ERROR(GetBool(*table, "mirror-by-digest-only", where, &rule.mirror_by_digest_only));
  if (rule.prefix.empty()) rule.prefix = rule.location;
  if (rule.prefix.empty()) return InvalidArgument(where + ": neither 'prefix' nor 'location' is set");
  bool wildcard = rule.prefix.starts_with("*.");
  if (rule.prefix.find('*') != std::string::npos &&
      (!wildcard || rule.prefix.find_first_of("*/:", 1) != std::string::npos)) {
    return InvalidArgument(where + ": prefix '" + rule.prefix + "': a wildcard is only allowed as *.domain");
  }
  if (rule.location.empty() && !wildcard) rule.location = rule.prefix;
  if (const toml::node* mirrors = table->get("mirror")) {
    const toml::array* list = mirrors->as_array();
    if (list == nullptr) return InvalidArgument(where + ": 'mirror' must be an array of tables ([[registry.mirror]])");
    for (size_t i = 0; i < list->size(); ++i) {
      OCIFS_ASSIGN_OR_RETURN(RegistryMirror m, ParseMirror(*list->get(i), where + ".mirror[" + std::to_string(i) + "]",
                                                           rule.mirror_by_digest_only));
      rule.mirrors.push_back(std::move(m));
    }
  }
  return rule;
}

// How many characters of `name` (registry/repo[:tag][@digest]) the rule
// matches, 0 if none; *rewritten = the part a location replaces.
size_t MatchLength(const RegistryRule& rule, const Reference& ref, const std::string& name, size_t* rewritten) {
  const std::string& p = rule.prefix;
  if (p.starts_with("*.")) {
    size_t colon = ref.registry.rfind(':');
    bool has_port = colon != std::string::npos && !ref.registry.ends_with("]");
    std::string host = has_port ? ref.registry.substr(0, colon) : ref.registry;
    std::string_view domain = std::string_view(p).substr(1);  // ".example.com"
    if (host.size() <= domain.size() || !host.ends_with(domain)) return 0;
    *rewritten = ref.registry.size();
    return p.size();
  }
  if (!name.starts_with(p)) return 0;
  if (name.size() > p.size()) {
    char next = name[p.size()];
    bool tag_separator = next == ':' && p.find('/') != std::string::npos;  // not a port
    if (next != '/' && next != '@' && !tag_separator) return 0;
  }
  *rewritten = p.size();
  return p.size();
}

Result<Reference> Rewrite(const Reference& ref, const std::string& name, size_t matched, const std::string& location,
                          const RegistryRule& rule) {
  std::string text = location + name.substr(matched);
  auto parsed = Reference::Parse(text);
  if (!parsed.ok()) {
    return InvalidArgument("registries.conf " + rule.source + ": prefix '" + rule.prefix + "' rewrites " +
                           ref.ToString() + " to '" + text + "', which is not a reference: " +
                           parsed.status().message());
  }
  return std::move(parsed).value();
}

}  // namespace

Result<RegistriesConf> RegistriesConf::Parse(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Bad(source, "line " + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  if (root.contains("registries")) {
    return Bad(source, "the version 1 format ([registries.search], [registries.insecure], ...) is not supported; "
                       "use [[registry]] tables (version 2)");
  }
  RegistriesConf conf;
  const toml::node* registries = root.get("registry");
  if (registries == nullptr) return conf;
  const toml::array* list = registries->as_array();
  if (list == nullptr) return Bad(source, "'registry' must be an array of tables ([[registry]])");
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = "registries.conf " + source + ": registry[" + std::to_string(i) + "]";
    OCIFS_ASSIGN_OR_RETURN(RegistryRule rule, ParseRule(*list->get(i), where, source));
    for (const RegistryRule& other : conf.rules_) {
      if (other.prefix == rule.prefix) return Bad(source, "prefix '" + rule.prefix + "' is defined more than once");
    }
    conf.rules_.push_back(std::move(rule));
  }
  return conf;
}

Result<RegistriesConf> RegistriesConf::Load(const std::string& path) {
  if (!path.empty()) {
    OCIFS_ASSIGN_OR_RETURN(std::string text, ReadText(path));
    return Parse(text, path);
  }
  std::string main = "/etc/containers/registries.conf";
  if (const char* env = std::getenv("CONTAINERS_REGISTRIES_CONF"); env != nullptr && *env != '\0') {
    main = env;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && ::geteuid() != 0) {
    std::string user = std::string(home) + "/.config/containers/registries.conf";
    std::error_code ec;
    if (fs::exists(user, ec)) main = user;
  }
  RegistriesConf conf;
  std::error_code ec;
  if (fs::exists(main, ec)) {
    OCIFS_ASSIGN_OR_RETURN(std::string text, ReadText(main));
    OCIFS_ASSIGN_OR_RETURN(conf, Parse(text, main));
  }
  fs::path dropins = fs::path(main).parent_path() / "registries.conf.d";
  std::vector<std::string> files;
  if (fs::is_directory(dropins, ec)) {
    for (const auto& entry : fs::directory_iterator(dropins, ec)) {
      if (entry.path().extension() == ".conf") files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    OCIFS_ASSIGN_OR_RETURN(std::string text, ReadText(file));
    OCIFS_ASSIGN_OR_RETURN(RegistriesConf later, Parse(text, file));
    conf.Merge(std::move(later));
  }
  return conf;
}

void RegistriesConf::Merge(RegistriesConf later) {
  for (RegistryRule& rule : later.rules_) {
    auto same = std::find_if(rules_.begin(), rules_.end(), [&](const RegistryRule& r) { return r.prefix == rule.prefix; });
    if (same != rules_.end()) {
      *same = std::move(rule);
    } else {
      rules_.push_back(std::move(rule));
    }
  }
}

const RegistryRule* RegistriesConf::Match(const Reference& ref) const {
  const std::string name = ref.ToString();
  const RegistryRule* best = nullptr;
  size_t best_length = 0;
  for (const RegistryRule& rule : rules_) {
    size_t rewritten = 0;
    size_t length = MatchLength(rule, ref, name, &rewritten);
    if (length > best_length) {
      best = &rule;
      best_length = length;
    }
  }
  return best;
}

Result<std::vector<PullSource>> RegistriesConf::PullSources(const Reference& ref) const {
  const RegistryRule* rule = Match(ref);
  if (rule == nullptr) return std::vector<PullSource>{PullSource{ref, false, false}};
  if (rule->blocked) {
    return PermissionDenied("registry " + ref.registry + " is blocked: pulling " + ref.ToString() +
                            " is forbidden by prefix '" + rule->prefix + "' in " + rule->source);
  }
  const std::string name = ref.ToString();
  size_t matched = 0;
  MatchLength(*rule, ref, name, &matched);
  const bool by_digest = !ref.digest.empty();
  std::vector<PullSource> sources;
  for (const RegistryMirror& m : rule->mirrors) {
    if (rule->mirror_by_digest_only && !by_digest) continue;
    if (m.pull_from_mirror == PullFromMirror::kDigestOnly && !by_digest) continue;
    if (m.pull_from_mirror == PullFromMirror::kTagOnly && by_digest) continue;
    OCIFS_ASSIGN_OR_RETURN(Reference mirrored, Rewrite(ref, name, matched, m.location, *rule));
    sources.push_back(PullSource{std::move(mirrored), m.insecure, true});
  }
  Reference primary = ref;
  if (!rule->location.empty()) {
    OCIFS_ASSIGN_OR_RETURN(primary, Rewrite(ref, name, matched, rule->location, *rule));
  }
  sources.push_back(PullSource{std::move(primary), rule->insecure, false});
  return sources;
}

}  // namespace ocifs
