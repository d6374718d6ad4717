#include "registry/registries_conf.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::TempDir;

namespace {

Reference Ref(const std::string& text) {
  auto ref = Reference::Parse(text);
  REQUIRE(ref.ok());
  return *ref;
}

RegistriesConf Conf(const std::string& toml) {
  auto conf = RegistriesConf::Parse(toml, "/etc/test.conf");
  INFO(conf.status().ToString());
  REQUIRE(conf.ok());
  return *conf;
}

std::vector<std::string> Sources(const RegistriesConf& conf, const std::string& ref) {
  auto sources = conf.PullSources(Ref(ref));
  INFO(sources.status().ToString());
  REQUIRE(sources.ok());
  std::vector<std::string> out;
  for (const PullSource& s : *sources) {
    out.push_back((s.mirror ? "mirror " : "primary ") + s.ref.ToString() + (s.insecure ? " insecure" : ""));
  }
  return out;
}

const std::string kConfDigest = "sha256:" + std::string(64, 'a');

}  // namespace

TEST_CASE("registries.conf without a matching rule pulls the reference as written") {
  RegistriesConf conf = Conf("unqualified-search-registries = [\"docker.io\"]\n");
  CHECK(Sources(conf, "example.com/vms/disk:1") == std::vector<std::string>{"primary example.com/vms/disk:1"});
}

TEST_CASE("registries.conf rewrites a prefix to its location") {
  RegistriesConf conf = Conf(R"(
[[registry]]
prefix = "example.com/foo"
location = "internal.example.net:5000/bar"
insecure = true
)");
  CHECK(Sources(conf, "example.com/foo/disk:1") ==
        std::vector<std::string>{"primary internal.example.net:5000/bar/disk:1 insecure"});
  // A prefix matches whole path components only.
  CHECK(Sources(conf, "example.com/foobar/disk:1") == std::vector<std::string>{"primary example.com/foobar/disk:1"});
}

TEST_CASE("registries.conf chooses the longest matching prefix") {
  RegistriesConf conf = Conf(R"(
[[registry]]
location = "example.com"
insecure = true
[[registry]]
prefix = "example.com/vms"
location = "vms.example.net"
)");
  CHECK(Sources(conf, "example.com/vms/disk:1") == std::vector<std::string>{"primary vms.example.net/disk:1"});
  CHECK(Sources(conf, "example.com/other:1") == std::vector<std::string>{"primary example.com/other:1 insecure"});
}

TEST_CASE("registries.conf tries mirrors in order, then the primary") {
  RegistriesConf conf = Conf(R"(
[[registry]]
location = "127.0.0.1:5000"
[[registry.mirror]]
location = "127.0.0.1:6000"
insecure = true
[[registry.mirror]]
location = "mirror.example.com/cache"
)");
  CHECK(Sources(conf, "127.0.0.1:5000/disk:v1") ==
        std::vector<std::string>{"mirror 127.0.0.1:6000/disk:v1 insecure", "mirror mirror.example.com/cache/disk:v1",
                                 "primary 127.0.0.1:5000/disk:v1"});
  // A host prefix does not match another port of the same host.
  CHECK(Sources(conf, "127.0.0.1:5001/disk:v1") == std::vector<std::string>{"primary 127.0.0.1:5001/disk:v1"});
}

TEST_CASE("registries.conf pull-from-mirror picks mirrors by tag or digest") {
  RegistriesConf conf = Conf(R"(
[[registry]]
location = "example.com"
[[registry.mirror]]
location = "digests.example.net"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.example.net"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "all.example.net"
pull-from-mirror = "all"
)");
  CHECK(Sources(conf, "example.com/disk:1") ==
        std::vector<std::string>{"mirror tags.example.net/disk:1", "mirror all.example.net/disk:1",
                                 "primary example.com/disk:1"});
  CHECK(Sources(conf, "example.com/disk@" + kConfDigest) ==
        std::vector<std::string>{"mirror digests.example.net/disk@" + kConfDigest, "mirror all.example.net/disk@" + kConfDigest,
                                 "primary example.com/disk@" + kConfDigest});
}

TEST_CASE("registries.conf mirror-by-digest-only keeps tag pulls on the primary") {
  RegistriesConf conf = Conf(R"(
[[registry]]
location = "example.com"
mirror-by-digest-only = true
[[registry.mirror]]
location = "mirror.example.net"
)");
  CHECK(Sources(conf, "example.com/disk:1") == std::vector<std::string>{"primary example.com/disk:1"});
  CHECK(Sources(conf, "example.com/disk@" + kConfDigest).size() == 2);
}

TEST_CASE("registries.conf applies a wildcard prefix's settings without a rewrite") {
  RegistriesConf conf = Conf(R"(
[[registry]]
prefix = "*.example.com"
insecure = true
[[registry.mirror]]
location = "mirror.local:5000"
)");
  CHECK(Sources(conf, "a.b.example.com:443/vms/disk:1") ==
        std::vector<std::string>{"mirror mirror.local:5000/vms/disk:1", "primary a.b.example.com:443/vms/disk:1 insecure"});
  CHECK(Sources(conf, "example.com/vms/disk:1") == std::vector<std::string>{"primary example.com/vms/disk:1"});
}

TEST_CASE("registries.conf refuses a blocked registry, naming the file") {
  RegistriesConf conf = Conf(R"(
[[registry]]
location = "blocked.example.com"
blocked = true
)");
  auto sources = conf.PullSources(Ref("blocked.example.com/disk:1"));
  REQUIRE_FALSE(sources.ok());
  CHECK(sources.status().code() == Code::kPermissionDenied);
  CHECK_THAT(sources.status().message(), Catch::Contains("blocked") && Catch::Contains("/etc/test.conf"));
}

TEST_CASE("registries.conf errors name the file and what is wrong") {
  auto check = [](const std::string& toml, const std::string& expect) {
    auto conf = RegistriesConf::Parse(toml, "/etc/bad.conf");
    REQUIRE_FALSE(conf.ok());
    CHECK(conf.status().code() == Code::kInvalidArgument);
    CHECK_THAT(conf.status().message(), Catch::Contains("/etc/bad.conf") && Catch::Contains(expect));
  };
  check("[[registry]\nlocation = 1\n", "line 1");
  check("[[registry]]\nlocation = 1\n", "'location' must be a string");
  check("[[registry]]\nlocation = \"a\"\ninsecure = \"yes\"\n", "'insecure' must be true or false");
  check("[[registry]]\ninsecure = true\n", "neither 'prefix' nor 'location'");
  check("[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\nlocation = \"b\"\npull-from-mirror = \"some\"\n",
        "must be all, digest-only or tag-only, not 'some'");
  check("[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\ninsecure = true\n", "'location' is missing");
  check("[[registry]]\nlocation = \"a\"\n[[registry]]\nlocation = \"a\"\n", "defined more than once");
  check("[[registry]]\nprefix = \"a.*.com\"\n", "wildcard");
  check("[registries.search]\nregistries = []\n", "version 1");
}

TEST_CASE("registries.conf loads an explicit file, and names a missing one") {
  TempDir dir;
  std::string path = dir.path() + "/registries.conf";
  std::ofstream(path) << "[[registry]]\nprefix = \"a.example\"\nlocation = \"b.example\"\n";
  auto conf = RegistriesConf::Load(path);
  REQUIRE(conf.ok());
  CHECK(conf->rules().size() == 1);
  auto missing = RegistriesConf::Load(dir.path() + "/nope.conf");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("nope.conf"));
}

TEST_CASE("registries.conf.d files replace rules with the same prefix") {
  RegistriesConf conf = Conf("[[registry]]\nlocation = \"a.example\"\ninsecure = true\n");
  conf.Merge(Conf("[[registry]]\nlocation = \"a.example\"\nblocked = true\n[[registry]]\nlocation = \"c.example\"\n"));
  REQUIRE(conf.rules().size() == 2);
  CHECK(conf.rules()[0].blocked);
  CHECK_FALSE(conf.rules()[0].insecure);
}
