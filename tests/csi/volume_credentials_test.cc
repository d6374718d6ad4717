// VolumeCredentials: a volume's secret or a credential provider's answer
// written as its credentials file; a changed secret and a provider's new
// answer written over it.
#include "csi/volume_credentials.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "registry/base64.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using namespace std::chrono_literals;
using ocifs::testing::TempDir;

namespace {

VolumeRecord CredVolume(const std::string& target) {
  VolumeRecord r;
  r.spec.volume_id = "csi-1";
  r.spec.target_path = target;
  r.spec.image = "127.0.0.1:5000/t/disk:v1";
  r.digest = "sha256:abcd";
  return r;
}

// A provider whose password the test changes.
struct Provider {
  std::string password = "first";
  int runs = 0;
  std::unique_ptr<CredentialProviders> Make(std::chrono::milliseconds cache) {
    CredentialProviderConfig config;
    CredentialProviderSpec spec;
    spec.name = "p";
    spec.match_images = {"127.0.0.1:5000"};
    spec.default_cache_duration = cache;
    spec.api_version = "credentialprovider.kubelet.k8s.io/v1";
    config.providers = {spec};
    return std::make_unique<CredentialProviders>(config, "/bin-dir", 5s, [this](const PluginInvocation& inv) {
      ++runs;
      CHECK(nlohmann::json::parse(inv.input)["image"] == "127.0.0.1:5000/t/disk");
      PluginRun run;
      run.exit_code = 0;
      run.out = nlohmann::json{{"apiVersion", "credentialprovider.kubelet.k8s.io/v1"},
                               {"kind", "CredentialProviderResponse"},
                               {"cacheKeyType", "Registry"},
                               {"auth", {{"127.0.0.1:5000", {{"username", "u"}, {"password", password}}}}}}
                    .dump();
      return Result<PluginRun>(run);
    });
  }
};

std::string PasswordIn(const std::string& file) {
  auto j = nlohmann::json::parse(ReadAuthFile(file));
  auto decoded = Base64Decode(j["auths"]["127.0.0.1:5000"]["auth"].get<std::string>());
  REQUIRE(decoded);
  return decoded->substr(decoded->find(':') + 1);
}

}  // namespace

TEST_CASE("a volume's secret is its credentials file, and a changed secret is written over it") {
  TempDir dir;
  VolumeStore store(dir.path() + "/state");
  REQUIRE(store.Init().ok());
  VolumeCredentials credentials(&store, nullptr);
  VolumeRecord r = CredVolume(dir.path() + "/target");
  REQUIRE(credentials.Prepare(&r, std::string(R"({"auths":{}})")).ok());
  CHECK(r.auth_source == "secret");
  CHECK(r.auth_file == store.AuthFilePath(r.spec.target_path));
  CHECK(ReadAuthFile(r.auth_file) == R"({"auths":{}})");
  REQUIRE(credentials.Republish(r, std::string(R"({"auths":{"x":{}}})")).ok());
  CHECK(ReadAuthFile(r.auth_file) == R"({"auths":{"x":{}}})");
  REQUIRE(credentials.Republish(r, std::nullopt).ok());  // no secret given: the file stays
  CHECK(ReadAuthFile(r.auth_file) == R"({"auths":{"x":{}}})");

  VolumeRecord none = CredVolume(dir.path() + "/target-2");
  REQUIRE(credentials.Prepare(&none, std::nullopt).ok());
  CHECK(none.auth_file.empty());
  CHECK(none.auth_source.empty());
}

TEST_CASE("without a secret a provider's credentials are written, and refreshed once they run out") {
  TempDir dir;
  VolumeStore store(dir.path() + "/state");
  REQUIRE(store.Init().ok());
  Provider fake;
  auto providers = fake.Make(1min);
  VolumeCredentials credentials(&store, providers.get());
  VolumeRecord r = CredVolume(dir.path() + "/target");
  REQUIRE(credentials.Prepare(&r, std::nullopt).ok());
  CHECK(r.auth_source == "provider");
  CHECK(PasswordIn(r.auth_file) == "first");
  CHECK(fake.runs == 1);

  fake.password = "second";
  const auto now = VolumeCredentials::Clock::now();
  credentials.Refresh(r, now + 30s);  // still cached: nobody asked
  CHECK(fake.runs == 1);
  CHECK(PasswordIn(r.auth_file) == "first");
  credentials.Refresh(r, now + 61s);  // ran out: asked again, the file rewritten
  CHECK(fake.runs == 2);
  CHECK(PasswordIn(r.auth_file) == "second");
  credentials.Refresh(r, now + 62s);  // the next refresh is a minute later
  CHECK(fake.runs == 2);

  // A secret wins over a provider.
  VolumeRecord with_secret = CredVolume(dir.path() + "/target-2");
  REQUIRE(credentials.Prepare(&with_secret, std::string("{}")).ok());
  CHECK(with_secret.auth_source == "secret");
  CHECK(fake.runs == 2);
}

TEST_CASE("a provider answering 0 s is asked again at most every 10 s") {
  TempDir dir;
  VolumeStore store(dir.path() + "/state");
  REQUIRE(store.Init().ok());
  Provider fake;
  auto providers = fake.Make(0s);
  VolumeCredentials credentials(&store, providers.get());
  VolumeRecord r = CredVolume(dir.path() + "/target");
  REQUIRE(credentials.Prepare(&r, std::nullopt).ok());
  const auto now = VolumeCredentials::Clock::now();
  credentials.Refresh(r, now + 5s);
  CHECK(fake.runs == 1);
  credentials.Refresh(r, now + 11s);
  CHECK(fake.runs == 2);
}
