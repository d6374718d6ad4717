#include "registry/reference.h"

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {
const std::string kDigest = "sha256:" + std::string(64, 'a');

Reference MustParse(const std::string& text) {
  auto r = Reference::Parse(text);
  INFO(text << " -> " << r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}
}  // namespace

TEST_CASE("reference expands docker hub short names") {
  auto r = MustParse("ubuntu");
  CHECK(r.registry == "docker.io");
  CHECK(r.repository == "library/ubuntu");
  CHECK(r.tag == "latest");
  CHECK(r.ToString() == "docker.io/library/ubuntu:latest");
  CHECK(r.ApiHost() == "registry-1.docker.io");
  CHECK(MustParse("user/app").ToString() == "docker.io/user/app:latest");
  CHECK(MustParse("docker://ubuntu:22.04").ToString() == "docker.io/library/ubuntu:22.04");
  CHECK(MustParse("index.docker.io/library/busybox").registry == "docker.io");
}

TEST_CASE("reference takes a first component with a dot, a colon or localhost as the registry") {
  auto r = MustParse("127.0.0.1:5000/disk:v1");
  CHECK(r.registry == "127.0.0.1:5000");
  CHECK(r.repository == "disk");
  CHECK(r.tag == "v1");
  CHECK(r.ApiHost() == "127.0.0.1:5000");
  CHECK(MustParse("localhost/a/b").registry == "localhost");
  CHECK(MustParse("quay.io/org/img/sub:1.0").repository == "org/img/sub");
  CHECK(MustParse("[::1]:5000/disk").registry == "[::1]:5000");
  CHECK(MustParse("myhost:5000/disk").registry == "myhost:5000");
  // Not a registry: no dot, colon or localhost.
  CHECK(MustParse("myorg/app").registry == "docker.io");
}

TEST_CASE("reference keeps tag and digest") {
  auto r = MustParse("docker://127.0.0.1:5000/a/b:t@" + kDigest);
  CHECK(r.tag == "t");
  CHECK(r.digest == kDigest);
  CHECK(r.ManifestRef() == kDigest);
  CHECK(r.ToString() == "127.0.0.1:5000/a/b:t@" + kDigest);
  auto d = MustParse("127.0.0.1:5000/a@" + kDigest);
  CHECK(d.tag.empty());
  CHECK(d.ToString() == "127.0.0.1:5000/a@" + kDigest);
}

TEST_CASE("reference parses oci layout paths with an optional tag") {
  auto r = MustParse("oci:/var/img:v2");
  CHECK(r.transport == Reference::Transport::kOciLayout);
  CHECK(r.layout_path == "/var/img");
  CHECK(r.tag == "v2");
  CHECK(r.ToString() == "oci:/var/img:v2");
  auto n = MustParse("oci:relative/dir");
  CHECK(n.layout_path == "relative/dir");
  CHECK(n.tag.empty());
  CHECK(n.ToString() == "oci:relative/dir");
  auto d = MustParse("oci:/x@" + kDigest);
  CHECK(d.digest == kDigest);
  CHECK(d.layout_path == "/x");
}

TEST_CASE("reference rejects malformed names with a clear message") {
  struct Case {
    std::string text, fragment;
  };
  for (const auto& c : std::vector<Case>{
           {"", "empty"},
           {"UPPER/case", "lowercase"},
           {"127.0.0.1:5000/Disk", "lowercase"},
           {"127.0.0.1:5000/disk:", "invalid tag"},
           {"127.0.0.1:5000/disk:-bad", "invalid tag"},
           {"127.0.0.1:5000/disk:" + std::string(129, 'a'), "invalid tag"},
           {"127.0.0.1:5000/", "missing repository"},
           {"127.0.0.1:5000/a//b", "invalid repository component"},
           {"127.0.0.1:5000/a_-b", "invalid repository component"},
           {"127.0.0.1:5000/-a", "invalid repository component"},
           {"host:port/x", "invalid registry host"},
           {"127.0.0.1:5000/a@sha256:abc", "invalid digest"},
           {"127.0.0.1:5000/a@sha256:" + std::string(64, 'A'), "invalid digest"},
           {"oci:", "directory path"},
           {"docker://", "empty"},
       }) {
    auto r = Reference::Parse(c.text);
    INFO(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains(c.fragment));
  }
}

TEST_CASE("reference refuses other transports and digest algorithms as unsupported") {
  auto a = Reference::Parse("docker-archive:/tmp/x.tar");
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == Code::kUnsupported);
  CHECK_THAT(a.status().message(), Catch::Contains("docker-archive"));
  auto d = Reference::Parse("127.0.0.1:5000/a@sha512:" + std::string(128, 'a'));
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == Code::kUnsupported);
}
