// RegistriesConf: containers-registries.conf(5), version 2 (TOML): which
// registry a reference is really pulled from, through which mirrors, and
// whether it may be pulled at all. Only `[[registry]]` tables are used
// (prefix, location, insecure, blocked, mirror-by-digest-only, and
// `[[registry.mirror]]` with location, insecure, pull-from-mirror); other
// keys (short-name aliases, unqualified-search-registries) are accepted and
// ignored. Redirection and mirrors apply to pulls only, never to pushes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"
#include "registry/reference.h"

namespace ocifs {

enum class PullFromMirror { kAll, kDigestOnly, kTagOnly };

struct RegistryMirror {
  std::string location;  // host[:port][/namespace...]
  bool insecure = false;
  PullFromMirror pull_from_mirror = PullFromMirror::kAll;
};

// One `[[registry]]` table. Plain value type.
struct RegistryRule {
  std::string prefix;    // host[:port][/ns...][/repo[:tag|@digest]] or *.domain
  std::string location;  // "" with a wildcard prefix: no rewrite
  bool insecure = false;
  bool blocked = false;
  bool mirror_by_digest_only = false;
  std::vector<RegistryMirror> mirrors;
  std::string source;  // the file it came from, for messages
};

// Where one pull reads from: a rewritten reference and how to reach it.
struct PullSource {
  Reference ref;  // registry and repository rewritten; tag and digest kept
  bool insecure = false;
  bool mirror = false;  // false: the primary location (always last)
};

// Immutable after loading; safe for concurrent use.
class RegistriesConf {
 public:
  RegistriesConf() = default;

  // `path` non-empty: that file alone. Empty: $CONTAINERS_REGISTRIES_CONF if
  // set, else ~/.config/containers/registries.conf if it exists, else
  // /etc/containers/registries.conf; then every *.conf of the directory
  // registries.conf.d beside it, in name order. Missing default files are an
  // empty configuration; a missing explicit file, or malformed TOML or values,
  // is kInvalidArgument naming the file (and line) and what is wrong.
  [[nodiscard]] static Result<RegistriesConf> Load(const std::string& path);
  // Parses one file's text; `source` names it in messages.
  [[nodiscard]] static Result<RegistriesConf> Parse(std::string_view text, const std::string& source);

  // Adds a later file's rules: a rule with the same prefix replaces the earlier one.
  void Merge(RegistriesConf later);

  // The rule whose prefix matches `ref` longest, or nullptr.
  const RegistryRule* Match(const Reference& ref) const;

  // The mirrors that apply to `ref` (pull-from-mirror and mirror-by-digest-only
  // against whether it names a digest), in order, then the primary location.
  // A blocked reference is kPermissionDenied naming the rule's file; a rewrite
  // that makes no valid reference is kInvalidArgument.
  [[nodiscard]] Result<std::vector<PullSource>> PullSources(const Reference& ref) const;

  const std::vector<RegistryRule>& rules() const { return rules_; }

 private:
  std::vector<RegistryRule> rules_;
};

}  // namespace ocifs
