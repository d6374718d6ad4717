#include "decode/toc_support.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>

namespace ocifs {

bool IsSha256Digest(std::string_view d) {
  if (d.size() != 71 || d.substr(0, 7) != "sha256:") return false;
  return std::all_of(d.begin() + 7, d.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

int JsonNestingDepth(std::string_view s) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxTocJsonDepth) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

std::optional<uint64_t> TocNumber(const nlohmann::json& e, const char* key, std::string& why) {
  auto it = e.find(key);
  if (it == e.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() ? it->get<uint64_t>() >= kMaxTocNumber
                                : (it->get<int64_t>() < 0 ||
                                   static_cast<uint64_t>(it->get<int64_t>()) >= kMaxTocNumber))) {
    why = std::string("\"") + key + "\" is not a byte count";
    return std::nullopt;
  }
  return it->get<uint64_t>();
}

std::string TocText(const nlohmann::json& e, const char* key) {
  auto it = e.find(key);
  return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<nlohmann::json> ParseTocDocument(std::string_view json, const std::string& what, size_t max_entries) {
  if (JsonNestingDepth(json) > kMaxTocJsonDepth) return Corrupt(what + ": JSON nested too deeply");
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Corrupt(what + ": not a JSON object");
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != 1) {
    return Unsupported(what + ": version " + (version == doc.end() ? std::string("missing") : version->dump()) +
                       ", not 1");
  }
  auto entries = doc.find("entries");
  if (entries == doc.end() || !entries->is_array()) return Corrupt(what + ": no \"entries\" array");
  if (entries->size() > max_entries) return Corrupt(what + ": too many entries");
  return doc;
}

std::string Sha256Of(std::span<const uint8_t> bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

ZstdFrameSource::FrameCheck TocDigestCheck(std::vector<uint64_t> in_offsets, std::vector<TocFrameDigest> digests,
                                           std::string name) {
  auto logged = std::make_shared<std::atomic<bool>>(false);
  return [in_offsets = std::move(in_offsets), digests = std::move(digests), name = std::move(name), logged](
             size_t index, std::span<const uint8_t> decoded) -> Status {
    if (index >= digests.size() || digests[index].digest.empty()) return Status::Ok();
    const TocFrameDigest& want = digests[index];
    std::span<const uint8_t> vouched = decoded;
    if (want.length != 0) vouched = decoded.first(static_cast<size_t>(std::min<uint64_t>(want.length, decoded.size())));
    std::string got = Sha256Of(vouched);
    if (got == want.digest && (want.length == 0 || want.length <= decoded.size())) return Status::Ok();
    Status st = DataLoss(name + ": the chunk at compressed offset " +
                         std::to_string(index < in_offsets.size() ? in_offsets[index] : 0) + " decodes to " + got +
                         ", its TOC says " + want.digest);
    if (!logged->exchange(true)) spdlog::error("{} (later mismatches of this layer are not logged)", st.message());
    return st;
  };
}

}  // namespace ocifs
