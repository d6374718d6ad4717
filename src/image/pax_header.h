// PaxHeaders: POSIX pax extended header records ('x' per file, 'g' global).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

struct PaxRecord {
  std::string key;
  std::string value;
};

// Parses the data of an extended header: records "<len> <key>=<value>\n",
// where <len> counts the whole record. Trailing NUL padding is ignored.
// kCorrupt (prefixed with `where`) for a malformed record.
[[nodiscard]] Result<std::vector<PaxRecord>> ParsePaxRecords(std::string_view data, std::string_view where);

// A decimal value of a record, at most `max`.
[[nodiscard]] Result<uint64_t> ParsePaxUnsigned(std::string_view value, uint64_t max, std::string_view what);
// A time value ("-12", "1700000000.123456"): whole seconds, fraction dropped.
[[nodiscard]] Result<int64_t> ParsePaxTime(std::string_view value, std::string_view what);

// The pax state while walking an archive (POSIX semantics): a 'g' header sets
// or, with an empty value, deletes global keywords for all following entries;
// 'x' headers apply to the next entry only, where an empty value deletes the
// keyword (the ustar field is used instead).
// Thread safety: not safe for concurrent use.
class PaxHeaders {
 public:
  [[nodiscard]] Status AddGlobal(std::string_view data, std::string_view where);
  [[nodiscard]] Status AddLocal(std::string_view data, std::string_view where);

  // The keywords in effect for the next entry.
  std::map<std::string, std::string> Effective() const;
  // The 'x' records for the next entry, in order (GNU sparse 0.0 repeats keys).
  const std::vector<PaxRecord>& locals() const { return locals_; }
  // Called after each entry.
  void ClearLocals() { locals_.clear(); }

 private:
  std::map<std::string, std::string> globals_;
  std::vector<PaxRecord> locals_;
};

}  // namespace ocifs
