#include "registry/www_authenticate.h"

#include <catch2/catch.hpp>

using namespace ocifs;

TEST_CASE("challenge parser reads a docker hub bearer challenge") {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull")");
  REQUIRE(c.size() == 1);
  CHECK(c[0].scheme == "bearer");
  CHECK(c[0].Param("realm") == "https://auth.docker.io/token");
  CHECK(c[0].Param("service") == "registry.docker.io");
  CHECK(c[0].Param("scope") == "repository:library/ubuntu:pull");
}

TEST_CASE("challenge parser keeps commas and escapes inside quoted values") {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://a/t?x=1,y=2", scope="repository:a:pull,push", error="say \"hi\"")");
  REQUIRE(c.size() == 1);
  CHECK(c[0].Param("realm") == "https://a/t?x=1,y=2");
  CHECK(c[0].Param("scope") == "repository:a:pull,push");
  CHECK(c[0].Param("error") == "say \"hi\"");
}

TEST_CASE("challenge parser splits several challenges and lowercases names") {
  auto c = ParseWwwAuthenticate(R"(Basic realm="Registry Realm", BEARER Realm=https://t/token ,Service=svc)");
  REQUIRE(c.size() == 2);
  CHECK(c[0].scheme == "basic");
  CHECK(c[0].Param("realm") == "Registry Realm");
  CHECK(c[1].scheme == "bearer");
  CHECK(c[1].Param("realm") == "https://t/token");
  CHECK(c[1].Param("service") == "svc");
}

TEST_CASE("challenge parser handles token68, bare schemes and junk without throwing") {
  auto t = ParseWwwAuthenticate("Negotiate abc123==, Basic");
  REQUIRE(t.size() == 2);
  CHECK(t[0].Param("token68") == "abc123==");
  CHECK(t[1].scheme == "basic");
  CHECK(ParseWwwAuthenticate("").empty());
  CHECK(ParseWwwAuthenticate(" , ,").empty());
  auto j = ParseWwwAuthenticate(R"(Bearer realm="unterminated)");
  REQUIRE(j.size() == 1);
  CHECK(j[0].Param("realm") == "unterminated");
  (void)ParseWwwAuthenticate("=== \"\" ,=, Bearer =x");
}
