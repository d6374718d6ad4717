// CredentialProviders with a fake plugin runner: which provider is asked,
// what it is sent, how its answer is checked and cached (cacheKeyType,
// cacheDuration); and RunPlugin with real programs (timeout, exit status).
#include "registry/credential_provider.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace ocifs;
using namespace std::chrono_literals;

namespace {

CredentialProviderSpec Spec(std::string name, std::vector<std::string> match, std::chrono::milliseconds cache = 1h) {
  CredentialProviderSpec s;
  s.name = std::move(name);
  s.match_images = std::move(match);
  s.default_cache_duration = cache;
  s.api_version = "credentialprovider.kubelet.k8s.io/v1";
  return s;
}

struct FakePlugins {
  std::vector<PluginInvocation> calls;
  std::map<std::string, nlohmann::json> answers;  // program -> response
  CredentialProviders::Runner runner() {
    return [this](const PluginInvocation& inv) -> Result<PluginRun> {
      calls.push_back(inv);
      PluginRun run;
      run.exit_code = 0;
      run.out = answers.at(inv.program).dump();
      return run;
    };
  }
};

nlohmann::json Response(std::string key_type, nlohmann::json auth, const char* duration = nullptr) {
  nlohmann::json j = {{"apiVersion", "credentialprovider.kubelet.k8s.io/v1"},
                      {"kind", "CredentialProviderResponse"},
                      {"cacheKeyType", key_type},
                      {"auth", auth}};
  if (duration) j["cacheDuration"] = duration;
  return j;
}

}  // namespace

TEST_CASE("a matching provider is run with the request on stdin and its entry for the image is used") {
  FakePlugins fake;
  CredentialProviderConfig config;
  config.providers = {Spec("other", {"*.example.com"}), Spec("local", {"127.0.0.1:5000"})};
  config.providers[1].args = {"--flag"};
  config.providers[1].env = {{"MODE", "test"}};
  fake.answers["/bin-dir/local"] =
      Response("Registry", {{"127.0.0.1:5000", {{"username", "u"}, {"password", "p-Secret"}}}});
  CredentialProviders providers(config, "/bin-dir", 5s, fake.runner());
  auto got = providers.Lookup("127.0.0.1:5000/t/disk");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->creds.username == "u");
  CHECK((*got)->creds.password == "p-Secret");
  CHECK((*got)->provider == "local");
  REQUIRE(fake.calls.size() == 1);
  CHECK(fake.calls[0].program == "/bin-dir/local");
  CHECK(fake.calls[0].args == std::vector<std::string>{"--flag"});
  CHECK(fake.calls[0].env.at(0).second == "test");
  CHECK(fake.calls[0].timeout == 5s);
  auto request = nlohmann::json::parse(fake.calls[0].input);
  CHECK(request == nlohmann::json{{"apiVersion", "credentialprovider.kubelet.k8s.io/v1"},
                                  {"kind", "CredentialProviderRequest"},
                                  {"image", "127.0.0.1:5000/t/disk"}});
  // No provider matches: nothing is run.
  auto none = providers.Lookup("quay.io/t/disk");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  CHECK(fake.calls.size() == 1);
}

TEST_CASE("cacheKeyType decides which later images reuse an answer, until cacheDuration runs out") {
  const auto t0 = CredentialProviders::Clock::now();
  for (std::string type : {"Image", "Registry", "Global"}) {
    DYNAMIC_SECTION(type) {
      FakePlugins fake;
      CredentialProviderConfig config;
      config.providers = {Spec("p", {"*.example.com"})};
      fake.answers["/b/p"] = Response(type, {{"*.example.com", {{"username", "u"}, {"password", "p"}}}}, "10m");
      CredentialProviders providers(config, "/b", 5s, fake.runner());
      REQUIRE(providers.Lookup("a.example.com/x", t0)->has_value());
      REQUIRE(providers.Lookup("a.example.com/x", t0 + 9min)->has_value());
      CHECK(fake.calls.size() == 1);  // the same image: cached whatever the type
      REQUIRE(providers.Lookup("a.example.com/y", t0 + 1min)->has_value());
      CHECK(fake.calls.size() == (type == "Image" ? 2u : 1u));
      REQUIRE(providers.Lookup("b.example.com/x", t0 + 1min)->has_value());
      CHECK(fake.calls.size() == (type == "Image" ? 3u : type == "Registry" ? 2u : 1u));
      size_t before = fake.calls.size();
      auto late = providers.Lookup("a.example.com/x", t0 + 11min);  // expired: asked again
      REQUIRE(late->has_value());
      CHECK(fake.calls.size() == before + 1);
      CHECK(late.value()->expires == t0 + 21min);
    }
  }
}

TEST_CASE("without cacheDuration the default applies; 0 is not cached") {
  const auto t0 = CredentialProviders::Clock::now();
  FakePlugins fake;
  CredentialProviderConfig config;
  config.providers = {Spec("p", {"a.io"}, 2min), Spec("q", {"b.io"})};
  fake.answers["/b/p"] = Response("Image", {{"a.io", {{"username", "u"}, {"password", "p"}}}});
  fake.answers["/b/q"] = Response("Image", {{"b.io", {{"username", "u"}, {"password", "p"}}}}, "0s");
  CredentialProviders providers(config, "/b", 5s, fake.runner());
  CHECK(providers.Lookup("a.io/x", t0).value()->expires == t0 + 2min);
  REQUIRE(providers.Lookup("a.io/x", t0 + 1min)->has_value());
  CHECK(fake.calls.size() == 1);
  REQUIRE(providers.Lookup("b.io/x", t0)->has_value());
  REQUIRE(providers.Lookup("b.io/x", t0)->has_value());
  CHECK(fake.calls.size() == 3);
}

TEST_CASE("of several matching entries the kubelet's order picks; an earlier provider wins") {
  FakePlugins fake;
  CredentialProviderConfig config;
  config.providers = {Spec("first", {"*.io"}), Spec("second", {"reg.io"})};
  fake.answers["/b/first"] = Response("Image", {{"reg.io", {{"username", "host"}, {"password", "p"}}},
                                                {"reg.io/team", {{"username", "team"}, {"password", "p"}}},
                                                {"other.io", {{"username", "other"}, {"password", "p"}}}});
  fake.answers["/b/second"] = Response("Image", {{"reg.io", {{"username", "second"}, {"password", "p"}}}});
  CredentialProviders providers(config, "/b", 5s, fake.runner());
  CHECK(providers.Lookup("reg.io/team/disk").value()->creds.username == "team");
  CHECK(providers.Lookup("reg.io/solo/disk").value()->creds.username == "host");
  CHECK(fake.calls.size() == 2);  // "second" is never asked: "first" had an entry
  // A provider with no entry for the image leaves it to the next one.
  fake.answers["/b/first"] = Response("Image", nlohmann::json::object());
  CHECK(providers.Lookup("reg.io/x").value()->creds.username == "second");
}

TEST_CASE("a provider's bad answer is an error naming it, never quoting the secret") {
  FakePlugins fake;
  CredentialProviderConfig config;
  config.providers = {Spec("p", {"a.io"})};
  CredentialProviders providers(config, "/b", 5s, fake.runner());
  auto error_of = [&](nlohmann::json answer) {
    fake.answers["/b/p"] = answer;
    auto r = providers.Lookup("a.io/x");
    REQUIRE_FALSE(r.ok());
    return r.status();
  };
  auto good = Response("Image", {{"a.io", {{"username", "u"}, {"password", "hunter2-Secret"}}}});
  auto wrong_version = good;
  wrong_version["apiVersion"] = "credentialprovider.kubelet.k8s.io/v1beta1";
  Status s = error_of(wrong_version);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("credential provider \"p\" for a.io/x") && Catch::Contains("v1beta1") &&
                              !Catch::Contains("hunter2"));
  auto bad_type = good;
  bad_type["cacheKeyType"] = "Repository";
  CHECK_THAT(error_of(bad_type).message(), Catch::Contains("cacheKeyType \"Repository\""));
  auto bad_kind = good;
  bad_kind["kind"] = "Other";
  CHECK_THAT(error_of(bad_kind).message(), Catch::Contains("kind \"Other\""));
  auto no_password = good;
  no_password["auth"]["a.io"].erase("password");
  CHECK_THAT(error_of(no_password).message(), Catch::Contains("no string username and password"));
  CHECK_THAT(error_of(nlohmann::json::array()).message(), Catch::Contains("not a JSON object"));
}

TEST_CASE("a plugin that fails or hangs is an error; its stderr's last line is quoted") {
  auto run = [](std::string script, std::chrono::milliseconds timeout) {
    return RunPlugin({"/bin/sh", {"-c", script}, {{"OCIFS_TEST_VAR", "v1"}}, "{\"kind\":\"x\"}", timeout});
  };
  auto echoed = run("cat; printf \" $OCIFS_TEST_VAR\"; echo oops >&2", 10s);
  REQUIRE(echoed.ok());
  CHECK(echoed->exit_code == 0);
  CHECK(echoed->out == "{\"kind\":\"x\"} v1");
  CHECK(echoed->err == "oops\n");
  auto failed = run("echo first >&2; echo 'no credentials for that image' >&2; exit 3", 10s);
  REQUIRE(failed.ok());
  CHECK(failed->exit_code == 3);
  auto start = std::chrono::steady_clock::now();
  auto hung = run("exec sleep 30", 300ms);
  REQUIRE(hung.ok());
  CHECK(hung->timed_out);
  CHECK(std::chrono::steady_clock::now() - start < 20s);
  CHECK(RunPlugin({"/nonexistent/provider", {}, {}, "", 1s}).status().code() == Code::kNotFound);

  CredentialProviderConfig config;
  config.providers = {Spec("p", {"a.io"})};
  CredentialProviders failing(config, "/b", 5s, [&](const PluginInvocation&) { return failed; });
  auto r = failing.Lookup("a.io/x");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK(r.status().message() ==
        "credential provider \"p\" for a.io/x failed (exit status 3): no credentials for that image");
  CredentialProviders hanging(config, "/b", 300ms, [&](const PluginInvocation&) { return hung; });
  CHECK_THAT(hanging.Lookup("a.io/x").status().message(), Catch::Contains("did not answer in 300 ms (killed)"));
}

TEST_CASE("a volume's docker config holds the provider's credentials for the registry") {
  auto j = nlohmann::json::parse(DockerConfigFor("127.0.0.1:5000", Credentials{"u", "p:w"}));
  CHECK(j["auths"]["127.0.0.1:5000"]["auth"] == "dTpwOnc=");
}
