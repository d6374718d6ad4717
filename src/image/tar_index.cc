#include "image/tar_index.h"

#include <spdlog/spdlog.h>

#include <array>
#include <cstring>
#include <optional>

#include "image/pax_header.h"
#include "image/tar_header.h"
#include "image/tar_reader.h"
#include "image/tar_sparse.h"

namespace ocifs {
namespace {

// True for the types whose size counts data blocks after the header
// (as Go's archive/tar: links, devices, directories and fifos have none).
bool HasData(char typeflag) {
  switch (typeflag) {
    case '1': case '2': case '3': case '4': case '5': case '6': return false;
    default: return true;
  }
}

Result<EntryType> MapType(char typeflag, std::string_view raw_name) {
  switch (typeflag) {
    case '\0':
      // v7 marks a directory by a trailing slash on a regular entry.
      return !raw_name.empty() && raw_name.back() == '/' ? EntryType::kDirectory : EntryType::kFile;
    case '0': case '7': case 'S': return EntryType::kFile;
    case '1': return EntryType::kHardlink;
    case '2': return EntryType::kSymlink;
    case '3': return EntryType::kCharDevice;
    case '4': return EntryType::kBlockDevice;
    case '5': case 'D': return EntryType::kDirectory;  // 'D': GNU dump directory (its data is skipped)
    case '6': return EntryType::kFifo;
    default:
      // POSIX: an unrecognized type is read as a regular file.
      spdlog::debug("tar: unknown type flag 0x{:02x} for {}: read as a regular file",
                    static_cast<unsigned>(static_cast<uint8_t>(typeflag)), raw_name);
      return EntryType::kFile;
  }
}

// Applies pax keywords over the header fields.
Status ApplyPax(const std::map<std::string, std::string>& pax, TarHeader& h, std::string& name, std::string& link) {
  for (const auto& [key, value] : pax) {
    if (key == "path") {
      name = value;
    } else if (key == "linkpath") {
      link = value;
    } else if (key == "size") {
      OCIFS_ASSIGN_OR_RETURN(h.size, ParsePaxUnsigned(value, kMaxTarSize, "size"));
    } else if (key == "uid") {
      OCIFS_ASSIGN_OR_RETURN(uint64_t v, ParsePaxUnsigned(value, UINT32_MAX, "uid"));
      h.uid = static_cast<uint32_t>(v);
    } else if (key == "gid") {
      OCIFS_ASSIGN_OR_RETURN(uint64_t v, ParsePaxUnsigned(value, UINT32_MAX, "gid"));
      h.gid = static_cast<uint32_t>(v);
    } else if (key == "mtime") {
      OCIFS_ASSIGN_OR_RETURN(h.mtime, ParsePaxTime(value, "mtime"));
    } else if (key == "GNU.sparse.name") {
      name = value;
    }
  }
  return Status::Ok();
}

}  // namespace

TarIndex TarIndex::Empty(std::string source_name) {
  TarIndex index;
  index.complete_ = true;
  index.source_name_ = std::move(source_name);
  return index;
}

Result<TarIndex> TarIndex::Build(const ByteSource& layer, const TarIndexOptions& options) {
  TarIndex index;
  index.source_name_ = layer.Describe();
  const bool size_known = layer.size() != ByteSource::kUnknownSize;
  TarReader reader(layer);
  PaxHeaders pax;
  std::optional<std::string> long_name, long_link;
  bool meta_pending = false;   // extended headers read, their entry not yet
  uint64_t last_data_end = 0;  // end of the last entry's data: must exist
  std::string last_what;
  uint64_t offset = options.start_offset;
  uint64_t entry_start = offset;  // the first header of the entry being read

  while (true) {
    OCIFS_ASSIGN_OR_RETURN(bool got, reader.ReadBlock(offset));
    if (!got) {  // clean EOF: fine after a complete entry
      if (meta_pending) return Corrupt(reader.Where(offset) + ": archive ends after an extended header");
      OCIFS_RETURN_IF_ERROR(reader.RequireEnd(last_data_end, last_what));
      index.complete_ = true;
      break;
    }
    if (TarHeader::IsZeroBlock(reader.block())) {
      if (meta_pending) return Corrupt(reader.Where(offset) + ": end of archive after an extended header");
      // Normally a second zero block follows; whatever follows, the archive has ended.
      auto more = reader.ReadBlock(offset + kTarBlockSize);
      if (more.ok() && *more && !TarHeader::IsZeroBlock(reader.block())) {
        spdlog::warn("{}: a lone zero block ends the archive", reader.Where(offset));
      }
      index.complete_ = true;
      break;
    }
    std::array<uint8_t, kTarBlockSize> header_copy;
    std::memcpy(header_copy.data(), reader.block().data(), kTarBlockSize);
    const std::string where = reader.Where(offset);
    OCIFS_ASSIGN_OR_RETURN(TarHeader h, TarHeader::Parse(reader.block(), where));
    const uint64_t data_offset = offset + kTarBlockSize;
    if (data_offset > kMaxTarSize) return Corrupt(where + ": archive too large");

    if (!meta_pending) entry_start = offset;
    // Metadata headers: read their (bounded) data and apply them to the next entry.
    if (h.typeflag == 'L' || h.typeflag == 'K' || h.typeflag == 'x' || h.typeflag == 'g') {
      if (h.size > kMaxMetadataSize) {
        return Corrupt(where + ": " + std::string(1, h.typeflag) + " header of " + std::to_string(h.size) +
                       " bytes exceeds the 1 MiB limit");
      }
      OCIFS_ASSIGN_OR_RETURN(std::string data, reader.ReadBytes(data_offset, h.size, "extended header"));
      if (h.typeflag == 'L' || h.typeflag == 'K') {
        data.resize(std::strlen(data.c_str()));
        (h.typeflag == 'L' ? long_name : long_link) = std::move(data);
        meta_pending = true;
      } else if (h.typeflag == 'x') {
        OCIFS_RETURN_IF_ERROR(pax.AddLocal(data, where));
        meta_pending = true;
      } else {
        OCIFS_RETURN_IF_ERROR(pax.AddGlobal(data, where));
      }
      offset = data_offset + TarPadded(h.size);
      continue;
    }
    if (h.typeflag == 'M') return Unsupported(where + ": multi-volume tar archives are not supported");

    std::map<std::string, std::string> effective = pax.Effective();
    std::string raw_name = long_name ? *long_name : h.name;
    std::string raw_link = long_link ? *long_link : h.linkname;
    Status applied = ApplyPax(effective, h, raw_name, raw_link);
    if (!applied.ok()) return applied.WithContext(where);
    if (raw_name.find('\0') != std::string::npos || raw_link.find('\0') != std::string::npos) {
      return Corrupt(where + ": entry name contains a NUL byte");
    }
    const uint64_t data_size = HasData(h.typeflag) ? h.size : 0;
    uint64_t next = data_offset + TarPadded(data_size);

    if (h.typeflag == 'V' || h.typeflag == 'N') {  // GNU volume label, old GNU long-name list: not files
      pax.ClearLocals();
      long_name.reset();
      long_link.reset();
      meta_pending = false;
      offset = next;
      continue;
    }

    TarEntry e;
    e.path = NormalizePath(raw_name);
    OCIFS_ASSIGN_OR_RETURN(e.type, MapType(h.typeflag, raw_name));
    e.mode = h.mode;
    e.uid = h.uid;
    e.gid = h.gid;
    e.mtime = h.mtime;
    e.dev_major = h.dev_major;
    e.dev_minor = h.dev_minor;
    e.header_offset = entry_start;
    if (e.type == EntryType::kSymlink) e.link_target = raw_link;
    if (e.type == EntryType::kHardlink) e.link_target = NormalizePath(raw_link);
    const std::string what = "entry " + e.path + " (" + std::to_string(data_size) + " bytes at offset " +
                             std::to_string(data_offset) + ")";

    if (h.typeflag == 'S') {
      OCIFS_ASSIGN_OR_RETURN(SparseInfo info, ReadOldGnuSparse(reader, header_copy, offset, data_size));
      e.sparse = true;
      e.sparse_map = std::move(info.map);
      e.size = info.real_size;
      e.data_offset = info.data_offset;
      next = info.data_offset + TarPadded(data_size);
    } else if (e.type == EntryType::kFile && IsPaxSparse(effective)) {
      OCIFS_ASSIGN_OR_RETURN(SparseInfo info,
                             ReadPaxSparse(reader, effective, pax.locals(), e.path, data_offset, data_size));
      e.sparse = true;
      e.sparse_map = std::move(info.map);
      e.size = info.real_size;
      e.data_offset = info.data_offset;
    } else {
      e.size = e.type == EntryType::kFile ? data_size : 0;
      e.data_offset = data_offset;
    }
    last_data_end = next - TarPadded(data_size) + data_size;
    last_what = what;
    if (size_known && !options.single_entry) OCIFS_RETURN_IF_ERROR(reader.RequireEnd(last_data_end, what));

    pax.ClearLocals();
    long_name.reset();
    long_link.reset();
    meta_pending = false;
    offset = next;
    index.entries_.push_back(std::move(e));
    if (options.single_entry || (options.on_entry && !options.on_entry(index.entries_.back()))) {
      index.complete_ = false;
      break;
    }
  }
  return index;
}

}  // namespace ocifs
