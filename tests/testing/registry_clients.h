// Clients of a test registry (see registry_process.h): an ImageSource opened
// from a reference text, and a plain GET that must answer 200. Catch2 only;
// link ocifs_registry.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "registry/http_client.h"
#include "registry/image_source.h"
#include "registry/reference.h"

namespace ocifs::testing {

// The ImageSource of `ref_text` (REQUIREs that it parses and opens; contacts nothing).
inline std::unique_ptr<ImageSource> OpenImage(const std::string& ref_text, const RegistryOptions& options) {
  auto ref = Reference::Parse(ref_text);
  REQUIRE(ref.ok());
  auto src = OpenImageSource(*ref, options);
  INFO(src.status().ToString());
  REQUIRE(src.ok());
  return std::move(src).value();
}

// The body of GET `url`, which must answer 200 (a test server's control page).
inline std::string GetOk(const std::string& url) {
  HttpClient http({});
  HttpRequest get;
  get.url = url;
  auto resp = http.Perform(get);
  REQUIRE(resp.ok());
  REQUIRE(resp->status == 200);
  return resp->body;
}

}  // namespace ocifs::testing
