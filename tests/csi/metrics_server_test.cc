#include "csi/metrics_server.h"

#include <httplib.h>

#include <atomic>
#include <catch2/catch.hpp>

using namespace ocifs;

TEST_CASE("a metrics address is HOST:PORT or [V6]:PORT") {
  auto a = ParseMetricsAddress("127.0.0.1:9100");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 9100);
  a = ParseMetricsAddress("[::1]:80");
  REQUIRE(a.ok());
  CHECK(a->host == "::1");
  for (const char* bad : {"", "9100", "host:", ":80", "host:99999", "host:8x", "::1:80", "[::1]80"}) {
    auto r = ParseMetricsAddress(bad);
    CHECK_FALSE(r.ok());
    CHECK(r.status().message().find("--metrics-address") != std::string::npos);
  }
}

TEST_CASE("the server answers /metrics with the page and anything else with 404") {
  std::atomic<int> calls{0};
  auto server = MetricsServer::Start({"127.0.0.1", 0}, [&calls] {
    ++calls;
    return std::string("# HELP x y\n# TYPE x counter\nx 1\n");
  });
  REQUIRE(server.ok());
  REQUIRE((*server)->port() > 0);
  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/metrics");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "# HELP x y\n# TYPE x counter\nx 1\n");
  CHECK(res->get_header_value("Content-Type").find("text/plain; version=0.0.4") == 0);
  auto missing = client.Get("/other");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(calls == 1);
}

TEST_CASE("a port already in use is an error naming the address") {
  auto first = MetricsServer::Start({"127.0.0.1", 0}, [] { return std::string(); });
  REQUIRE(first.ok());
  auto second = MetricsServer::Start({"127.0.0.1", (*first)->port()}, [] { return std::string(); });
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().message().find("127.0.0.1:" + std::to_string((*first)->port())) != std::string::npos);
}
