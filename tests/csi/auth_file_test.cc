#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "csi/auth_file.h"

using namespace ocifs;
namespace fs = std::filesystem;

TEST_CASE("a dockerconfigjson secret becomes the volume's auth file content") {
  auto none = DockerConfigFromSecrets({});
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  const std::string cfg = R"({"auths": {"reg:5000": {"auth": "dXNlcjpzM2NyM3Q="}}})";
  auto ok = DockerConfigFromSecrets({{".dockerconfigjson", cfg}});
  REQUIRE(ok.ok());
  CHECK(**ok == cfg);
}

TEST_CASE("a malformed secret is refused without echoing its value") {
  auto wrong_key = DockerConfigFromSecrets({{"password", "s3cr3t"}});
  REQUIRE_FALSE(wrong_key.ok());
  CHECK(wrong_key.status().code() == Code::kInvalidArgument);
  CHECK(wrong_key.status().message().find("password") != std::string::npos);
  CHECK(wrong_key.status().message().find("s3cr3t") == std::string::npos);
  auto bad_json = DockerConfigFromSecrets({{".dockerconfigjson", "{s3cr3t"}});
  REQUIRE_FALSE(bad_json.ok());
  CHECK(bad_json.status().message().find("s3cr3t") == std::string::npos);
}

TEST_CASE("the auth file is written 0600 and removed") {
  char tmpl[] = "/tmp/ocifs-csi-auth-XXXXXX";
  fs::path dir = ::mkdtemp(tmpl);
  std::string path = (dir / "secrets" / "v.json").string();
  REQUIRE(WriteAuthFile(path, "{\"auths\":{}}").ok());
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == "{\"auths\":{}}");
  RemoveAuthFile(path);
  CHECK_FALSE(fs::exists(path));
  RemoveAuthFile(path);
  fs::remove_all(dir);
}
