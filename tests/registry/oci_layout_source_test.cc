#include "registry/oci_layout_source.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "registry/digest.h"

using namespace ocifs;
namespace fs = std::filesystem;

namespace {

std::string LayoutDigest(const std::string& s) {
  return Sha256Digest({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

struct Layout {
  fs::path dir;
  std::string config = R"({"os":"linux","architecture":"amd64"})";
  std::string layer = "0123456789abcdef";
  std::string manifest;
  Layout() {
    char tmpl[] = "/tmp/ocifs-layout-XXXXXX";
    dir = mkdtemp(tmpl);
    fs::create_directories(dir / "blobs/sha256");
    manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + LayoutDigest(config) + R"(","size":)" +
               std::to_string(config.size()) + R"(},
      "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + LayoutDigest(layer) + R"(","size":16}]})";
    for (const auto& b : {config, layer, manifest}) Blob(b);
    std::ofstream(dir / "oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
    Index({"v1"});
  }
  ~Layout() { fs::remove_all(dir); }
  void Blob(const std::string& b) { std::ofstream(dir / "blobs/sha256" / LayoutDigest(b).substr(7)) << b; }
  void Index(const std::vector<std::string>& tags) {
    std::string entries;
    for (const auto& t : tags) {
      if (!entries.empty()) entries += ",";
      entries += R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + LayoutDigest(manifest) +
                 R"(","size":)" + std::to_string(manifest.size()) +
                 R"(,"annotations":{"org.opencontainers.image.ref.name":")" + t + R"("}})";
    }
    std::ofstream(dir / "index.json") << R"({"schemaVersion":2,"manifests":[)" + entries + "]}";
  }
  std::unique_ptr<ImageSource> Open(const std::string& suffix) {
    auto ref = Reference::Parse("oci:" + dir.string() + suffix);
    REQUIRE(ref.ok());
    auto src = OpenImageSource(*ref, {});
    REQUIRE(src.ok());
    return std::move(src).value();
  }
};

}  // namespace

TEST_CASE("oci layout source resolves a tag and reads blobs from files") {
  Layout l;
  auto src = l.Open(":v1");
  auto r = src->Resolve();
  REQUIRE(r.ok());
  CHECK(r->manifest_digest == LayoutDigest(l.manifest));
  CHECK(r->index_digest.empty());
  CHECK(r->platform.ToString() == "linux/amd64");
  REQUIRE(r->layers.size() == 1);
  auto blob = src->OpenBlob(r->layers[0]);
  REQUIRE(blob.ok());
  CHECK((*blob)->size() == 16);
  std::vector<uint8_t> buf(4);
  REQUIRE((*blob)->ReadAt(10, buf).ok());
  CHECK(std::string(buf.begin(), buf.end()) == "abcd");
  auto config = src->FetchBlob(r->config);
  REQUIRE(config.ok());
  CHECK(config->size() == l.config.size());
}

TEST_CASE("oci layout source takes the only image when no tag is given, else lists the tags") {
  Layout l;
  CHECK(l.Open("")->Resolve().ok());
  l.Index({"a", "b"});
  auto r = l.Open("")->Resolve();
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK_THAT(r.status().message(), Catch::Contains("a, b"));
  CHECK(l.Open(":b")->Resolve().ok());
  CHECK(l.Open(":zzz")->Resolve().status().code() == Code::kNotFound);
}

TEST_CASE("oci layout source catches blobs whose size or digest is wrong") {
  Layout l;
  auto src = l.Open(":v1");
  auto r = src->Resolve();
  REQUIRE(r.ok());
  Descriptor wrong_size = r->layers[0];
  wrong_size.size = 17;
  CHECK(src->OpenBlob(wrong_size).status().code() == Code::kCorrupt);
  std::ofstream(l.dir / "blobs/sha256" / LayoutDigest(l.config).substr(7)) << R"({"os":"linux","architecture":"arm64"})";
  auto bad = src->Resolve();
  CHECK(bad.status().code() == Code::kCorrupt);
  auto missing = Reference::Parse("oci:/nonexistent/ocifs");
  CHECK(OpenImageSource(*missing, {}).status().code() == Code::kNotFound);
}
