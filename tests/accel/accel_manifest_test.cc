#include "accel/accel_manifest.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>

using namespace ocifs;

namespace {

std::string ManifestDigest(char c) { return "sha256:" + std::string(64, c); }

AccelManifest Sample() {
  AccelManifest m;
  m.subject = {std::string(media_type::kOciManifest), ManifestDigest('a'), 1234, {}, {}, {}};
  m.layer_indexes.push_back({LayerIndexKind::kGzipIndex, {"", ManifestDigest('b'), 81234, {}, {}, {}}, ManifestDigest('c'), 376012345});
  m.layer_indexes.push_back({LayerIndexKind::kZstdFrames, {"", ManifestDigest('d'), 99, {}, {}, {}}, ManifestDigest('e'), 1000});
  m.profiles.push_back({"", ManifestDigest('f'), 9876, {}, {}, {}});
  m.created = "2026-12-05T10:00:00Z";
  return m;
}

}  // namespace

TEST_CASE("an artifact manifest round-trips, in the OCI artifact form") {
  const std::string json = SerializeAccelManifest(Sample());
  auto j = nlohmann::json::parse(json);
  CHECK(j["artifactType"] == accel::kArtifactType);
  CHECK(j["mediaType"] == media_type::kOciManifest);
  CHECK(j["config"]["digest"] == accel::kEmptyDigest);
  CHECK(j["subject"]["digest"] == ManifestDigest('a'));
  CHECK(j["layers"].size() == 3);
  CHECK(j["layers"][0]["mediaType"] == accel::kGzipIndexMediaType);
  CHECK(j["layers"][1]["mediaType"] == accel::kZstdFramesMediaType);
  CHECK(j["layers"][0]["annotations"][std::string(accel::kLayerSizeAnnotation)] == "376012345");
  CHECK(j["annotations"][std::string(accel::kVersionAnnotation)] == "1");

  auto back = ParseAccelManifest(json, "artifact");
  REQUIRE(back.ok());
  CHECK(back->subject.digest == ManifestDigest('a'));
  CHECK(back->subject.size == 1234);
  REQUIRE(back->layer_indexes.size() == 2);
  CHECK(back->layer_indexes[0].layer_digest == ManifestDigest('c'));
  CHECK(back->layer_indexes[0].layer_size == 376012345);
  CHECK(back->layer_indexes[0].blob.digest == ManifestDigest('b'));
  CHECK(back->layer_indexes[0].kind == LayerIndexKind::kGzipIndex);
  CHECK(back->layer_indexes[1].layer_size == 1000);
  CHECK(back->layer_indexes[1].kind == LayerIndexKind::kZstdFrames);
  REQUIRE(back->profiles.size() == 1);
  CHECK(back->profiles[0].digest == ManifestDigest('f'));
  CHECK(back->created == "2026-12-05T10:00:00Z");
}

TEST_CASE("pieces of unknown media types are skipped, so a later version's artifact still reads") {
  auto j = nlohmann::json::parse(SerializeAccelManifest(Sample()));
  j["layers"].push_back({{"mediaType", "application/vnd.oci-fs.zstd-checkpoints.v9"}, {"digest", ManifestDigest('9')},
                         {"size", 5}});
  auto m = ParseAccelManifest(j.dump(), "artifact");
  REQUIRE(m.ok());
  CHECK(m->layer_indexes.size() == 2);
  CHECK(m->profiles.size() == 1);
}

TEST_CASE("a malformed artifact manifest is refused, naming what is wrong") {
  const nlohmann::json good = nlohmann::json::parse(SerializeAccelManifest(Sample()));
  struct Case {
    std::function<void(nlohmann::json&)> spoil;
    Code code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {[](nlohmann::json& j) { j["artifactType"] = "application/vnd.example.sbom"; }, Code::kUnsupported,
       "artifactType application/vnd.example.sbom"},
      {[](nlohmann::json& j) { j.erase("artifactType"); }, Code::kUnsupported, "has no artifactType"},
      {[](nlohmann::json& j) { j.erase("subject"); }, Code::kCorrupt, "has no subject"},
      {[](nlohmann::json& j) { j["subject"]["digest"] = "sha256:xyz"; }, Code::kCorrupt, "subject"},
      {[](nlohmann::json& j) { j["layers"] = 3; }, Code::kCorrupt, "layers is not an array"},
      {[](nlohmann::json& j) { j["layers"][0]["annotations"].erase(std::string(accel::kLayerDigestAnnotation)); },
       Code::kCorrupt, "piece 0: a gzip index without the annotations"},
      {[](nlohmann::json& j) { j["layers"][1]["annotations"][std::string(accel::kLayerSizeAnnotation)] = "12x"; },
       Code::kCorrupt, "piece 1: annotation org.oci-fs.layer.size is not a byte count"},
      {[](nlohmann::json& j) { j["layers"][1]["annotations"][std::string(accel::kLayerDigestAnnotation)] = ManifestDigest('c'); },
       Code::kCorrupt, "a second index for layer"},
      {[](nlohmann::json& j) { j["layers"][0]["size"] = (uint64_t{64} << 20) + 1; }, Code::kCorrupt,
       "more than 67108864"},
      {[](nlohmann::json& j) {
         for (int i = 0; i < 70; ++i) j["layers"].push_back(j["layers"][2]);
       },
       Code::kCorrupt, "more than 64"},
      {[](nlohmann::json& j) { j["mediaType"] = "application/vnd.oci.image.index.v1+json"; }, Code::kCorrupt,
       "mediaType is not"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = good;
    c.spoil(j);
    auto m = ParseAccelManifest(j.dump(), "artifact r/x@sha256:..");
    INFO(j.dump());
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == c.code);
    CHECK_THAT(m.status().message(), Catch::Contains(c.says));
    CHECK_THAT(m.status().message(), Catch::StartsWith("artifact r/x@sha256:.."));
  }
  CHECK(ParseAccelManifest("{not json", "a").status().code() == Code::kCorrupt);
  CHECK(ParseAccelManifest("[]", "a").status().code() == Code::kCorrupt);
}

TEST_CASE("random truncations and byte flips of an artifact manifest never crash") {
  const std::string json = SerializeAccelManifest(Sample());
  for (size_t n = 0; n < json.size(); ++n) {
    auto m = ParseAccelManifest(std::string_view(json).substr(0, n), "artifact");
    CHECK_FALSE(m.ok());
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string spoiled = json;
    for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips) {
      spoiled[rng() % spoiled.size()] ^= static_cast<char>(1u << (rng() % 8));
    }
    auto m = ParseAccelManifest(spoiled, "artifact");
    if (m.ok()) {  // a flip inside a string can leave it valid: then it says what the bytes say
      CHECK(m->layer_indexes.size() <= 2);
      CHECK(m->profiles.size() <= 1);
    } else {
      CHECK_FALSE(m.status().message().empty());
    }
  }
}

TEST_CASE("a tar index piece round-trips beside the layer's other index, one per layer") {
  AccelManifest m = Sample();
  m.tar_indexes.push_back({{"", ManifestDigest('7'), 4321, {}, {}, {}}, ManifestDigest('c'), 376012345});
  const std::string json = SerializeAccelManifest(m);
  auto j = nlohmann::json::parse(json);
  REQUIRE(j["layers"].size() == 4);
  CHECK(j["layers"][2]["mediaType"] == "application/vnd.oci-fs.tar-index.v2");
  CHECK(j["layers"][2]["annotations"][std::string(accel::kLayerDigestAnnotation)] == ManifestDigest('c'));
  auto back = ParseAccelManifest(json, "artifact");
  REQUIRE(back.ok());
  REQUIRE(back->tar_indexes.size() == 1);
  CHECK(back->tar_indexes[0].blob.digest == ManifestDigest('7'));
  CHECK(back->tar_indexes[0].layer_digest == ManifestDigest('c'));
  CHECK(back->tar_indexes[0].layer_size == 376012345);
  CHECK(back->layer_indexes.size() == 2);  // the gzip index of the same layer is no "second index"

  auto second = j;
  second["layers"].push_back(j["layers"][2]);
  auto refused = ParseAccelManifest(second.dump(), "artifact");
  CHECK(refused.status().code() == Code::kCorrupt);
  CHECK_THAT(refused.status().message(), Catch::Contains("piece 4: a second tar index for layer " + ManifestDigest('c')));
  auto bare = j;
  bare["layers"][2].erase("annotations");
  CHECK_THAT(ParseAccelManifest(bare.dump(), "artifact").status().message(),
             Catch::Contains("piece 2: a tar index without the annotations"));
}

TEST_CASE("a raw span table piece round-trips beside the layer's index and tar index, one per layer") {
  AccelManifest m = Sample();
  m.tar_indexes.push_back({{"", ManifestDigest('7'), 4321, {}, {}, {}}, ManifestDigest('c'), 376012345});
  m.raw_spans.push_back({{"", ManifestDigest('8'), 65000, {}, {}, {}}, ManifestDigest('c'), 376012345});
  const std::string json = SerializeAccelManifest(m);
  auto j = nlohmann::json::parse(json);
  REQUIRE(j["layers"].size() == 5);
  CHECK(j["layers"][3]["mediaType"] == "application/vnd.oci-fs.raw-spans.v1");
  auto back = ParseAccelManifest(json, "artifact");
  REQUIRE(back.ok());
  REQUIRE(back->raw_spans.size() == 1);
  CHECK(back->raw_spans[0].blob.digest == ManifestDigest('8'));
  CHECK(back->raw_spans[0].layer_digest == ManifestDigest('c'));
  CHECK(back->raw_spans[0].layer_size == 376012345);
  CHECK(back->tar_indexes.size() == 1);

  auto second = j;
  second["layers"].push_back(j["layers"][3]);
  CHECK_THAT(ParseAccelManifest(second.dump(), "artifact").status().message(),
             Catch::Contains("piece 5: a second raw span table for layer " + ManifestDigest('c')));
  auto bare = j;
  bare["layers"][3].erase("annotations");
  CHECK_THAT(ParseAccelManifest(bare.dump(), "artifact").status().message(),
             Catch::Contains("piece 3: a raw span table without the annotations"));
}
