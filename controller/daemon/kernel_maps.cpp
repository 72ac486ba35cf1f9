#include "daemon/kernel_maps.h"

namespace smtpgov::daemon {
namespace {

template <typename K>
Result<std::vector<uint8_t>> bytes_of(Result<std::vector<K>> keys) {
    if (!keys) return keys.error();
    std::vector<uint8_t> out(keys->size() * sizeof(K));
    if (!out.empty()) std::memcpy(out.data(), keys->data(), out.size());
    return out;
}

}  // namespace

// The kernel's batch position is a hash bucket index: stable across deletes, so a walk
// resumes where it stopped however the table changed meanwhile.
Status KernelMaps::conn_entries(BatchCursor& c, uint32_t max, ConnEntries& out) {
    bool done = false;
    if (auto s = reader_.conn_entries(*dp_, !c.started, c.token, max, out, done); !s) return s;
    c.started = true;
    c.done = done;
    return ok_status();
}

Result<std::vector<uint8_t>> KernelMaps::keys(MapId id) {
    switch (kern::kMaps[static_cast<size_t>(id)].key_size) {
    case sizeof(uint32_t): return bytes_of(kern::map_keys<uint32_t>(*dp_, id));
    case sizeof(sg_lpm_v4): return bytes_of(kern::map_keys<sg_lpm_v4>(*dp_, id));
    case sizeof(sg_lpm_v6): return bytes_of(kern::map_keys<sg_lpm_v6>(*dp_, id));
    case sizeof(sg_auto_key): return bytes_of(kern::map_keys<sg_auto_key>(*dp_, id));
    default: return Error::msg("list " + std::string(kern::map_name(id)) + ": not a keyed map");
    }
}

}  // namespace smtpgov::daemon
