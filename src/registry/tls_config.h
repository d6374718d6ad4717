// TlsConfig: the extra CAs and client certificate for one registry, from a
// certs.d directory (containers-certs.d(5)): *.crt = CA, *.cert + *.key = client.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// Immutable after Load(); safe for concurrent use. Owns the parsed CA
// certificates (OpenSSL X509 objects), freed on destruction.
class TlsConfig {
 public:
  // `cert_dir` explicit, else /etc/containers/certs.d/<host_port>/ then
  // /etc/docker/certs.d/<host_port>/ if present. A *.cert without its *.key
  // (or an unparsable *.crt) is kInvalidArgument naming the file.
  [[nodiscard]] static Result<std::shared_ptr<const TlsConfig>> Load(const std::string& cert_dir,
                                                                     const std::string& host_port,
                                                                     bool verify);
  ~TlsConfig();
  TlsConfig(const TlsConfig&) = delete;
  TlsConfig& operator=(const TlsConfig&) = delete;

  bool verify() const { return verify_; }
  const std::string& client_cert() const { return client_cert_; }  // PEM file or ""
  const std::string& client_key() const { return client_key_; }    // PEM file or ""
  bool has_extra_cas() const { return !cas_.empty(); }
  // Adds the extra CAs to an OpenSSL SSL_CTX's store (CURLOPT_SSL_CTX_FUNCTION).
  void AddCasTo(void* ssl_ctx) const;

 private:
  TlsConfig() = default;
  bool verify_ = true;
  std::string client_cert_, client_key_;
  std::vector<void*> cas_;  // X509*
};

}  // namespace ocifs
