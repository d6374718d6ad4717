// End-to-end: a real /usr/bin/docker-registry on a free 127.0.0.1 port, an
// image pushed through the registry HTTP API, then Resolve() and range reads.
#include "registry/registry_client.h"

#include <catch2/catch.hpp>
#include <map>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "registry/base64.h"
#include "registry/digest.h"
#include "registry/fetch_stats.h"
#include "registry/http_client.h"
#include "registry/image_source.h"
#include "testing/registry_clients.h"
#include "testing/registry_process.h"
#include "testing/temp_dir.h"
#include <nlohmann/json.hpp>

using namespace ocifs;
namespace fs = std::filesystem;
using ocifs::testing::ChildProcess;
using ocifs::testing::FreePort;
using ocifs::testing::RegistryProcess;
using ocifs::testing::TempDir;

namespace {

// Pushes through the registry HTTP API v2 with our own HttpClient.
class Pusher {
 public:
  Pusher(std::string base, std::shared_ptr<const TlsConfig> tls = nullptr, std::string authorization = "")
      : base_(std::move(base)), authorization_(std::move(authorization)), http_(Options(std::move(tls))) {}

  Descriptor Blob(const std::string& repo, const std::string& bytes, const std::string& media_type) {
    HttpRequest post;
    post.method = "POST";
    post.url = base_ + "/v2/" + repo + "/blobs/uploads/";
    Auth(post);
    auto started = http_.Perform(post);
    REQUIRE(started.ok());
    REQUIRE(started->status == 202);
    std::string location = started->headers.Get("location");
    if (location.starts_with("/")) location = base_ + location;
    std::string digest = Sha256Digest({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    HttpRequest put;
    put.method = "PUT";
    put.url = location + (location.find('?') == std::string::npos ? "?" : "&") + "digest=" + HttpClient::Escape(digest);
    put.body = bytes;
    put.headers = {"Content-Type: application/octet-stream"};
    Auth(put);
    auto done = http_.Perform(put);
    REQUIRE(done.ok());
    INFO(done->body);
    REQUIRE(done->status == 201);
    return Descriptor{.media_type = media_type, .digest = digest, .size = bytes.size()};
  }

  std::string Manifest(const std::string& repo, const std::string& ref, const std::string& media_type,
                       const std::string& bytes) {
    HttpRequest put;
    put.method = "PUT";
    put.url = base_ + "/v2/" + repo + "/manifests/" + ref;
    put.body = bytes;
    put.headers = {"Content-Type: " + media_type};
    Auth(put);
    auto done = http_.Perform(put);
    REQUIRE(done.ok());
    INFO(done->body);
    REQUIRE(done->status == 201);
    return Sha256Digest({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  }

 private:
  static HttpClientOptions Options(std::shared_ptr<const TlsConfig> tls) {
    HttpClientOptions o;
    o.tls = std::move(tls);
    return o;
  }
  void Auth(HttpRequest& r) const {
    if (!authorization_.empty()) r.headers.push_back("Authorization: " + authorization_);
  }
  std::string base_, authorization_;
  HttpClient http_;
};

std::string Json(const Descriptor& d, const std::string& extra = "") {
  return R"({"mediaType":")" + d.media_type + R"(","digest":")" + d.digest + R"(","size":)" + std::to_string(d.size) +
         extra + "}";
}

struct PushedImage {
  std::string layer_bytes;
  Descriptor layer;
  std::string manifest_digest;
};

PushedImage PushImage(Pusher& p, const std::string& repo, const std::string& tag, const std::string& arch) {
  PushedImage img;
  img.layer_bytes.resize(300000);
  for (size_t i = 0; i < img.layer_bytes.size(); ++i) {
    img.layer_bytes[i] = static_cast<char>((i * 7919 + i / 251 + arch.size()) & 0xff);
  }
  std::string config = R"({"architecture":")" + arch + R"(","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  Descriptor c = p.Blob(repo, config, "application/vnd.oci.image.config.v1+json");
  img.layer = p.Blob(repo, img.layer_bytes, "application/vnd.oci.image.layer.v1.tar");
  std::string manifest = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                         Json(c) + R"(,"layers":[)" + Json(img.layer) + "]}";
  img.manifest_digest = p.Manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", manifest);
  return img;
}

std::unique_ptr<ImageSource> Open(const std::string& ref_text, const RegistryOptions& o) {
  return ocifs::testing::OpenImage(ref_text, o);
}

}  // namespace

TEST_CASE("registry client resolves and range-reads an image from a real docker-registry") {
  TempDir dir;
  RegistryProcess registry(dir.path());
  Pusher pusher("http://" + registry.host());
  PushedImage img = PushImage(pusher, "disk", "v1", "amd64");

  RegistryOptions o;
  o.tls_verify = false;  // plain HTTP registry
  o.platform = "linux/amd64";
  auto src = Open(registry.host() + "/disk:v1", o);
  uint64_t manifests_before = GlobalFetchStats().manifest_requests.load();
  auto r = src->Resolve();
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(GlobalFetchStats().manifest_requests.load() > manifests_before);
  CHECK(r->manifest_digest == img.manifest_digest);
  CHECK(r->reference.digest == img.manifest_digest);
  CHECK(r->index_digest.empty());
  CHECK(r->manifest_media_type == "application/vnd.oci.image.manifest.v1+json");
  CHECK(r->platform.ToString() == "linux/amd64");
  REQUIRE(r->layers.size() == 1);
  CHECK(r->layers[0].digest == img.layer.digest);

  auto blob = src->OpenBlob(r->layers[0]);
  REQUIRE(blob.ok());
  CHECK((*blob)->size() == img.layer_bytes.size());
  uint64_t requests_before = GlobalFetchStats().blob_requests.load();
  uint64_t bytes_before = GlobalFetchStats().blob_bytes.load();
  std::vector<uint8_t> buf(1000);
  auto n = (*blob)->ReadAt(12345, buf);
  REQUIRE(n.ok());
  CHECK(*n == 1000);
  CHECK(std::string(buf.begin(), buf.end()) == img.layer_bytes.substr(12345, 1000));
  CHECK(GlobalFetchStats().blob_requests.load() == requests_before + 1);
  CHECK(GlobalFetchStats().blob_bytes.load() == bytes_before + 1000);
  // Reads clamp at the end of the blob.
  auto tail = (*blob)->ReadAt(img.layer_bytes.size() - 10, buf);
  REQUIRE(tail.ok());
  CHECK(*tail == 10);
  CHECK(*(*blob)->ReadAt(img.layer_bytes.size(), buf) == 0);

  SECTION("a stream hands a range in order with one request; its reader may stop it") {
    const uint64_t from = 1000, length = img.layer_bytes.size() - 1010;
    std::string got;
    uint64_t expect_at = 0;
    bool in_order = true;
    const uint64_t requests = GlobalFetchStats().blob_requests.load();
    Status st = (*blob)->ReadStream(from, length, [&](uint64_t at, std::span<const uint8_t> bytes) {
      in_order = in_order && at == expect_at;
      expect_at = at + bytes.size();
      got.append(bytes.begin(), bytes.end());
      return true;
    });
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(in_order);
    CHECK(got == img.layer_bytes.substr(from, length));
    CHECK(GlobalFetchStats().blob_requests.load() == requests + 1);
    int pieces = 0;
    Status stopped = (*blob)->ReadStream(0, img.layer_bytes.size(), [&](uint64_t, std::span<const uint8_t>) {
      return ++pieces < 2;
    });
    CHECK(stopped.code() == Code::kCancelled);
    CHECK(pieces == 2);
    auto past = (*blob)->ReadStream(10, img.layer_bytes.size(), [](uint64_t, std::span<const uint8_t>) { return true; });
    CHECK(past.code() == Code::kCorrupt);
  }

  SECTION("several ranges come in one multi-range request, in order within each") {
    const std::vector<ByteRange> ranges{{7, 100}, {5000, 1}, {20000, 3000}, {img.layer_bytes.size() - 9, 9}};
    std::map<uint64_t, uint8_t> got;
    bool inside = true;
    const uint64_t requests = GlobalFetchStats().blob_requests.load();
    Status st = (*blob)->ReadRanges(ranges, [&](uint64_t at, std::span<const uint8_t> bytes) {
      for (size_t i = 0; i < bytes.size(); ++i) {
        bool in = false;
        for (const ByteRange& r : ranges) in |= at + i >= r.offset && at + i < r.offset + r.length;
        inside = inside && in;
        got[at + i] = bytes[i];
      }
      return true;
    });
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(inside);
    CHECK(GlobalFetchStats().blob_requests.load() == requests + 1);
    size_t right = 0;
    for (const ByteRange& r : ranges) {
      for (uint64_t at = r.offset; at < r.offset + r.length; ++at) {
        right += got.count(at) && got[at] == static_cast<uint8_t>(img.layer_bytes[at]);
      }
    }
    CHECK(right == 3110);
    CHECK(got.size() == 3110);
  }

  SECTION("many threads read one blob at once") {
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        std::vector<uint8_t> b(4096);
        for (int i = 0; i < 10; ++i) {
          uint64_t off = static_cast<uint64_t>((t * 10 + i) * 3001);
          auto got = (*blob)->ReadAt(off, b);
          if (got.ok() && *got == b.size() && std::string(b.begin(), b.end()) == img.layer_bytes.substr(off, b.size())) {
            ++good;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(good == 80);
  }

  SECTION("a digest-pinned reference resolves to the same manifest") {
    auto pinned = Open(registry.host() + "/disk@" + img.manifest_digest, o)->Resolve();
    REQUIRE(pinned.ok());
    CHECK(pinned->manifest_digest == img.manifest_digest);
    CHECK(pinned->reference.tag.empty());
  }

  SECTION("an index selects the requested platform, or lists the platforms it has") {
    PushedImage arm = PushImage(pusher, "disk", "arm-only", "arm64");
    // Sizes must be right: fetch the manifests to learn them.
    auto size_of = [&](const std::string& digest) {
      HttpClient http({});
      HttpRequest get;
      get.url = "http://" + registry.host() + "/v2/disk/manifests/" + digest;
      get.headers = {"Accept: application/vnd.oci.image.manifest.v1+json"};
      auto resp = http.Perform(get);
      REQUIRE(resp.ok());
      return resp->body.size();
    };
    std::string index =
        std::string(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)") +
            R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + img.manifest_digest +
            R"(","size":)" + std::to_string(size_of(img.manifest_digest)) +
            R"(,"platform":{"os":"linux","architecture":"amd64"}},)" +
            R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + arm.manifest_digest +
            R"(","size":)" + std::to_string(size_of(arm.manifest_digest)) +
            R"(,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]})";
    std::string index_digest = pusher.Manifest("disk", "multi", "application/vnd.oci.image.index.v1+json", index);
    RegistryOptions arm_opts = o;
    arm_opts.platform = "linux/arm64";
    auto ra = Open(registry.host() + "/disk:multi", arm_opts)->Resolve();
    INFO(ra.status().ToString());
    REQUIRE(ra.ok());
    CHECK(ra->manifest_digest == arm.manifest_digest);
    CHECK(ra->index_digest == index_digest);
    CHECK(ra->reference.digest == index_digest);
    CHECK(ra->platform.architecture == "arm64");
    RegistryOptions s390 = o;
    s390.platform = "linux/s390x";
    auto none = Open(registry.host() + "/disk:multi", s390)->Resolve();
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().code() == Code::kNotFound);
    CHECK_THAT(none.status().message(), Catch::Contains("linux/amd64, linux/arm64/v8"));
  }

  SECTION("unknown manifests and blobs are kNotFound naming them") {
    auto missing = Open(registry.host() + "/disk:nope", o)->Resolve();
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.status().code() == Code::kNotFound);
    CHECK_THAT(missing.status().message(), Catch::Contains(registry.host() + "/disk:nope"));
    Descriptor ghost{.media_type = "application/vnd.oci.image.layer.v1.tar",
                     .digest = "sha256:" + std::string(64, 'b'),
                     .size = 10};
    auto gb = src->OpenBlob(ghost);
    REQUIRE(gb.ok());
    std::vector<uint8_t> b(5);
    auto read = (*gb)->ReadAt(0, b);
    REQUIRE_FALSE(read.ok());
    CHECK(read.status().code() == Code::kNotFound);
    CHECK_THAT(read.status().message(), Catch::Contains("blob " + ghost.digest + " unknown in " + registry.host() + "/disk"));
  }

  SECTION("a blob shorter than its descriptor is caught") {
    Descriptor lying = r->layers[0];
    lying.size += 100;
    auto lb = src->OpenBlob(lying);
    REQUIRE(lb.ok());
    std::vector<uint8_t> b(50);
    auto read = (*lb)->ReadAt(lying.size - 50, b);
    REQUIRE_FALSE(read.ok());
    // A stream of it ends short: an error naming the shortfall, never a success.
    Status short_stream = (*lb)->ReadStream(0, lying.size, [](uint64_t, std::span<const uint8_t>) { return true; });
    CHECK_FALSE(short_stream.ok());
    auto whole = src->FetchBlob(r->layers[0]);
    REQUIRE(whole.ok());
    CHECK(whole->size() == img.layer_bytes.size());
  }

  SECTION("with TLS verification on, a plain HTTP registry is refused") {
    RegistryOptions strict;
    strict.max_retries = 0;
    auto res = Open(registry.host() + "/disk:v1", strict)->Resolve();
    REQUIRE_FALSE(res.ok());
    CHECK(res.status().code() == Code::kUnavailable);
    CHECK_THAT(res.status().message(), Catch::Contains("TLS"));
  }
}

TEST_CASE("registry client names unreachable and unresolvable registries") {
  RegistryOptions o;
  o.max_retries = 1;
  auto refused = Open("127.0.0.1:1/disk:v1", o)->Resolve();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kUnavailable);
  CHECK_THAT(refused.status().message(), Catch::Contains("registry 127.0.0.1:1 unreachable: Connection refused"));
  o.connect_timeout_seconds = 5;
  auto unknown = Open("registry.invalid/disk:v1", o)->Resolve();
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.status().message(), Catch::Contains("cannot resolve host registry.invalid"));
}

TEST_CASE("registry client authenticates with basic auth over TLS with a private CA") {
  TempDir dir;
  fs::path p = dir.path();
  auto secure = ocifs::testing::MakeTlsHtpasswd(p, "alice", "s3cret:pw");
  RegistryProcess registry(p / "reg", secure.http_extra, secure.extra);

  auto ca = TlsConfig::Load((p / "certs").string(), registry.host(), true);
  REQUIRE(ca.ok());
  Pusher pusher("https://" + registry.host(), *ca, "Basic " + Base64Encode("alice:s3cret:pw"));
  PushedImage img = PushImage(pusher, "secure/disk", "v1", "amd64");

  RegistryOptions o;
  o.cert_dir = (p / "certs").string();
  o.creds = "alice:s3cret:pw";
  o.max_retries = 0;
  auto src = Open(registry.host() + "/secure/disk:v1", o);
  auto r = src->Resolve();
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->manifest_digest == img.manifest_digest);
  auto blob = src->OpenBlob(r->layers[0]);
  REQUIRE(blob.ok());
  std::vector<uint8_t> buf(777);
  REQUIRE((*blob)->ReadAt(5000, buf).ok());
  CHECK(std::string(buf.begin(), buf.end()) == img.layer_bytes.substr(5000, 777));

  SECTION("credentials from an authfile") {
    RegistryOptions a = o;
    a.creds.reset();
    a.authfile = (p / "auth.json").string();
    std::ofstream(a.authfile) << R"({"auths":{")" << registry.host() << R"(/secure":{"auth":")"
                              << Base64Encode("alice:s3cret:pw") << R"("}}})";
    auto ra = Open(registry.host() + "/secure/disk:v1", a)->Resolve();
    INFO(ra.status().ToString());
    CHECK(ra.ok());
  }
  SECTION("wrong credentials are kUnauthenticated naming registry and scope, never the password") {
    RegistryOptions bad = o;
    bad.creds = "alice:wrong-password";
    auto rb = Open(registry.host() + "/secure/disk:v1", bad)->Resolve();
    REQUIRE_FALSE(rb.ok());
    CHECK(rb.status().code() == Code::kUnauthenticated);
    CHECK(rb.status().message() ==
          "registry " + registry.host() + " refused the credentials for repository:secure/disk:pull (401)");
    CHECK_THAT(rb.status().message(), !Catch::Contains("wrong-password"));
  }
  SECTION("no credentials asks for them") {
    RegistryOptions anon = o;
    anon.creds.reset();
    auto rn = Open(registry.host() + "/secure/disk:v1", anon)->Resolve();
    REQUIRE_FALSE(rn.ok());
    CHECK(rn.status().code() == Code::kUnauthenticated);
    CHECK_THAT(rn.status().message(), Catch::Contains("requires authentication"));
  }
  SECTION("an unknown CA fails verification; --tls-verify=false accepts it") {
    RegistryOptions no_ca = o;
    no_ca.cert_dir.clear();
    auto rv = Open(registry.host() + "/secure/disk:v1", no_ca)->Resolve();
    REQUIRE_FALSE(rv.ok());
    CHECK(rv.status().code() == Code::kUnavailable);
    CHECK_THAT(rv.status().message(), Catch::Contains("TLS with registry " + registry.host()));
    no_ca.tls_verify = false;
    auto ru = Open(registry.host() + "/secure/disk:v1", no_ca)->Resolve();
    INFO(ru.status().ToString());
    CHECK(ru.ok());
  }
}

namespace {

// A fake registry (python3 http.server): Bearer challenge, a token server that
// wants Basic bob:pa$$ and answers access_token with expires_in 1, and blob
// requests redirected to "storage" on another origin (localhost) that refuses
// any Authorization header.
constexpr const char* kFakeRegistry = R"PY(
import base64, hashlib, http.server, json, sys
port = int(sys.argv[1])
layer = bytes((i * 31 + 7) & 0xff for i in range(100000))
config = b'{"os":"linux","architecture":"amd64"}'
def d(b): return "sha256:" + hashlib.sha256(b).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(config), "size": len(config)},
  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d(layer), "size": len(layer)}]}).encode()
blobs = {d(config): config, d(layer): layer}
stats = {"token": 0, "storage": 0, "storage_auth": 0, "registry_blob": 0}
class H(http.server.BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"
  def log_message(self, *a): pass
  def send(self, code, body=b"", headers={}):
    self.send_response(code)
    for k, v in headers.items(): self.send_header(k, v)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)
  def do_GET(self):
    p = self.path
    if p == "/stats": return self.send(200, json.dumps(stats).encode())
    if p.startswith("/token"):
      stats["token"] += 1
      if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"bob:pa$$").decode(): return self.send(401)
      if "scope=repository%3Adisk%3Apull" not in p or "service=fake%20svc" not in p: return self.send(400)
      return self.send(200, json.dumps({"access_token": "tok%d" % stats["token"], "expires_in": 1}).encode())
    if p.startswith("/storage/"):
      stats["storage"] += 1
      if self.headers.get("Authorization"):
        stats["storage_auth"] += 1
        return self.send(400)
      b = blobs[p.split("/")[2].split("?")[0]]
      # Several ranges: the first alone (a server that does not do multi-range requests).
      a, e = (int(x) for x in self.headers["Range"][6:].split(",")[0].split("-"))
      return self.send(206, b[a:e + 1], {"Content-Range": "bytes %d-%d/%d" % (a, e, len(b))})
    if not self.headers.get("Authorization", "").startswith("Bearer tok"):
      return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
        {"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:%d/token",service="fake svc",scope="repository:disk:pull"' % port})
    if p == "/v2/disk/manifests/v1":
      return self.send(200, manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    if p.startswith("/v2/disk/blobs/") and p.split("/")[4] in blobs:
      stats["registry_blob"] += 1
      return self.send(307, b"", {"Location": "http://localhost:%d/storage/%s?sig=abc" % (port, p.split("/")[4])})
    return self.send(404)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
)PY";

nlohmann::json FakeStats(int port) {
  return nlohmann::json::parse(ocifs::testing::GetOk("http://127.0.0.1:" + std::to_string(port) + "/stats"));
}

}  // namespace

TEST_CASE("registry client gets bearer tokens, renews them, and follows redirects without leaking them") {
  TempDir dir;
  std::ofstream(dir / "fake.py") << kFakeRegistry;
  int port = FreePort();
  ChildProcess fake({"/usr/bin/python3", dir / "fake.py", std::to_string(port)},
                    dir / "fake.log", port);
  std::string host = "127.0.0.1:" + std::to_string(port);
  RegistryOptions o;
  o.tls_verify = false;
  o.creds = "bob:pa$$";
  o.max_retries = 0;
  auto src = Open(host + "/disk:v1", o);
  auto r = src->Resolve();
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->config_json["os"] == "linux");
  auto blob = src->OpenBlob(r->layers[0]);
  REQUIRE(blob.ok());
  std::vector<uint8_t> buf(100);
  for (int i = 0; i < 3; ++i) {
    auto n = (*blob)->ReadAt(1000 + i, buf);
    INFO(n.status().ToString());
    REQUIRE(n.ok());
    CHECK(buf[0] == static_cast<uint8_t>(((1000 + i) * 31 + 7) & 0xff));
  }
  auto stats = FakeStats(port);
  CHECK(stats["storage_auth"] == 0);
  CHECK(stats["registry_blob"] == 2);  // config + the first layer read; then the stored location
  CHECK(stats["storage"] == 4);
  int tokens = stats["token"];
  CHECK(tokens >= 1);  // one, unless this machine took over 0.75 s
  // The storage answers a multi-range request with its first range: the
  // ranges are then asked one per request (kUnsupported), and the session
  // sends no multi-range request again.
  const std::vector<ByteRange> ranges{{100, 10}, {2000, 10}};
  std::map<uint64_t, uint8_t> got;
  auto take = [&](uint64_t at, std::span<const uint8_t> bytes) {
    for (size_t i = 0; i < bytes.size(); ++i) got[at + i] = bytes[i];
    return true;
  };
  Status refused = (*blob)->ReadRanges(ranges, take);
  CHECK(refused.code() == Code::kUnsupported);
  CHECK(refused.message().find("answered with 1 of them") != std::string::npos);
  CHECK(got.size() == 10);  // the first range came, right
  CHECK(got[105] == static_cast<uint8_t>((105 * 31 + 7) & 0xff));
  const int storage = FakeStats(port)["storage"];
  CHECK(storage == 5);
  CHECK((*blob)->ReadRanges(ranges, take).code() == Code::kUnsupported);
  CHECK(FakeStats(port)["storage"] == storage);
  // The token lives 1 s: the next registry request fetches a new one.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  REQUIRE(src->Resolve().ok());
  CHECK(FakeStats(port)["token"].get<int>() > tokens);

  SECTION("the token server refusing the credentials is kUnauthenticated without the password") {
    RegistryOptions bad = o;
    bad.creds = "bob:nope-secret";
    auto rb = Open(host + "/disk:v1", bad)->Resolve();
    REQUIRE_FALSE(rb.ok());
    CHECK(rb.status().code() == Code::kUnauthenticated);
    CHECK_THAT(rb.status().message(),
               Catch::Contains("registry " + host + " refused the credentials for repository:disk:pull"));
    CHECK_THAT(rb.status().message(), !Catch::Contains("nope-secret"));
  }
}
