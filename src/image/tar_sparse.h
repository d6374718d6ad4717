// Sparse files in tar: old GNU type 'S' headers and the PAX GNU.sparse
// formats 0.0, 0.1 and 1.0 (GNU tar manual, "Storing Sparse Files").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "image/pax_header.h"
#include "image/tar_entry.h"
#include "image/tar_reader.h"

namespace ocifs {

// Bound on the runs of one sparse map (and, for format 1.0, 1 MiB of map text).
inline constexpr size_t kMaxSparseRuns = size_t{1} << 20;

// Where a sparse file's map and data were found.
struct SparseInfo {
  std::vector<SparseRun> map;  // validated: sorted, disjoint, inside [0, real_size)
  uint64_t real_size = 0;      // logical size of the file
  uint64_t data_offset = 0;    // the packed data runs start here
};

// Old GNU 'S': the map in the header (copied into `header`, at `header_offset`)
// and its extension blocks; `size` is the header's size field (stored bytes).
[[nodiscard]] Result<SparseInfo> ReadOldGnuSparse(TarReader& reader, TarBlock header, uint64_t header_offset,
                                                  uint64_t size);

// True if the effective pax keywords describe a sparse file.
bool IsPaxSparse(const std::map<std::string, std::string>& pax);

// PAX GNU.sparse: formats 0.0 (GNU.sparse.offset/numbytes records, in `locals`
// order), 0.1 (GNU.sparse.map) and 1.0 (the map at the start of the data).
// `data_offset`/`size` are the entry's data offset and stored size.
// kUnsupported "sparse file X in tar is not supported (...)" for another version.
[[nodiscard]] Result<SparseInfo> ReadPaxSparse(TarReader& reader, const std::map<std::string, std::string>& pax,
                                               const std::vector<PaxRecord>& locals, const std::string& path,
                                               uint64_t data_offset, uint64_t size);

}  // namespace ocifs
