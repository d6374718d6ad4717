// The kubelet's CredentialProviderConfig as oci-fs reads it, Go durations,
// and the kubelet's matchImages rule.
#include "registry/credential_provider_config.h"

#include <catch2/catch.hpp>

using namespace ocifs;
using namespace std::chrono_literals;

namespace {

constexpr const char* kYaml = R"(apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages:
      - "*.dkr.ecr.*.amazonaws.com"
      - "registry.io:8080/path"
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: [get-credentials, --verbose]
    env:
      - name: AWS_PROFILE
        value: node
  - name: second
    matchImages: ["gcr.io"]
    defaultCacheDuration: 1h30m
    apiVersion: credentialprovider.kubelet.k8s.io/v1beta1
)";

std::string Message(const Result<CredentialProviderConfig>& r) { return r.ok() ? "" : r.status().message(); }

}  // namespace

TEST_CASE("a YAML credential provider config is read in full") {
  auto config = ParseCredentialProviderConfig(kYaml, "/etc/kubernetes/cp.yaml");
  REQUIRE(config.ok());
  REQUIRE(config->providers.size() == 2);
  const auto& p = config->providers[0];
  CHECK(p.name == "ecr-credential-provider");
  CHECK(p.match_images == std::vector<std::string>{"*.dkr.ecr.*.amazonaws.com", "registry.io:8080/path"});
  CHECK(p.default_cache_duration == 12h);
  CHECK(p.api_version == "credentialprovider.kubelet.k8s.io/v1");
  CHECK(p.args == std::vector<std::string>{"get-credentials", "--verbose"});
  REQUIRE(p.env.size() == 1);
  CHECK(p.env[0] == std::pair<std::string, std::string>{"AWS_PROFILE", "node"});
  CHECK(config->providers[1].default_cache_duration == 90min);
  CHECK(config->providers[1].args.empty());
}

TEST_CASE("the same config written as JSON is read the same") {
  auto config = ParseCredentialProviderConfig(
      R"({"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig",
          "providers": [{"name": "p", "matchImages": ["127.0.0.1:5000"], "defaultCacheDuration": "30s",
                         "apiVersion": "credentialprovider.kubelet.k8s.io/v1"}]})",
      "cp.json");
  REQUIRE(config.ok());
  CHECK(config->providers.at(0).match_images.at(0) == "127.0.0.1:5000");
  CHECK(config->providers.at(0).default_cache_duration == 30s);
}

TEST_CASE("a bad credential provider config is refused naming the file and the field") {
  const std::string head = "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n";
  const std::string ok_rest =
      "    matchImages: [a.io]\n    defaultCacheDuration: 1h\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n";
  auto parse = [&](const std::string& text) { return ParseCredentialProviderConfig(text, "cp.yaml"); };
  CHECK_THAT(Message(parse("kind: Other\napiVersion: kubelet.config.k8s.io/v1\nproviders: []\n")),
             Catch::Contains("cp.yaml") && Catch::Contains("kind is \"Other\""));
  CHECK_THAT(Message(parse(head)), Catch::Contains("\"providers\" is not a non-empty list"));
  CHECK_THAT(Message(parse(head + "  - name: p\n" + ok_rest + "    matchImage: [b]\n")),
             Catch::Contains("unknown field \"matchImage\""));
  CHECK_THAT(Message(parse(head + "  - name: p\n" + ok_rest + "    tokenAttributes: {}\n")),
             Catch::Contains("tokenAttributes") && Catch::Contains("not supported"));
  CHECK_THAT(Message(parse(head + "  - name: ../bin/sh\n" + ok_rest)), Catch::Contains("not a plain file name"));
  CHECK_THAT(Message(parse(head + "  - name: p\n" + ok_rest + "  - name: p\n" + ok_rest)),
             Catch::Contains("used twice"));
  CHECK_THAT(Message(parse(head + "  - name: p\n    defaultCacheDuration: 1h\n"
                                  "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n")),
             Catch::Contains("provider \"p\" has no \"matchImages\""));
  CHECK_THAT(Message(parse(head + "  - name: p\n    matchImages: [a.io]\n"
                                  "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n")),
             Catch::Contains("no \"defaultCacheDuration\""));
  CHECK_THAT(Message(parse(head + "  - name: p\n    matchImages: [a.io]\n    defaultCacheDuration: soon\n"
                                  "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n")),
             Catch::Contains("\"soon\" is not a duration"));
  CHECK_THAT(Message(parse(head + "  - name: p\n    matchImages: [a.io]\n    defaultCacheDuration: 1h\n"
                                  "    apiVersion: credentialprovider.kubelet.k8s.io/v2\n")),
             Catch::Contains("apiVersion \"credentialprovider.kubelet.k8s.io/v2\""));
  CHECK_THAT(Message(parse(head + "  - name: p\n    matchImages: [\"https://a.io\"]\n    defaultCacheDuration: 1h\n"
                                  "    apiVersion: credentialprovider.kubelet.k8s.io/v1\n")),
             Catch::Contains("has a scheme"));
  CHECK_THAT(Message(parse("providers: [\n")), Catch::Contains("not YAML or JSON"));
  CHECK_THAT(Message(parse("- a\n- b\n")), Catch::Contains("is not an object"));
}

TEST_CASE("Go durations are read as the kubelet reads them") {
  CHECK(*ParseGoDuration("0") == 0ms);
  CHECK(*ParseGoDuration("0s") == 0ms);
  CHECK(*ParseGoDuration("12h") == 12h);
  CHECK(*ParseGoDuration("1h30m") == 90min);
  CHECK(*ParseGoDuration("1h0m0s") == 1h);
  CHECK(*ParseGoDuration("1.5s") == 1500ms);
  CHECK(*ParseGoDuration("300ms") == 300ms);
  CHECK(*ParseGoDuration("2m5s") == 125s);
  for (const char* bad : {"", "5", "h", "1d", "1.2.3s", "-1s", "1h 30m", "s5"}) {
    INFO(bad);
    CHECK_FALSE(ParseGoDuration(bad).ok());
  }
}

TEST_CASE("matchImages globs match one host part each, ports exactly, paths as prefixes") {
  // The kubelet's documented examples.
  CHECK(ImageMatches("*.azurecr.io", "myreg.azurecr.io/disks/fedora"));
  CHECK_FALSE(ImageMatches("*.azurecr.io", "a.b.azurecr.io/disks"));
  CHECK_FALSE(ImageMatches("*.azurecr.io", "azurecr.io/disks"));
  CHECK(ImageMatches("123456789.dkr.ecr.us-east-1.amazonaws.com", "123456789.dkr.ecr.us-east-1.amazonaws.com/r"));
  CHECK(ImageMatches("*.dkr.ecr.*.amazonaws.com", "123456789.dkr.ecr.us-east-1.amazonaws.com/r"));
  CHECK(ImageMatches("k8s.*.io", "k8s.gcr.io/pause"));
  CHECK(ImageMatches("k8s.*", "k8s.io/pause"));
  CHECK_FALSE(ImageMatches("*.io", "registry.k8s.io/pause"));
  CHECK(ImageMatches("*.*.registry.io", "a.b.registry.io/x"));
  CHECK(ImageMatches("gcr.io", "gcr.io/project/image"));
  CHECK(ImageMatches("gc?.io", "gcr.io/project/image"));
  CHECK(ImageMatches("gc[a-r].io", "gcr.io/p"));
  CHECK_FALSE(ImageMatches("gc[a-q].io", "gcr.io/p"));
  // Ports: equal on both sides, a port on one side only does not match.
  CHECK(ImageMatches("registry.io:8080/path", "registry.io:8080/path/disk"));
  CHECK_FALSE(ImageMatches("registry.io:8080/path", "registry.io/path/disk"));
  CHECK_FALSE(ImageMatches("registry.io", "registry.io:8080/path/disk"));
  CHECK_FALSE(ImageMatches("registry.io:8080", "registry.io:5000/disk"));
  CHECK(ImageMatches("127.0.0.1:5000", "127.0.0.1:5000/t/disk"));
  // Paths: a string prefix of the image's path.
  CHECK_FALSE(ImageMatches("registry.io:8080/path", "registry.io:8080/other/disk"));
  CHECK(ImageMatches("registry.io/team", "registry.io/teamwork/disk"));
  CHECK_FALSE(ImageMatches("registry.io/team/disk", "registry.io/team"));
}

TEST_CASE("a matchImages pattern that can never match is refused") {
  CHECK(ValidateImagePattern("*.azurecr.io").ok());
  CHECK(ValidateImagePattern("registry.io:8080/path").ok());
  CHECK_FALSE(ValidateImagePattern("").ok());
  CHECK_FALSE(ValidateImagePattern("a b.io").ok());
  CHECK_FALSE(ValidateImagePattern("https://gcr.io").ok());
  CHECK_THAT(ValidateImagePattern("gc[a-.io").message(), Catch::Contains("'[' without its ']'"));
}
