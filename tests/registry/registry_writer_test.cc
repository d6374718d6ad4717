// RegistryWriter and ListReferrers against a real /usr/bin/docker-registry
// 2.8 (no referrers API: the fallback tag), and behind
// tests/support/referrers_proxy.py, a stand-in that adds the OCI 1.1
// referrers API (and, when asked, Bearer token auth) in front of it.
#include "registry/registry_writer.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "registry/digest.h"
#include "registry/http_client.h"
#include "registry/image_source.h"
#include "registry/manifest.h"
#include "registry/referrers.h"
#include "testing/registry_clients.h"
#include "testing/registry_process.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using namespace ocifs::testing;
namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexType = "application/vnd.ocifs.test.index.v1";
constexpr const char* kOtherType = "application/vnd.example.sbom.v1";
constexpr const char* kLayerType = "application/vnd.oci.image.layer.v1.tar";

std::span<const uint8_t> WriterBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

RegistryOptions PlainHttp() {
  RegistryOptions o;
  o.tls_verify = false;
  o.max_retries = 0;
  o.platform = "linux/amd64";
  return o;
}

std::unique_ptr<RegistryWriter> OpenWriter(const std::string& ref_text, const RegistryOptions& o) {
  auto ref = Reference::Parse(ref_text);
  REQUIRE(ref.ok());
  auto w = RegistryWriter::Open(*ref, o);
  INFO(w.status().ToString());
  REQUIRE(w.ok());
  return std::move(w).value();
}

// An image (config + one layer) pushed with the writer and tagged `tag`.
Descriptor WriterPushImage(RegistryWriter& w, const std::string& tag) {
  std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"tag":")" +
                       tag + "\"}";
  auto c = w.PushBlob(std::string(media_type::kOciConfig), WriterBytes(config));
  auto l = w.PushBlob(kLayerType, WriterBytes("layer of " + tag));
  REQUIRE(c.ok());
  REQUIRE(l.ok());
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", media_type::kOciManifest},
                      {"config", DescriptorToJson(*c)},
                      {"layers", {DescriptorToJson(*l)}}};
  std::string body = m.dump();
  auto put = w.PutManifest(tag, std::string(media_type::kOciManifest), body);
  INFO(put.status().ToString());
  REQUIRE(put.ok());
  return Descriptor{.media_type = std::string(media_type::kOciManifest), .digest = put->digest, .size = body.size()};
}

struct PushedArtifact {
  Descriptor desc;  // with artifact_type and annotations, as a referrers list names it
  PutManifestResult put;
};

// An artifact manifest (empty config, one blob) of `artifact_type`; its
// `subject` is `subject` unless that is null.
PushedArtifact PushArtifact(RegistryWriter& w, const Descriptor* subject, const std::string& artifact_type,
                      const std::string& note) {
  auto empty = w.PushBlob("application/vnd.oci.empty.v1+json", WriterBytes("{}"));
  auto blob = w.PushBlob("application/octet-stream", WriterBytes("index bytes: " + note));
  REQUIRE(empty.ok());
  REQUIRE(blob.ok());
  std::map<std::string, std::string> annotations = {{"org.ocifs.test.note", note}};
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", media_type::kOciManifest},
                      {"artifactType", artifact_type},
                      {"config", DescriptorToJson(*empty)},
                      {"layers", {DescriptorToJson(*blob)}},
                      {"annotations", annotations}};
  if (subject) m["subject"] = DescriptorToJson(*subject);
  std::string body = m.dump();
  std::string digest = Sha256Digest(WriterBytes(body));
  auto put = w.PutManifest(digest, std::string(media_type::kOciManifest), body);
  INFO(put.status().ToString());
  REQUIRE(put.ok());
  CHECK(put->digest == digest);
  PushedArtifact a;
  a.desc = Descriptor{.media_type = std::string(media_type::kOciManifest),
                      .digest = digest,
                      .size = body.size(),
                      .annotations = annotations,
                      .artifact_type = artifact_type};
  a.put = *put;
  return a;
}

std::vector<std::string> Digests(const std::vector<Descriptor>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.digest);
  return out;
}

// tests/support/referrers_proxy.py in front of a docker-registry.
class ReferrersStub {
 public:
  ReferrersStub(const TempDir& dir, const std::string& upstream_host, std::vector<std::string> extra = {})
      : port_(FreePort()), child_(Args(upstream_host, port_, std::move(extra)), dir / "stub.log", port_) {}
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  nlohmann::json Log() const { return nlohmann::json::parse(Get("/_stub/log")); }
  void Set(const std::string& query) const { Get("/_stub/set?" + query); }

 private:
  static std::vector<std::string> Args(const std::string& upstream, int port, std::vector<std::string> extra) {
    std::vector<std::string> args = {"/usr/bin/python3", SourcePath("tests/support/referrers_proxy.py"),
                                     std::to_string(port), "http://" + upstream};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::string Get(const std::string& path) const { return GetOk("http://" + host() + path); }
  int port_;
  ChildProcess child_;
};

}  // namespace

TEST_CASE("registry writer pushes blobs and manifests, and keeps the referrers fallback tag of docker-registry") {
  TempDir dir;
  RegistryProcess registry(dir.path());
  RegistryOptions o = PlainHttp();
  auto writer = OpenWriter(registry.host() + "/t/disk", o);
  auto reader = OpenImage(registry.host() + "/t/disk:v1", o);

  std::string layer(200000, '\0');
  for (size_t i = 0; i < layer.size(); ++i) layer[i] = static_cast<char>((i * 131 + i / 977) & 0xff);
  auto first = writer->PushBlob(kLayerType, WriterBytes(layer));
  INFO(first.status().ToString());
  REQUIRE(first.ok());
  CHECK(first->digest == Sha256Digest(WriterBytes(layer)));
  CHECK(first->size == layer.size());
  CHECK(first->media_type == kLayerType);
  CHECK(writer->counts().blobs_uploaded == 1);
  auto again = writer->PushBlob(kLayerType, WriterBytes(layer));
  REQUIRE(again.ok());
  CHECK(again->digest == first->digest);
  CHECK(writer->counts().blobs_uploaded == 1);  // the HEAD found it
  CHECK(writer->counts().blobs_present == 1);
  auto fetched = reader->FetchBlob(*first);
  REQUIRE(fetched.ok());
  CHECK(std::string(fetched->begin(), fetched->end()) == layer);

  Descriptor image = WriterPushImage(*writer, "v1");
  auto resolved = reader->Resolve();
  REQUIRE(resolved.ok());
  CHECK(resolved->manifest_digest == image.digest);

  // Three artifacts, two of them of our type; docker-registry has no referrers API.
  PushedArtifact a = PushArtifact(*writer, &image, kIndexType, "first");
  CHECK_FALSE(a.put.subject_processed());
  REQUIRE(writer->AddToFallbackTag(image.digest, a.desc).ok());
  PushedArtifact sbom = PushArtifact(*writer, &image, kOtherType, "sbom");
  REQUIRE(writer->AddToFallbackTag(image.digest, sbom.desc).ok());
  PushedArtifact c = PushArtifact(*writer, &image, kIndexType, "second");
  REQUIRE(writer->AddToFallbackTag(image.digest, c.desc).ok());

  auto listed = reader->ListReferrers(image.digest, kIndexType);
  INFO(listed.status().ToString());
  REQUIRE(listed.ok());
  CHECK(listed->source == ReferrerList::Source::kFallbackTag);
  CHECK_FALSE(listed->registry_filtered);
  CHECK(Digests(listed->manifests) == std::vector<std::string>{a.desc.digest, c.desc.digest});
  CHECK(listed->manifests[0].artifact_type == kIndexType);
  CHECK(listed->manifests[0].annotations == a.desc.annotations);
  CHECK(listed->manifests[0].size == a.desc.size);
  CHECK(listed->manifests[0].media_type == media_type::kOciManifest);
  auto all = writer->ListReferrers(image.digest, "");
  REQUIRE(all.ok());
  CHECK(Digests(all->manifests) == std::vector<std::string>{a.desc.digest, sbom.desc.digest, c.desc.digest});

  // Adding an artifact again replaces its entry.
  REQUIRE(writer->AddToFallbackTag(image.digest, a.desc).ok());
  all = writer->ListReferrers(image.digest, "");
  REQUIRE(all.ok());
  CHECK(Digests(all->manifests) == std::vector<std::string>{sbom.desc.digest, c.desc.digest, a.desc.digest});
  auto tag = writer->GetManifest(*ReferrersTag(image.digest));
  REQUIRE(tag.ok());
  CHECK(tag->media_type == media_type::kOciIndex);
  CHECK(writer->counts().manifests_put == 8);  // image, 3 artifacts, 4 fallback indexes

  SECTION("an image without referrers has none, and no fallback tag") {
    Descriptor lone = WriterPushImage(*writer, "lone");
    auto none = reader->ListReferrers(lone.digest, kIndexType);
    REQUIRE(none.ok());
    CHECK(none->source == ReferrerList::Source::kNoFallbackTag);
    CHECK(none->manifests.empty());
  }

  SECTION("a malformed fallback index is an error naming the field, and AddToFallbackTag leaves it alone") {
    Descriptor other = WriterPushImage(*writer, "other");
    std::string fallback = *ReferrersTag(other.digest);
    // docker-registry 2.8 keeps fields it does not know, whatever their type.
    nlohmann::json bad = {{"schemaVersion", 2},
                          {"mediaType", media_type::kOciIndex},
                          {"manifests", {DescriptorToJson(image)}}};
    bad["manifests"][0]["artifactType"] = 5;
    REQUIRE(writer->PutManifest(fallback, std::string(media_type::kOciIndex), bad.dump()).ok());
    auto got = reader->ListReferrers(other.digest, kIndexType);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == Code::kCorrupt);
    CHECK(got.status().message() == "referrers fallback tag " + fallback + " of " + registry.host() +
                                        "/t/disk: manifests[0]: artifactType is not a string");
    Status add = writer->AddToFallbackTag(other.digest, a.desc);
    CHECK(add.code() == Code::kCorrupt);
    CHECK(writer->GetManifest(fallback)->bytes == bad.dump());
  }

  SECTION("an image manifest at the fallback tag is not a referrers index") {
    Descriptor other = WriterPushImage(*writer, "other");
    auto manifest = writer->GetManifest("other");
    REQUIRE(manifest.ok());
    REQUIRE(writer->PutManifest(*ReferrersTag(other.digest), std::string(media_type::kOciManifest), manifest->bytes)
                .ok());
    auto got = reader->ListReferrers(other.digest, "");
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == Code::kCorrupt);
    CHECK_THAT(got.status().message(),
               Catch::Contains("is a application/vnd.oci.image.manifest.v1+json, not an OCI image index"));
  }

  SECTION("bad arguments are kInvalidArgument; a rejected manifest names the registry's reason") {
    CHECK(writer->PutManifest("sha256:" + std::string(64, 'a'), std::string(media_type::kOciManifest), "{}")
              .status()
              .code() == Code::kInvalidArgument);
    CHECK(writer->PutManifest("no tag!", std::string(media_type::kOciManifest), "{}").status().code() ==
          Code::kInvalidArgument);
    Descriptor untyped = a.desc;
    untyped.artifact_type.clear();
    CHECK(writer->AddToFallbackTag(image.digest, untyped).code() == Code::kInvalidArgument);
    CHECK(reader->ListReferrers("sha256:short", "").status().code() == Code::kInvalidArgument);
    nlohmann::json dangling = {
        {"schemaVersion", 2},
        {"mediaType", media_type::kOciManifest},
        {"config", DescriptorToJson(Descriptor{.media_type = std::string(media_type::kOciConfig),
                                               .digest = "sha256:" + std::string(64, 'c'),
                                               .size = 2})},
        {"layers", nlohmann::json::array()}};
    auto rejected = writer->PutManifest("dangling", std::string(media_type::kOciManifest), dangling.dump());
    REQUIRE_FALSE(rejected.ok());
    CHECK(rejected.status().code() == Code::kInvalidArgument);
    CHECK_THAT(rejected.status().message(),
               Catch::Contains("registry " + registry.host() + " rejected the manifest dangling for t/disk"));
    CHECK_THAT(rejected.status().message(), Catch::Contains("MANIFEST_BLOB_UNKNOWN"));
  }
}

TEST_CASE("registry writer and client use the referrers API of a registry that has one") {
  TempDir dir;
  RegistryProcess registry(fs::path(dir.path()) / "registry");
  ReferrersStub stub(dir, registry.host());
  RegistryOptions o = PlainHttp();
  auto writer = OpenWriter(stub.host() + "/t/disk", o);
  auto reader = OpenImage(stub.host() + "/t/disk:v1", o);
  Descriptor image = WriterPushImage(*writer, "v1");

  PushedArtifact a = PushArtifact(*writer, &image, kIndexType, "api");
  CHECK(a.put.subject_processed());
  CHECK(a.put.oci_subject == image.digest);
  PushedArtifact sbom = PushArtifact(*writer, &image, kOtherType, "sbom");
  // An entry only the fallback tag lists: the API's answer must win.
  PushedArtifact stale = PushArtifact(*writer, nullptr, kIndexType, "stale");
  CHECK_FALSE(stale.put.subject_processed());
  REQUIRE(writer->AddToFallbackTag(image.digest, stale.desc).ok());

  // The stub holds a referrers answer until the fallback tag was asked for.
  stub.Set("wait_for_tag=1");
  auto listed = reader->ListReferrers(image.digest, kIndexType);
  INFO(listed.status().ToString());
  REQUIRE(listed.ok());
  CHECK(listed->source == ReferrerList::Source::kReferrersApi);
  CHECK(listed->registry_filtered);
  CHECK(Digests(listed->manifests) == std::vector<std::string>{a.desc.digest});
  CHECK(listed->manifests[0].annotations == a.desc.annotations);
  auto asked = stub.Log()["referrers_asked"];
  REQUIRE(asked.size() == 1);
  CHECK(asked[0]["tag_asked_before"] == true);  // both requests were out at once

  SECTION("a registry that ignores the filter: the list is filtered here") {
    stub.Set("ignore_filter=1");
    auto got = reader->ListReferrers(image.digest, kIndexType);
    REQUIRE(got.ok());
    CHECK_FALSE(got->registry_filtered);
    CHECK(Digests(got->manifests) == std::vector<std::string>{a.desc.digest});
  }

  SECTION("pages linked by the Link header are all read") {
    stub.Set("page_size=1");
    auto got = reader->ListReferrers(image.digest, "");
    INFO(got.status().ToString());
    REQUIRE(got.ok());
    CHECK(Digests(got->manifests) == std::vector<std::string>{a.desc.digest, sbom.desc.digest});
    CHECK(stub.Log()["referrers_asked"].size() == 3);
  }

  SECTION("without the API (404), the fallback tag is used") {
    stub.Set("no_api=1");
    auto got = reader->ListReferrers(image.digest, kIndexType);
    REQUIRE(got.ok());
    CHECK(got->source == ReferrerList::Source::kFallbackTag);
    CHECK(Digests(got->manifests) == std::vector<std::string>{stale.desc.digest});
  }
}

TEST_CASE("pushing with a pull-only token is refused naming the registry, repository and scope") {
  TempDir dir;
  RegistryProcess registry(fs::path(dir.path()) / "registry");
  ReferrersStub stub(dir, registry.host(), {"--token", "puller:pull-Secret1:pull", "--token", "pusher:push-Secret2:pull,push"});
  RegistryOptions o = PlainHttp();
  o.creds = "pusher:push-Secret2";
  auto writer = OpenWriter(stub.host() + "/t/disk", o);
  Descriptor image = WriterPushImage(*writer, "v1");
  CHECK(stub.Log()["scopes"][0] == "repository:t/disk:pull,push");

  RegistryOptions pull_only = o;
  pull_only.creds = "puller:pull-Secret1";
  auto refused = OpenWriter(stub.host() + "/t/disk", pull_only);
  auto blob = refused->PushBlob(kLayerType, WriterBytes("not allowed"));
  REQUIRE_FALSE(blob.ok());
  CHECK(blob.status().code() == Code::kUnauthenticated);
  const std::string prefix = "registry " + stub.host() +
                             " refused to let these credentials push to t/disk (scope repository:t/disk:pull,push): ";
  CHECK_THAT(blob.status().message(), Catch::StartsWith(prefix));
  CHECK_THAT(blob.status().message(), Catch::Contains("HTTP 401: UNAUTHORIZED"));
  CHECK_THAT(blob.status().message(), !Catch::Contains("Secret1"));
  auto manifest = refused->PutManifest("v2", std::string(media_type::kOciManifest), "{}");
  REQUIRE_FALSE(manifest.ok());
  CHECK_THAT(manifest.status().message(), Catch::StartsWith(prefix));
  // The same credential reads, asking only for pull.
  auto reader = OpenImage(stub.host() + "/t/disk:v1", pull_only);
  REQUIRE(reader->Resolve().ok());
  CHECK(stub.Log()["scopes"].back() == "repository:t/disk:pull");
  REQUIRE(reader->ListReferrers(image.digest, kIndexType).ok());

  RegistryOptions anonymous = o;
  anonymous.creds.reset();
  auto anon = OpenWriter(stub.host() + "/t/disk", anonymous)->PushBlob(kLayerType, WriterBytes("anon"));
  REQUIRE_FALSE(anon.ok());
  CHECK(anon.status().code() == Code::kUnauthenticated);
  CHECK_THAT(anon.status().message(),
             Catch::StartsWith("registry " + stub.host() +
                               " refused to let anonymous access push to t/disk (scope repository:t/disk:pull,push): "));
  CHECK_THAT(anon.status().message(), Catch::EndsWith("give --creds or --authfile"));
}

TEST_CASE("pushing to a Basic-auth registry: its user pushes, other credentials are refused naming the scope") {
  TempDir dir;
  fs::path p = dir.path();
  auto secure = MakeTlsHtpasswd(p, "alice", "s3cret:pw");
  RegistryProcess registry(p / "reg", secure.http_extra, secure.extra);
  RegistryOptions o;
  o.cert_dir = secure.cert_dir;
  o.creds = "alice:s3cret:pw";
  o.max_retries = 0;
  auto pushed = OpenWriter(registry.host() + "/secure/disk", o)->PushBlob(kLayerType, WriterBytes("alice's"));
  INFO(pushed.status().ToString());
  REQUIRE(pushed.ok());

  RegistryOptions wrong = o;
  wrong.creds = "alice:wrong-Secret3";
  auto bad = OpenWriter(registry.host() + "/secure/disk", wrong)->PushBlob(kLayerType, WriterBytes("mallory's"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kUnauthenticated);
  CHECK_THAT(bad.status().message(),
             Catch::StartsWith("registry " + registry.host() + " refused to let these credentials push to secure/disk "
                               "(scope repository:secure/disk:pull,push): "));
  CHECK_THAT(bad.status().message(), !Catch::Contains("Secret3"));

  RegistryOptions none = o;
  none.creds.reset();
  auto anon = OpenWriter(registry.host() + "/secure/disk", none)->PushBlob(kLayerType, WriterBytes("anon"));
  REQUIRE_FALSE(anon.ok());
  CHECK_THAT(anon.status().message(), Catch::Contains("anonymous access push to secure/disk"));
}
