// RegistryAuth's messages: the scopes it asks for and the refusal of a push,
// which names registry, repository and scope but never the credentials.
#include "registry/registry_auth.h"

#include <catch2/catch.hpp>

using namespace ocifs;

TEST_CASE("pull and push scopes name the repository") {
  CHECK(PullScope("t/disk") == "repository:t/disk:pull");
  CHECK(PushScope("t/disk") == "repository:t/disk:pull,push");
}

TEST_CASE("a refused push names registry, repository and scope, never the credentials") {
  HttpClient http({});
  RegistryAuth with("127.0.0.1:5000", Credentials{"bob", "hunter2-Secret"}, &http);
  Status st = with.PushRefusedError("t/disk", PushScope("t/disk"), 401, "HTTP 401: UNAUTHORIZED: authentication required");
  CHECK(st.code() == Code::kUnauthenticated);
  CHECK(st.message() ==
        "registry 127.0.0.1:5000 refused to let these credentials push to t/disk "
        "(scope repository:t/disk:pull,push): HTTP 401: UNAUTHORIZED: authentication required");
  CHECK_THAT(st.message(), !Catch::Contains("hunter2") && !Catch::Contains("bob"));
  CHECK(with.PushRefusedError("t/disk", PushScope("t/disk"), 403, "HTTP 403").code() == Code::kPermissionDenied);

  RegistryAuth anonymous("127.0.0.1:5000", std::nullopt, &http);
  Status anon = anonymous.PushRefusedError("t/disk", PushScope("t/disk"), 401, "HTTP 401");
  CHECK(anon.message() ==
        "registry 127.0.0.1:5000 refused to let anonymous access push to t/disk "
        "(scope repository:t/disk:pull,push): HTTP 401; give --creds or --authfile");
  // The hint is not given twice when the detail already has it.
  Status twice = anonymous.PushRefusedError("t/disk", PushScope("t/disk"), 401,
                                            anonymous.RefusedError(PushScope("t/disk")).message());
  CHECK(twice.message().find("give --creds") == twice.message().rfind("give --creds"));
}
