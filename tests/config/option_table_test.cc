#include "config/option_table.h"

#include <catch2/catch.hpp>
#include <set>

using namespace ocifs;

TEST_CASE("every option has a flag, a -o key unless it is secret, help, a parser and a formatter") {
  std::set<std::string_view> names, keys, attributes;
  for (const MountOption& o : MountOptions()) {
    CHECK(!o.name.empty());
    CHECK(names.insert(o.name).second);
    CHECK(!o.help.empty());
    CHECK(o.parse != nullptr);
    CHECK(o.format != nullptr);
    if (o.secret) {
      CHECK(o.key.empty());  // an fstab line is no place for a password
      CHECK(o.attribute.empty());
    } else {
      CHECK(keys.insert(o.key).second);
    }
    if (!o.attribute.empty()) CHECK(attributes.insert(o.attribute).second);
  }
  CHECK(FindOption("chunk-size") != nullptr);
  CHECK(FindOption("--chunk-size") == nullptr);
  CHECK(FindOption("frobnicate") == nullptr);
}

TEST_CASE("an option is named as the user spelled it") {
  const MountOption& cache = *FindOption("cluster-cache");
  CHECK(SpelledName(cache, Spelling::kFlag) == "--cluster-cache");
  CHECK(SpelledName(cache, Spelling::kMountOption) == "-o cluster_cache");
  CHECK(SpelledName(cache, Spelling::kVolumeAttribute) == "volume attribute clusterCache");
}

TEST_CASE("a refusal names the option and the value, quoted as its spelling quotes") {
  const MountOption& cache = *FindOption("cluster-cache");
  Status flag = Refusal({"--cluster-cache", "maybe", false}, cache, "{on} or {off}");
  CHECK(flag.code() == Code::kInvalidArgument);
  CHECK(flag.message() == "--cluster-cache must be on or off, not 'maybe'");
  Status attr = Refusal({"volume attribute clusterCache", "false", true}, cache, "{on} or {off}");
  CHECK(attr.message() == "volume attribute clusterCache must be \"on\" or \"off\", not \"false\"");
}

TEST_CASE("a refusal of a secret never quotes its value") {
  Status s = Refusal({"--creds", "", false}, *FindOption("creds"), "USER:PASS");
  CHECK(s.message() == "--creds must be USER:PASS");
}
