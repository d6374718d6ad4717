#include "cli/common_flags.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

namespace ocifs {

void AddCommonFlags(CLI::App* app, CommonFlags* flags) {
  app->add_option("--creds", flags->creds, "USER:PASS for the registry (prefer --authfile)");
  app->add_option("--authfile", flags->authfile, "containers auth.json or docker config.json");
  app->add_option("--cert-dir", flags->cert_dir, "directory of *.crt CAs and *.cert/*.key client certificates");
  app->add_option("--tls-verify", flags->tls_verify,
                  "false: accept an unverified certificate or plain HTTP (default true)");
  app->add_option("--platform", flags->platform, "OS/ARCH[/VARIANT] to pick from a multi-platform image");
  app->add_option("--registries-conf", flags->registries_conf,
                  "containers-registries.conf(5): mirrors, rewrites, blocked registries");
  app->add_option("--stall-timeout", flags->stall_timeout,
                  "seconds without a byte before a request is retried on a fresh connection (default 10)")
      ->check(CLI::Range(1, 3600));
  app->add_option("--registry-timeout", flags->registry_timeout,
                  "seconds one registry request, retries included, may wait without progress (default 20)")
      ->check(CLI::Range(1, 3600));
  app->add_option("--log-level", flags->log_level, "trace, debug, info, warn (default), error, off");
  app->add_option("--log-file", flags->log_file, "write logs to this file instead of stderr");
}

Result<bool> ParseBool(std::string_view text, std::string_view what) {
  if (text == "true" || text == "1" || text == "yes" || text.empty()) return true;
  if (text == "false" || text == "0" || text == "no") return false;
  return InvalidArgument(std::string(what) + ": expected true or false, got '" + std::string(text) + "'");
}

Result<RegistryOptions> ToRegistryOptions(const CommonFlags& flags) {
  RegistryOptions options;
  if (!flags.creds.empty()) {
    if (flags.creds.find(':') == std::string::npos) return InvalidArgument("--creds must be USER:PASS");
    options.creds = flags.creds;
  }
  options.authfile = flags.authfile;
  options.cert_dir = flags.cert_dir;
  OCIFS_ASSIGN_OR_RETURN(options.tls_verify, ParseBool(flags.tls_verify, "--tls-verify"));
  options.platform = flags.platform;
  options.registries_conf = flags.registries_conf;
  options.stall_timeout_seconds = flags.stall_timeout;
  options.registry_timeout_seconds = flags.registry_timeout;
  return options;
}

Status ConfigureLogging(const CommonFlags& flags) { return ConfigureLogging(flags.log_level, flags.log_file); }

Status ConfigureLogging(const std::string& log_level, const std::string& log_file) {
  auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    return InvalidArgument("--log-level: unknown level '" + log_level + "'");
  }
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (log_file.empty()) {
      logger = spdlog::stderr_logger_mt("oci-fs");
    } else {
      logger = spdlog::basic_logger_mt("oci-fs", log_file);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return IoError(std::string("cannot open the log: ") + e.what());
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

int Fail(const Status& status) {
  std::cerr << "oci-fs: " << status.ToString() << std::endl;
  return 1;
}

}  // namespace ocifs
