// The pure parts of referrers.h: the fallback tag's name, parsing and
// filtering a referrers index, merging an artifact into one; and the
// descriptor fields they rely on (artifactType, annotations).
#include "registry/referrers.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "registry/descriptor.h"

using namespace ocifs;

namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
const std::string kC = "sha256:" + std::string(64, 'c');

Descriptor Artifact(const std::string& digest, const std::string& type, const std::string& note) {
  return Descriptor{.media_type = std::string(media_type::kOciManifest),
                    .digest = digest,
                    .size = 321,
                    .annotations = {{"org.ocifs.test.note", note}},
                    .artifact_type = type};
}

std::string ReferrersIndex(const std::string& manifests) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":)" + manifests +
         "}";
}

}  // namespace

TEST_CASE("the referrers fallback tag is the digest's algorithm, a dash and its hex") {
  CHECK(*ReferrersTag(kA) == "sha256-" + std::string(64, 'a'));
  auto bad = ReferrersTag("sha256:abc");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("sha256:abc"));
  CHECK(ReferrersTag("sha512:" + std::string(128, 'a')).status().code() == Code::kInvalidArgument);
}

TEST_CASE("descriptors keep artifactType and annotations through JSON") {
  Descriptor d = Artifact(kA, "application/vnd.example+type", "x");
  d.platform = Platform{"linux", "arm64", "v8"};
  auto back = DescriptorFromJson(DescriptorToJson(d), "test");
  REQUIRE(back.ok());
  CHECK(back->media_type == d.media_type);
  CHECK(back->digest == d.digest);
  CHECK(back->size == d.size);
  CHECK(back->artifact_type == d.artifact_type);
  CHECK(back->annotations == d.annotations);
  REQUIRE(back->platform.has_value());
  CHECK(*back->platform == *d.platform);
  nlohmann::json plain = DescriptorToJson(Descriptor{.media_type = "m", .digest = kB, .size = 1});
  CHECK(plain.dump() == R"({"digest":")" + kB + R"(","mediaType":"m","size":1})");
  auto wrong = DescriptorFromJson(nlohmann::json::parse(R"({"digest":")" + kB + R"(","size":1,"artifactType":[]})"),
                                  "entry 3");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.status().message() == "entry 3: artifactType is not a string");
}

TEST_CASE("a referrers index parses to its descriptors, or names what is wrong") {
  // Built by append: GCC 12's -Wrestrict misfires on "literal" + std::string&& at -O3.
  std::string list = "[";
  list += DescriptorToJson(Artifact(kA, "t1", "a")).dump();
  list += ",";
  list += DescriptorToJson(Artifact(kB, "t2", "b")).dump();
  list += "]";
  std::string good = ReferrersIndex(list);
  auto parsed = ParseReferrersIndex(good, "idx");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->size() == 2);
  CHECK((*parsed)[0].artifact_type == "t1");
  CHECK((*parsed)[1].annotations.at("org.ocifs.test.note") == "b");
  CHECK(ParseReferrersIndex(R"({"schemaVersion":2,"manifests":[]})", "idx").ok());  // mediaType is optional

  auto error = [](const std::string& bytes) { return ParseReferrersIndex(bytes, "idx").status().message(); };
  CHECK(error("{not json") == "idx is not valid JSON");
  CHECK(error("[]") == "idx is not a JSON object");
  CHECK(error(R"({"manifests":[]})") == "idx: schemaVersion is not 2");
  CHECK(error(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]})") ==
        "idx: mediaType is \"application/vnd.oci.image.manifest.v1+json\", not "
        "application/vnd.oci.image.index.v1+json");
  CHECK(error(R"({"schemaVersion":2,"manifests":{}})") == "idx: no \"manifests\" array");
  CHECK(error(ReferrersIndex(R"([{"digest":")" + kA + R"(","size":1},{"size":2}])")) == "idx: manifests[1]: missing digest");
  CHECK(ParseReferrersIndex(std::string(kMaxReferrersIndexBytes + 1, ' '), "idx").status().code() == Code::kCorrupt);
  // An entry of another digest algorithm is skipped, not an error.
  auto other = ParseReferrersIndex(ReferrersIndex(R"([{"digest":"sha512:)" + std::string(128, 'a') + R"(","size":1}])"), "idx");
  REQUIRE(other.ok());
  CHECK(other->empty());
}

TEST_CASE("referrers are filtered by artifactType; an empty type keeps all") {
  std::vector<Descriptor> all = {Artifact(kA, "t1", "a"), Artifact(kB, "t2", "b"), Artifact(kC, "t1", "c")};
  auto t1 = FilterByArtifactType(all, "t1");
  REQUIRE(t1.size() == 2);
  CHECK(t1[0].digest == kA);
  CHECK(t1[1].digest == kC);
  CHECK(FilterByArtifactType(all, "").size() == 3);
  CHECK(FilterByArtifactType(all, "t3").empty());
}

TEST_CASE("merging into a fallback index replaces the same digest and keeps everything else") {
  auto fresh = MergeIntoReferrersIndex("", Artifact(kA, "t1", "a"), "tag");
  REQUIRE(fresh.ok());
  auto j = nlohmann::json::parse(*fresh);
  CHECK(j["schemaVersion"] == 2);
  CHECK(j["mediaType"] == media_type::kOciIndex);
  REQUIRE(j["manifests"].size() == 1);
  CHECK(j["manifests"][0]["artifactType"] == "t1");

  // Another client's entry, with a field we do not know, and an index annotation.
  nlohmann::json theirs = DescriptorToJson(Artifact(kB, "t2", "b"));
  theirs["data"] = "e30=";
  nlohmann::json existing = nlohmann::json::parse(*fresh);
  existing["manifests"].push_back(theirs);
  existing["annotations"] = {{"who", "someone"}};
  auto merged = MergeIntoReferrersIndex(existing.dump(), Artifact(kA, "t1", "a2"), "tag");
  REQUIRE(merged.ok());
  auto m = nlohmann::json::parse(*merged);
  REQUIRE(m["manifests"].size() == 2);
  CHECK(m["manifests"][0] == theirs);
  CHECK(m["manifests"][1]["digest"] == kA);
  CHECK(m["manifests"][1]["annotations"]["org.ocifs.test.note"] == "a2");
  CHECK(m["annotations"]["who"] == "someone");
  auto listed = ParseReferrersIndex(*merged, "tag");
  REQUIRE(listed.ok());
  CHECK(listed->size() == 2);

  auto broken = MergeIntoReferrersIndex(R"({"schemaVersion":2})", Artifact(kC, "t1", "c"), "tag sha256-c");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.status().code() == Code::kCorrupt);
  CHECK(broken.status().message() == "tag sha256-c: no \"manifests\" array");
}

TEST_CASE("referrer sources have names for messages") {
  CHECK(ReferrerSourceName(ReferrerList::Source::kReferrersApi) == "referrers API");
  CHECK(ReferrerSourceName(ReferrerList::Source::kFallbackTag) == "fallback tag");
  CHECK(ReferrerSourceName(ReferrerList::Source::kNoFallbackTag) == "no fallback tag");
}
