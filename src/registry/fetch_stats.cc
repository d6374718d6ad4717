#include "registry/fetch_stats.h"

namespace ocifs {

FetchStats& GlobalFetchStats() {
  static FetchStats stats;
  return stats;
}

}  // namespace ocifs
