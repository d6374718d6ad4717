#include "registry/tls_config.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace ocifs {
namespace fs = std::filesystem;

Result<std::shared_ptr<const TlsConfig>> TlsConfig::Load(const std::string& cert_dir, const std::string& host_port,
                                                         bool verify) {
  std::shared_ptr<TlsConfig> cfg(new TlsConfig());
  cfg->verify_ = verify;
  std::string dir = cert_dir;
  std::error_code ec;
  if (dir.empty()) {
    for (const char* base : {"/etc/containers/certs.d/", "/etc/docker/certs.d/"}) {
      std::string d = base + host_port;
      if (fs::is_directory(d, ec)) {
        dir = d;
        break;
      }
    }
    if (dir.empty()) return std::shared_ptr<const TlsConfig>(cfg);
  } else if (!fs::is_directory(dir, ec)) {
    return InvalidArgument("cert dir " + dir + " is not a directory");
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) files.push_back(e.path());
  if (ec) return IoError("cannot list cert dir " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::string ext = f.extension().string();
    if (ext == ".crt") {
      FILE* fp = std::fopen(f.c_str(), "r");
      if (!fp) return IoError("cannot open CA certificate " + f.string());
      int count = 0;
      while (X509* x = PEM_read_X509(fp, nullptr, nullptr, nullptr)) {
        cfg->cas_.push_back(x);
        ++count;
      }
      std::fclose(fp);
      ERR_clear_error();
      if (count == 0) return InvalidArgument("CA certificate " + f.string() + " holds no PEM certificate");
      spdlog::debug("tls: {} CA certificate(s) from {}", count, f.string());
    } else if (ext == ".cert") {
      fs::path key = f;
      key.replace_extension(".key");
      if (!fs::exists(key, ec)) {
        return InvalidArgument("client certificate " + f.string() + " has no matching key " + key.string());
      }
      cfg->client_cert_ = f.string();
      cfg->client_key_ = key.string();
    } else if (ext == ".key") {
      fs::path cert = f;
      cert.replace_extension(".cert");
      if (!fs::exists(cert, ec)) {
        return InvalidArgument("client key " + f.string() + " has no matching certificate " + cert.string());
      }
    }
  }
  return std::shared_ptr<const TlsConfig>(cfg);
}

TlsConfig::~TlsConfig() {
  for (void* x : cas_) X509_free(static_cast<X509*>(x));
}

void TlsConfig::AddCasTo(void* ssl_ctx) const {
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  if (!store) return;
  for (void* x : cas_) X509_STORE_add_cert(store, static_cast<X509*>(x));  // duplicates are harmless
  ERR_clear_error();
}

}  // namespace ocifs
