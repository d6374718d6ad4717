// Reference: which image to open, as the user wrote it.
//
//   [docker://]host[:port]/repo[:tag][@digest]   a registry image
//   ubuntu, user/app                              Docker Hub short names
//   oci:PATH[:TAG][@digest]                       a local OCI image layout directory
#pragma once

#include <string>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

// Plain value type.
struct Reference {
  enum class Transport { kDocker, kOciLayout };
  Transport transport = Transport::kDocker;
  std::string registry;     // "docker.io", "127.0.0.1:5000", "[::1]:5000"
  std::string repository;   // "library/ubuntu"
  std::string tag;          // "latest" when neither tag nor digest given; may be empty if digest set
  std::string digest;       // "sha256:<64 hex>" or empty
  std::string layout_path;  // for oci:PATH[:TAG]

  // kInvalidArgument naming what is wrong; kUnsupported for other transports
  // (docker-archive:, containers-storage:, ...) and digest algorithms.
  static Result<Reference> Parse(std::string_view text);
  // Canonical: "docker.io/library/ubuntu:latest", "127.0.0.1:5000/disk@sha256:..", "oci:/p:tag".
  std::string ToString() const;

  // The host[:port] to connect to: "registry-1.docker.io" for docker.io.
  std::string ApiHost() const;
  // The tag or digest for the manifest URL (digest wins).
  std::string ManifestRef() const { return digest.empty() ? tag : digest; }
};

// A tag as the distribution spec allows: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
bool IsValidTag(std::string_view tag);

}  // namespace ocifs
