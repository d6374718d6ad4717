// StatusFromProcessFailure: turns a failed `oci-fs inspect|mount` run into a
// Status whose code says what kind of failure it was.
//
// `oci-fs` reports a failure as one stderr line `oci-fs: <message>`, where
// the message is usually a Status::ToString() ("not found: manifest ...").
// The code is taken from that prefix when present, else guessed from words
// in the message (401/unauthorized, 403/denied, 404/unknown, connection
// refused/timeout); anything else is InvalidArgument (a bad reference or
// option). The registry's text is passed through; it never holds secrets
// because oci-fs never prints them.
#pragma once

#include <string_view>

#include "csi/subprocess.h"
#include "ocifs/status.h"

namespace ocifs {

// `what` names the step, e.g. "resolve 127.0.0.1:5000/disk:v1".
Status StatusFromProcessFailure(std::string_view what, const ProcessResult& result);

// The code for one `oci-fs: ...` message; exposed for tests.
Code CodeFromMessage(std::string_view message);

}  // namespace ocifs
