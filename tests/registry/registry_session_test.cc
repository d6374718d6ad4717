// RegistrySession's scheme choice under --tls-verify=false, against fake
// servers (python3) on 127.0.0.1 that speak plain HTTP only.
#include "registry/registry_session.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "registry/reference.h"
#include "testing/registry_clients.h"
#include "testing/registry_process.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::ChildProcess;
using ocifs::testing::FreePort;
using ocifs::testing::TempDir;

namespace {

// A plain-HTTP registry that holds every TLS handshake (first byte 0x16) open
// until a plain HTTP request has arrived, then closes it: the https attempt
// fails only once the plain request was sent beside it. A client that tries
// https first and plain HTTP after it waits for the hold's 20 s end. /stats
// tells whether a handshake was released by a plain request ("overlapped") or
// by the 20 s end ("timed_out"), how many are held right now ("held"), and
// how many plain requests came ("plain").
constexpr const char* kPlainRegistry = R"PY(
import json, socket, sys, threading
port = int(sys.argv[1])
plain_seen = threading.Event()
stats = {"overlapped": 0, "timed_out": 0, "plain": 0, "held": 0}
lock = threading.Lock()
def answer(c, code, body):
  c.sendall(("HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (code, len(body))).encode() + body)
def serve(c):
  try:
    first = c.recv(1, socket.MSG_PEEK)
    if not first: return
    if first[0] == 0x16:
      with lock: stats["held"] += 1
      released = plain_seen.wait(20)
      with lock:
        stats["held"] -= 1
        stats["overlapped" if released else "timed_out"] += 1
      return
    data = b""
    while b"\r\n\r\n" not in data:
      piece = c.recv(4096)
      if not piece: return
      data += piece
    head = data.split(b"\r\n\r\n")[0].decode()
    path = head.split(" ")[1]
    if path == "/stats":
      with lock: return answer(c, 200, json.dumps(stats).encode())
    with lock:
      stats["plain"] += 1
    plain_seen.set()
    answer(c, 200, b"{}")
  finally:
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
while True:
  c, _ = s.accept()
  threading.Thread(target=serve, args=(c,), daemon=True).start()
)PY";

// The fake above on a free port, stopped at scope end; tls_verify false, no retries.
struct FakePlainRegistry {
  TempDir dir;
  int port = FreePort();
  std::string host = "127.0.0.1:" + std::to_string(port);
  ChildProcess process = Start(dir, port);
  RegistryOptions options = [] {
    RegistryOptions o;
    o.tls_verify = false;
    o.max_retries = 0;
    return o;
  }();

  nlohmann::json Stats() const { return nlohmann::json::parse(ocifs::testing::GetOk("http://" + host + "/stats")); }

 private:
  static ChildProcess Start(const TempDir& dir, int port) {
    std::ofstream(dir / "fake.py") << kPlainRegistry;
    return ChildProcess({"/usr/bin/python3", dir / "fake.py", std::to_string(port)}, dir / "fake.log", port);
  }
};

std::shared_ptr<RegistrySession> Session(const std::string& host, RegistryOptions o) {
  auto ref = Reference::Parse(host + "/disk:v1");
  REQUIRE(ref.ok());
  auto session = RegistrySession::Create(*ref, o);
  REQUIRE(session.ok());
  return *session;
}

}  // namespace

TEST_CASE("registry session sends a plain registry's first GET over https and http at once") {
  FakePlainRegistry fake;
  auto session = Session(fake.host, fake.options);

  HttpRequest req;
  req.url = "/v2/";
  auto first = session->Send(req);
  INFO(first.status().ToString());
  REQUIRE(first.ok());
  CHECK(first->status == 200);
  // The next request knows the scheme: plain HTTP, no TLS attempt.
  auto second = session->Send(req);
  REQUIRE(second.ok());
  CHECK(second->status == 200);
  auto stats = fake.Stats();
  CHECK(stats["overlapped"] == 1);
  CHECK(stats["timed_out"] == 0);
  CHECK(stats["plain"] == 2);
}

TEST_CASE("registry session sends a request that is not a GET or HEAD over plain HTTP only after https failed") {
  FakePlainRegistry fake;
  auto session = Session(fake.host, fake.options);

  // A PUT is never sent both ways: https first, which the fake holds until a
  // plain request arrives: a second session's GET releases it.
  HttpRequest put;
  put.method = "PUT";
  put.url = "/v2/other";
  Result<HttpResponse> put_result = Unavailable("not sent");
  {
    std::jthread putter([&] { put_result = session->Send(put); });
    // Once the PUT's https attempt is held, nothing plain may have arrived.
    nlohmann::json stats;
    for (int i = 0; i < 3000 && (stats = fake.Stats())["held"] == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(stats["held"] == 1);
    CHECK(stats["plain"] == 0);
    HttpRequest get;
    get.url = "/v2/";
    REQUIRE(Session(fake.host, fake.options)->Send(get).ok());
  }
  INFO(put_result.status().ToString());
  REQUIRE(put_result.ok());
  CHECK(put_result->status == 200);
  auto stats = fake.Stats();
  CHECK(stats["timed_out"] == 0);
  CHECK(stats["overlapped"] == 2);
  CHECK(stats["plain"] == 2);
}
