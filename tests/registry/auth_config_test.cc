#include "registry/auth_config.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "registry/base64.h"
#include "registry/credential_helper.h"
#include "testing/temp_dir.h"

using namespace ocifs;
namespace fs = std::filesystem;
using ocifs::testing::TempDir;

namespace {

// Sets (or unsets, for nullptr) an environment variable for one scope.
struct EnvGuard {
  std::string name;
  std::optional<std::string> old;
  EnvGuard(std::string n, const char* value) : name(std::move(n)) {
    if (const char* o = std::getenv(name.c_str())) old = o;
    if (value) {
      setenv(name.c_str(), value, 1);
    } else {
      unsetenv(name.c_str());
    }
  }
  ~EnvGuard() {
    if (old) {
      setenv(name.c_str(), old->c_str(), 1);
    } else {
      unsetenv(name.c_str());
    }
  }
};

std::string Entry(const std::string& user, const std::string& pass) {
  return R"({"auth":")" + Base64Encode(user + ":" + pass) + R"("})";
}

}  // namespace

TEST_CASE("base64 round-trips and rejects junk") {
  CHECK(Base64Encode("user:pa:ss") == "dXNlcjpwYTpzcw==");
  CHECK(Base64Decode("dXNlcjpwYTpzcw==") == std::optional<std::string>("user:pa:ss"));
  CHECK(Base64Decode("YQ==") == std::optional<std::string>("a"));
  CHECK(Base64Decode("YWI=") == std::optional<std::string>("ab"));
  CHECK_FALSE(Base64Decode("YQ="));
  CHECK_FALSE(Base64Decode("Y!=="));
}

TEST_CASE("authfile lookup prefers the longest matching key") {
  TempDir dir;
  std::string file = dir.Write("auth.json", R"({"auths":{
      "reg.example:5000": )" + Entry("host", "h") + R"(,
      "reg.example:5000/team": )" + Entry("team", "t") + R"(,
      "reg.example:5000/team/app": )" + Entry("app", "a") + R"(,
      "other.example": )" + Entry("other", "o") + R"(}})");
  auto app = LookupAuthFile(file, "reg.example:5000", "team/app");
  REQUIRE(app.ok());
  REQUIRE(*app);
  CHECK((*app)->username == "app");
  auto team = LookupAuthFile(file, "reg.example:5000", "team/other/deep");
  REQUIRE(team.ok());
  CHECK((*team)->username == "team");
  auto host = LookupAuthFile(file, "reg.example:5000", "solo");
  REQUIRE(host.ok());
  CHECK((*host)->username == "host");
  CHECK((*host)->password == "h");
  auto none = LookupAuthFile(file, "reg.example", "solo");  // no port: a different registry
  REQUIRE(none.ok());
  CHECK_FALSE(*none);
}

TEST_CASE("authfile lookup understands URL keys and docker hub aliases") {
  TempDir dir;
  std::string file = dir.Write("config.json", R"({"auths":{
      "https://index.docker.io/v1/": )" + Entry("hub", "x:y") + R"(,
      "http://127.0.0.1:5000/v2/": )" + Entry("local", "l") + R"(}})");
  auto hub = LookupAuthFile(file, "docker.io", "library/ubuntu");
  REQUIRE(hub.ok());
  REQUIRE(*hub);
  CHECK((*hub)->username == "hub");
  CHECK((*hub)->password == "x:y");
  auto local = LookupAuthFile(file, "127.0.0.1:5000", "disk");
  REQUIRE(local.ok());
  CHECK((*local)->username == "local");
}

TEST_CASE("authfile errors never quote the file's secrets") {
  TempDir dir;
  std::string bad_json = dir.Write("bad.json", R"({"auths":{"h": {"auth": "c2VjcmV0OnB3"})");
  auto r = LookupAuthFile(bad_json, "h", "r");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kCorrupt);
  CHECK_THAT(r.status().message(), !Catch::Contains("c2VjcmV0"));
  std::string bad_b64 = dir.Write("b64.json", R"({"auths":{"h": {"auth": "!!secret!!"}}})");
  auto b = LookupAuthFile(bad_b64, "h", "r");
  REQUIRE_FALSE(b.ok());
  CHECK_THAT(b.status().message(), !Catch::Contains("secret"));
  auto missing = LookupAuthFile(dir / "nope.json", "h", "r");
  CHECK(missing.status().code() == Code::kIoError);
}

TEST_CASE("credentials come from --creds first, then the explicit authfile") {
  TempDir dir;
  std::string file = dir.Write("a.json", R"({"auths":{"h:1": )" + Entry("fromfile", "f") + "}}");
  RegistryOptions o;
  o.creds = "me:p:w";
  o.authfile = file;
  auto c = FindCredentials(o, "h:1", "r");
  REQUIRE(c.ok());
  CHECK((*c)->username == "me");
  CHECK((*c)->password == "p:w");
  o.creds.reset();
  c = FindCredentials(o, "h:1", "r");
  REQUIRE(c.ok());
  CHECK((*c)->username == "fromfile");
  o.creds = "nocolon";
  CHECK(FindCredentials(o, "h:1", "r").status().code() == Code::kInvalidArgument);
}

TEST_CASE("default authfiles are searched in order: REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, ~/.docker") {
  TempDir dir;
  std::string env_file = dir.Write("env/auth.json", R"({"auths":{"a:1": )" + Entry("env", "1") + "}}");
  dir.Write("xdg/containers/auth.json",
            R"({"auths":{"a:1": )" + Entry("xdg", "2") + R"(, "b:1": )" + Entry("xdg", "2") + "}}");
  dir.Write("home/.docker/config.json",
            R"({"auths":{"b:1": )" + Entry("home", "3") + R"(, "c:1": )" + Entry("home", "3") + "}}");
  EnvGuard e1("REGISTRY_AUTH_FILE", env_file.c_str());
  EnvGuard e2("XDG_RUNTIME_DIR", (dir / "xdg").c_str());
  EnvGuard e3("HOME", (dir / "home").c_str());
  auto files = DefaultAuthFiles();
  REQUIRE(files.size() == 3);
  CHECK(files[0] == env_file);
  RegistryOptions o;
  CHECK((*FindCredentials(o, "a:1", "r"))->username == "env");
  CHECK((*FindCredentials(o, "b:1", "r"))->username == "xdg");
  CHECK((*FindCredentials(o, "c:1", "r"))->username == "home");
  CHECK_FALSE(*FindCredentials(o, "d:1", "r"));
  EnvGuard e4("REGISTRY_AUTH_FILE", nullptr);
  EnvGuard e5("XDG_RUNTIME_DIR", (dir / "missing").c_str());
  CHECK((*FindCredentials(o, "a:1", "r")) == std::nullopt);
  CHECK((*FindCredentials(o, "b:1", "r"))->username == "home");
}

namespace {

// A docker credential helper as a shell script, docker-credential-test, in
// dir/bin: it knows one server, stalls for "slow", prints junk for "junk".
void WriteTestHelper(const TempDir& dir) {
  std::string path = dir.Write("bin/docker-credential-test", R"(#!/bin/sh
read server
case "$server" in
  h:1) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-S3cret"}\n' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub","Secret":"hub-S3cret"}\n' "$server" ;;
  slow) sleep 5 ;;
  junk) echo "helper-S3cret is not json" ;;
  token) printf '{"ServerURL":"token","Username":"<token>","Secret":"t"}\n' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
)");
  fs::permissions(path, fs::perms::owner_all);
}

// The test helper in a fresh directory at the front of PATH, for one scope.
struct HelperOnPath {
  TempDir dir;
  EnvGuard path{"PATH", (dir / "bin" + ":/usr/bin:/bin").c_str()};
  HelperOnPath() { WriteTestHelper(dir); }
};

}  // namespace

TEST_CASE("a docker credential helper is asked with the server URL on stdin") {
  HelperOnPath helper;
  auto c = RunCredentialHelper("test", "h:1");
  REQUIRE(c.ok());
  REQUIRE(*c);
  CHECK((*c)->username == "helper-user");
  CHECK((*c)->password == "helper-S3cret");
  CHECK(CredentialHelperServerUrl("docker.io") == "https://index.docker.io/v1/");
  CHECK((*RunCredentialHelper("test", CredentialHelperServerUrl("docker.io")))->username == "hub");
  // No credentials for the server: nothing, not an error.
  auto none = RunCredentialHelper("test", "other:1");
  REQUIRE(none.ok());
  CHECK_FALSE(*none);
}

TEST_CASE("a credential helper's failures are errors that never quote its output") {
  HelperOnPath helper;
  auto junk = RunCredentialHelper("test", "junk");
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.status().code() == Code::kUnavailable);
  CHECK_THAT(junk.status().message(), Catch::Contains("docker-credential-test") && !Catch::Contains("S3cret"));
  auto slow = RunCredentialHelper("test", "slow", std::chrono::milliseconds(300));
  REQUIRE_FALSE(slow.ok());
  CHECK_THAT(slow.status().message(), Catch::Contains("did not answer"));
  CHECK(RunCredentialHelper("test", "token").status().code() == Code::kUnsupported);
  CHECK(RunCredentialHelper("missing", "h:1").status().code() == Code::kNotFound);
  CHECK(RunCredentialHelper("../evil", "h:1").status().code() == Code::kInvalidArgument);
}

TEST_CASE("credHelpers and credsStore in an auth file come before its auths") {
  HelperOnPath helper;
  const TempDir& dir = helper.dir;
  std::string per_host = dir.Write("per-host.json", R"({"credHelpers": {"h:1": "test"}, "auths": {"h:1": )" +
                                                        Entry("file", "1") + R"(, "o:1": )" + Entry("file", "2") + "}}");
  CHECK((*LookupAuthFile(per_host, "h:1", "r"))->username == "helper-user");
  CHECK((*LookupAuthFile(per_host, "o:1", "r"))->username == "file");
  std::string store = dir.Write("store.json", R"({"credsStore": "test", "auths": {"o:1": )" + Entry("file", "2") + "}}");
  CHECK((*LookupAuthFile(store, "h:1", "r"))->username == "helper-user");
  CHECK((*LookupAuthFile(store, "o:1", "r"))->username == "file");  // the helper has none
  CHECK_FALSE(*LookupAuthFile(store, "x:1", "r"));
  std::string missing = dir.Write("missing.json", R"({"credsStore": "desktop", "auths": {"o:1": )" +
                                                      Entry("file", "2") + "}}");
  CHECK((*LookupAuthFile(missing, "o:1", "r"))->username == "file");  // no such helper: a warning
  std::string bad = dir.Write("bad.json", R"({"credHelpers": ["test"]})");
  CHECK(LookupAuthFile(bad, "h:1", "r").status().code() == Code::kCorrupt);
}
