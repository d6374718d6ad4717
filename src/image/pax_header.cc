#include "image/pax_header.h"

#include <charconv>

namespace ocifs {

Result<std::vector<PaxRecord>> ParsePaxRecords(std::string_view data, std::string_view where) {
  std::vector<PaxRecord> records;
  size_t pos = 0;
  while (pos < data.size()) {
    if (data.find_first_not_of('\0', pos) == std::string_view::npos) break;  // NUL padding
    auto bad = [&](std::string_view why) {
      return Corrupt(std::string(where) + ": malformed pax record at byte " + std::to_string(pos) + ": " +
                     std::string(why));
    };
    size_t space = data.find(' ', pos);
    if (space == std::string_view::npos || space == pos || space - pos > 20) return bad("no length");
    uint64_t len = 0;
    auto [end, ec] = std::from_chars(data.data() + pos, data.data() + space, len);
    if (ec != std::errc() || end != data.data() + space) return bad("bad length");
    if (len < space - pos + 4 || len > data.size() - pos) return bad("length out of range");
    std::string_view record = data.substr(space + 1, pos + len - space - 1);
    if (record.back() != '\n') return bad("missing newline");
    record.remove_suffix(1);
    size_t eq = record.find('=');
    if (eq == std::string_view::npos || eq == 0) return bad("no keyword");
    records.push_back({std::string(record.substr(0, eq)), std::string(record.substr(eq + 1))});
    pos += len;
  }
  return records;
}

Result<uint64_t> ParsePaxUnsigned(std::string_view value, uint64_t max, std::string_view what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
    return Corrupt("bad pax " + std::string(what) + " \"" + std::string(value.substr(0, 40)) + "\"");
  }
  if (v > max) return Corrupt("pax " + std::string(what) + " out of range: " + std::to_string(v));
  return v;
}

Result<int64_t> ParsePaxTime(std::string_view value, std::string_view what) {
  std::string_view whole = value.substr(0, value.find('.'));
  int64_t v = 0;
  auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), v);
  if (whole.empty() || ec != std::errc() || end != whole.data() + whole.size()) {
    return Corrupt("bad pax " + std::string(what) + " \"" + std::string(value.substr(0, 40)) + "\"");
  }
  return v;
}

Status PaxHeaders::AddGlobal(std::string_view data, std::string_view where) {
  OCIFS_ASSIGN_OR_RETURN(std::vector<PaxRecord> records, ParsePaxRecords(data, where));
  for (PaxRecord& r : records) {
    if (r.value.empty()) {
      globals_.erase(r.key);
    } else {
      globals_[r.key] = std::move(r.value);
    }
  }
  return Status::Ok();
}

Status PaxHeaders::AddLocal(std::string_view data, std::string_view where) {
  OCIFS_ASSIGN_OR_RETURN(std::vector<PaxRecord> records, ParsePaxRecords(data, where));
  for (PaxRecord& r : records) locals_.push_back(std::move(r));
  return Status::Ok();
}

std::map<std::string, std::string> PaxHeaders::Effective() const {
  std::map<std::string, std::string> out = globals_;
  for (const PaxRecord& r : locals_) {
    if (r.value.empty()) {
      out.erase(r.key);
    } else {
      out[r.key] = r.value;
    }
  }
  return out;
}

}  // namespace ocifs
