#include "registry/referrers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <thread>

#include "registry/digest.h"
#include "registry/http_client.h"
#include "registry/registry_session.h"

namespace ocifs {
namespace {

constexpr int kMaxReferrerPages = 16;

// The media type of a Content-Type value, without parameters.
std::string_view MediaTypeOf(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  return content_type;
}

bool IsIndexContentType(std::string_view content_type) {
  std::string_view mt = MediaTypeOf(content_type);
  return mt.empty() || mt == media_type::kOciIndex || mt == "application/json";
}

// True if the comma-separated OCI-Filters-Applied value names `filter`.
bool FilterApplied(std::string_view header, std::string_view filter) {
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == filter) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

// The target of a `Link: <url>; rel="next"` header (RFC 5988), or "".
std::string NextLink(const std::vector<std::string>& links) {
  for (const auto& value : links) {
    size_t open = value.find('<'), close = value.find('>');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::string params = value.substr(close + 1);
    if (params.find("rel=\"next\"") != std::string::npos || params.find("rel=next") != std::string::npos) {
      return value.substr(open + 1, close - open - 1);
    }
  }
  return "";
}

// Asks the referrers API. nullopt: the registry has no referrers API.
Result<std::optional<ReferrerList>> AskReferrersApi(RegistrySession& session, const std::string& subject,
                                                    const std::string& artifact_type) {
  const std::string what = "referrers of " + subject + " in " + session.Name();
  std::string url = "/v2/" + session.reference().repository + "/referrers/" + subject;
  if (!artifact_type.empty()) url += "?artifactType=" + HttpClient::Escape(artifact_type);
  std::vector<Descriptor> all;
  bool filtered = true;
  for (int page = 0;; ++page) {
    HttpRequest req;
    req.url = url;
    req.headers.push_back("Accept: " + std::string(media_type::kOciIndex));
    req.max_body = kMaxReferrersIndexBytes;
    auto sent = session.Send(std::move(req));
    if (!sent.ok()) {
      if (sent.status().code() == Code::kCorrupt) return Corrupt(what + ": an index larger than 4 MiB");
      return sent.status();
    }
    const HttpResponse& resp = *sent;
    const long st = resp.status;
    bool absent = st == 400 || st == 404 || st == 405 || st == 406 ||
                  (st == 200 && !IsIndexContentType(resp.headers.Get("content-type")));
    if (page == 0 && absent) {
      spdlog::debug("registry {}: no referrers API ({}; content type \"{}\")", session.reference().registry,
                    RegistrySession::DescribeResponse(resp), resp.headers.Get("content-type").substr(0, 100));
      return std::optional<ReferrerList>();
    }
    if (st != 200) return session.StatusError(resp, what);
    std::string page_what = what + (page == 0 ? std::string() : " (page " + std::to_string(page + 1) + ")");
    OCIFS_ASSIGN_OR_RETURN(std::vector<Descriptor> entries, ParseReferrersIndex(resp.body, page_what));
    filtered = filtered && FilterApplied(resp.headers.Get("oci-filters-applied"), "artifactType");
    if (all.size() + entries.size() > kMaxReferrers) {
      return Corrupt(what + ": more than " + std::to_string(kMaxReferrers) + " referrers");
    }
    for (auto& d : entries) all.push_back(std::move(d));
    std::string next = NextLink(resp.headers.GetAll("link"));
    if (next.empty()) break;
    if (page + 1 == kMaxReferrerPages) {
      return Corrupt(what + ": more than " + std::to_string(kMaxReferrerPages) + " pages");
    }
    if (next.starts_with("?")) next = url.substr(0, url.find('?')) + next;
    if (!next.starts_with("/") && !next.starts_with("https://") && !next.starts_with("http://")) {
      return Corrupt(what + ": the Link header names no URL");
    }
    url = std::move(next);  // a path, or an absolute URL: Send keeps the Authorization to the registry's host
  }
  ReferrerList list;
  list.source = ReferrerList::Source::kReferrersApi;
  list.registry_filtered = !artifact_type.empty() && filtered;
  list.manifests = FilterByArtifactType(std::move(all), artifact_type);
  return std::optional<ReferrerList>(std::move(list));
}

// The referrers from the fallback tag's GET (404: none).
Result<ReferrerList> FromFallbackTag(Result<FetchedManifest> got, const std::string& what,
                                     const std::string& artifact_type) {
  ReferrerList list;
  if (!got.ok()) {
    if (got.status().code() == Code::kNotFound) return list;  // kNoFallbackTag
    return got.status();
  }
  std::string_view mt = MediaTypeOf(got->media_type);
  if (!IsIndexContentType(mt)) {
    return Corrupt(what + " is a " + std::string(mt.substr(0, 200)) + ", not an OCI image index");
  }
  OCIFS_ASSIGN_OR_RETURN(std::vector<Descriptor> all, ParseReferrersIndex(got->bytes, what));
  list.source = ReferrerList::Source::kFallbackTag;
  list.manifests = FilterByArtifactType(std::move(all), artifact_type);
  return list;
}

}  // namespace

std::string_view ReferrerSourceName(ReferrerList::Source source) {
  switch (source) {
    case ReferrerList::Source::kReferrersApi: return "referrers API";
    case ReferrerList::Source::kFallbackTag: return "fallback tag";
    case ReferrerList::Source::kNoFallbackTag: return "no fallback tag";
  }
  return "unknown";
}

Result<std::string> ReferrersTag(std::string_view subject_digest) {
  Status valid = ValidateDigest(subject_digest);
  if (!valid.ok()) return InvalidArgument("subject of referrers: " + valid.message());
  size_t colon = subject_digest.find(':');
  std::string tag(subject_digest.substr(0, std::min<size_t>(colon, 32)));
  tag += '-';
  tag += subject_digest.substr(colon + 1, 64);
  for (char& c : tag) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                   c == '.' || c == '-';
    if (!allowed) c = '-';
  }
  return tag;
}

Result<std::vector<Descriptor>> ParseReferrersIndex(std::string_view bytes, std::string_view what) {
  std::string w(what);
  if (bytes.size() > kMaxReferrersIndexBytes) return Corrupt(w + " is larger than 4 MiB");
  nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corrupt(w + " is not valid JSON");
  if (!j.is_object()) return Corrupt(w + " is not a JSON object");
  auto sv = j.find("schemaVersion");
  if (sv == j.end() || !sv->is_number_integer() || sv->get<int64_t>() != 2) {
    return Corrupt(w + ": schemaVersion is not 2");
  }
  auto mt = j.find("mediaType");
  if (mt != j.end() && (!mt->is_string() || mt->get<std::string>() != media_type::kOciIndex)) {
    return Corrupt(w + ": mediaType is " + mt->dump().substr(0, 200) + ", not " + std::string(media_type::kOciIndex));
  }
  auto list = j.find("manifests");
  if (list == j.end() || !list->is_array()) return Corrupt(w + ": no \"manifests\" array");
  if (list->size() > kMaxReferrers) {
    return Corrupt(w + " lists more than " + std::to_string(kMaxReferrers) + " manifests");
  }
  std::vector<Descriptor> out;
  for (size_t i = 0; i < list->size(); ++i) {
    auto d = DescriptorFromJson((*list)[i], w + ": manifests[" + std::to_string(i) + "]");
    if (!d.ok() && d.status().code() == Code::kUnsupported) {
      spdlog::debug("{}: skipped: {}", w, d.status().message());  // another digest algorithm
      continue;
    }
    if (!d.ok()) return d.status();
    out.push_back(std::move(d).value());
  }
  return out;
}

std::vector<Descriptor> FilterByArtifactType(std::vector<Descriptor> all, std::string_view artifact_type) {
  if (artifact_type.empty()) return all;
  std::vector<Descriptor> out;
  for (auto& d : all) {
    if (d.artifact_type == artifact_type) out.push_back(std::move(d));
  }
  return out;
}

Result<std::string> MergeIntoReferrersIndex(std::string_view index_bytes, const Descriptor& artifact,
                                            std::string_view what) {
  nlohmann::json index = nlohmann::json::object();
  if (!index_bytes.empty()) {
    OCIFS_RETURN_IF_ERROR(ParseReferrersIndex(index_bytes, what).status());
    index = nlohmann::json::parse(index_bytes.begin(), index_bytes.end(), nullptr, /*allow_exceptions=*/false);
  }
  nlohmann::json kept = nlohmann::json::array();
  if (index.contains("manifests")) {
    for (auto& entry : index["manifests"]) {
      if (entry.value("digest", std::string()) != artifact.digest) kept.push_back(std::move(entry));
    }
  }
  if (kept.size() >= kMaxReferrers) {
    return Corrupt(std::string(what) + " already lists " + std::to_string(kept.size()) + " manifests");
  }
  kept.push_back(DescriptorToJson(artifact));
  index["schemaVersion"] = 2;
  index["mediaType"] = media_type::kOciIndex;
  index["manifests"] = std::move(kept);
  return index.dump();
}

Result<ReferrerList> ListReferrers(RegistrySession& session, const std::string& subject_digest,
                                   const std::string& artifact_type) {
  OCIFS_ASSIGN_OR_RETURN(std::string tag, ReferrersTag(subject_digest));
  // The fallback tag is read beside the API request: one round trip either way.
  std::optional<Result<FetchedManifest>> from_tag;
  std::jthread tag_reader;
  try {
    tag_reader = std::jthread([&session, &tag, &from_tag] { from_tag.emplace(session.GetManifest(tag)); });
  } catch (const std::system_error& e) {
    spdlog::debug("registry {}: no thread for the referrers fallback tag ({}); asking in turn",
                  session.reference().registry, e.what());
  }
  auto api = AskReferrersApi(session, subject_digest, artifact_type);
  if (tag_reader.joinable()) tag_reader.join();
  if (!api.ok()) return api.status();
  if (api->has_value()) return std::move(**api);
  if (!from_tag) from_tag.emplace(session.GetManifest(tag));
  return FromFallbackTag(std::move(*from_tag), "referrers fallback tag " + tag + " of " + session.Name(),
                         artifact_type);
}

}  // namespace ocifs
