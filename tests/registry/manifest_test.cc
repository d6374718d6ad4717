#include "registry/manifest.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "registry/digest.h"
#include "registry/image_resolver.h"

using namespace ocifs;

namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string D(const std::string& s) { return Sha256Digest(Bytes(s)); }

const std::string kConfig = R"({"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers"}})";
const std::string kLayer = "layer bytes";

std::string ImageManifest(const std::string& config = kConfig) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + D(config) +
         R"(","size":)" + std::to_string(config.size()) + R"(},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + D(kLayer) +
         R"(","size":11,"annotations":{"a":"b"}},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + D("z") + R"(","size":1}]})";
}

std::string Index(const std::string& arm_manifest) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + D("amd") + R"(","size":3,
     "platform":{"os":"linux","architecture":"amd64"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + D(arm_manifest) + R"(","size":)" +
         std::to_string(arm_manifest.size()) + R"(,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + D("att") + R"(","size":3,
     "platform":{"os":"unknown","architecture":"unknown"}}]})";
}

}  // namespace

TEST_CASE("manifest parser reads an OCI image manifest") {
  auto m = ParseManifest(ImageManifest(), "", "manifest x");
  REQUIRE(m.ok());
  CHECK_FALSE(m->is_index);
  CHECK(m->media_type == media_type::kOciManifest);
  CHECK(m->config.digest == D(kConfig));
  REQUIRE(m->layers.size() == 2);
  CHECK(m->layers[0].size == 11);
  CHECK(m->layers[0].annotations.at("a") == "b");
  CHECK(CompressionOfMediaType(m->layers[0].media_type) == LayerCompression::kGzip);
  CHECK(CompressionOfMediaType(m->layers[1].media_type) == LayerCompression::kZstd);
  CHECK(CompressionOfMediaType("application/vnd.oci.image.layer.v1.tar") == LayerCompression::kNone);
  CHECK(CompressionOfMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip") == LayerCompression::kGzip);
  CHECK(CompressionOfMediaType("text/plain") == LayerCompression::kUnknown);
  CHECK(LayerCompressionName(LayerCompression::kZstd) == "zstd");
}

TEST_CASE("manifest parser takes the media type from Content-Type when the document has none") {
  std::string docker = R"({"schemaVersion":2,"config":{"digest":")" + D("c") + R"(","size":1},"layers":[]})";
  auto m = ParseManifest(docker, "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8", "m");
  REQUIRE(m.ok());
  CHECK(m->media_type == media_type::kDockerManifest);
  CHECK(ManifestAcceptHeader().find("manifest.list.v2+json") != std::string::npos);
  CHECK(ManifestAcceptHeader().find("image.index.v1+json") != std::string::npos);
}

TEST_CASE("manifest parser rejects schema1, unknown types and malformed documents") {
  auto s1 = ParseManifest(R"({"schemaVersion":1,"name":"x","fsLayers":[]})", "", "manifest of x");
  CHECK(s1.status().code() == Code::kUnsupported);
  CHECK_THAT(s1.status().message(), Catch::Contains("schema 1"));
  CHECK(ParseManifest("{}", "application/vnd.docker.distribution.manifest.v1+prettyjws", "m").status().code() ==
        Code::kUnsupported);
  CHECK(ParseManifest(R"({"schemaVersion":2,"mediaType":"application/vnd.foo"})", "", "m").status().code() ==
        Code::kUnsupported);
  CHECK(ParseManifest("not json", "", "m").status().code() == Code::kCorrupt);
  CHECK(ParseManifest(R"({"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]})", "", "m")
            .status()
            .code() == Code::kCorrupt);
  CHECK(ParseManifest(R"({"schemaVersion":2,"config":{"digest":")" + D("c") + R"(","size":-1},"layers":[]})", "", "m")
            .status()
            .code() == Code::kCorrupt);
  CHECK(ParseManifest(std::string(kMaxManifestBytes + 1, ' '), "", "m").status().code() == Code::kCorrupt);
}

TEST_CASE("platform selection picks the matching entry or lists what is there") {
  auto index = ParseManifest(Index("arm"), "", "index");
  REQUIRE(index.ok());
  REQUIRE(index->is_index);
  auto amd = SelectPlatform(*index, {"linux", "amd64", ""}, "index");
  REQUIRE(amd.ok());
  CHECK(amd->digest == D("amd"));
  CHECK(SelectPlatform(*index, {"linux", "arm64", ""}, "index")->digest == D("arm"));
  CHECK(SelectPlatform(*index, {"linux", "arm64", "v8"}, "index").ok());
  auto none = SelectPlatform(*index, {"linux", "s390x", ""}, "index of r");
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().code() == Code::kNotFound);
  CHECK_THAT(none.status().message(), Catch::Contains("linux/amd64, linux/arm64/v8"));
  CHECK_THAT(none.status().message(), !Catch::Contains("unknown"));
  CHECK(Platform::Parse("linux/arm/v7")->variant == "v7");
  CHECK_FALSE(Platform::Parse("linux").ok());
  CHECK_FALSE(Platform::Parse("linux//x").ok());
  CHECK(Platform::Host().ToString() == "linux/amd64");
}

TEST_CASE("resolver follows an index to the platform's manifest and verifies the config") {
  std::string manifest = ImageManifest();
  std::string index = Index(manifest);
  std::map<std::string, std::string> blobs = {{D(manifest), manifest}, {D(kConfig), kConfig}};
  auto fetch_manifest = [&](const Descriptor& d) -> Result<FetchedManifest> {
    auto it = blobs.find(d.digest);
    if (it == blobs.end()) return NotFound("no " + d.digest);
    return FetchedManifest{d.media_type, d.digest, it->second};
  };
  auto fetch_blob = [&](const Descriptor& d) -> Result<std::vector<uint8_t>> {
    auto it = blobs.find(d.digest);
    if (it == blobs.end()) return NotFound("no " + d.digest);
    std::vector<uint8_t> v(it->second.begin(), it->second.end());
    OCIFS_RETURN_IF_ERROR(VerifyDigest(v, d.digest, "config"));
    return v;
  };
  auto ref = *Reference::Parse("127.0.0.1:5000/disk:v1");
  auto r = ResolveImage(ref, {"", D(index), index}, {"linux", "arm64", ""}, fetch_manifest, fetch_blob);
  REQUIRE(r.ok());
  CHECK(r->index_digest == D(index));
  CHECK(r->manifest_digest == D(manifest));
  CHECK(r->reference.digest == D(index));
  CHECK(r->reference.tag == "v1");
  CHECK(r->platform.ToString() == "linux/arm64/v8");
  CHECK(r->config_json["os"] == "linux");
  CHECK(r->layers.size() == 2);

  // A config whose bytes do not match its digest is corrupt.
  blobs[D(kConfig)] = R"({"os":"evil"})";
  auto bad = ResolveImage(ref, {"", D(index), index}, {"linux", "arm64", ""}, fetch_manifest, fetch_blob);
  CHECK(bad.status().code() == Code::kCorrupt);
  CHECK_THAT(bad.status().message(), Catch::Contains("expected " + D(kConfig)));

  auto s390 = ResolveImage(ref, {"", D(index), index}, {"linux", "s390x", ""}, fetch_manifest, fetch_blob);
  CHECK(s390.status().code() == Code::kNotFound);
}

TEST_CASE("resolver runs the caller's work beside the config's fetch, once the image manifest is known") {
  std::string manifest = ImageManifest();
  std::string index = Index(manifest);
  std::map<std::string, std::string> blobs = {{D(manifest), manifest}, {D(kConfig), kConfig}};
  auto fetch_manifest = [&](const Descriptor& d) -> Result<FetchedManifest> {
    return FetchedManifest{d.media_type, d.digest, blobs.at(d.digest)};
  };
  // The config's fetch waits (up to 5 s) for the work beside it to start: they overlap.
  std::mutex mu;
  std::condition_variable cv;
  bool beside_started = false, overlapped = false;
  bool config_fails = false;
  auto fetch_blob = [&](const Descriptor& d) -> Result<std::vector<uint8_t>> {
    std::unique_lock lock(mu);
    overlapped = cv.wait_for(lock, std::chrono::seconds(5), [&] { return beside_started; });
    if (config_fails) return Unavailable("the registry went away");
    const std::string& b = blobs.at(d.digest);
    return std::vector<uint8_t>(b.begin(), b.end());
  };
  std::string seen_digest;
  size_t seen_layers = 0;
  bool seen_config = true;
  auto beside = [&](const ResolvedImage& without_config) {
    seen_digest = without_config.manifest_digest;
    seen_layers = without_config.layers.size();
    seen_config = !without_config.config_json.is_null();
    std::lock_guard lock(mu);
    beside_started = true;
    cv.notify_all();
  };
  auto ref = *Reference::Parse("127.0.0.1:5000/disk:v1");
  auto r = ResolveImage(ref, {"", D(index), index}, {"linux", "arm64", ""}, fetch_manifest, fetch_blob, beside);
  REQUIRE(r.ok());
  CHECK(overlapped);
  CHECK(seen_digest == D(manifest));
  CHECK(seen_layers == 2);
  CHECK_FALSE(seen_config);
  CHECK(r->config_json["os"] == "linux");

  // It runs, and is joined, when the config fails too.
  beside_started = false;
  seen_digest.clear();
  config_fails = true;
  auto failed = ResolveImage(ref, {"", D(index), index}, {"linux", "arm64", ""}, fetch_manifest, fetch_blob, beside);
  CHECK(failed.status().code() == Code::kUnavailable);
  CHECK(seen_digest == D(manifest));
}

TEST_CASE("digest helpers validate grammar and name both digests on mismatch") {
  CHECK(ValidateDigest("sha256:" + std::string(64, '0')).ok());
  CHECK(ValidateDigest("sha256:" + std::string(63, '0')).code() == Code::kInvalidArgument);
  CHECK(ValidateDigest("md5:00").code() == Code::kUnsupported);
  CHECK(D("") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto st = VerifyDigest(Bytes("abc"), D("abd"), "blob y");
  CHECK(st.code() == Code::kCorrupt);
  CHECK_THAT(st.message(), Catch::Contains(D("abd")) && Catch::Contains(D("abc")));
}
