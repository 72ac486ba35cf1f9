// Maps over the loaded datapath: the kern layer's typed element I/O and batched reads.
#pragma once

#include "daemon/maps.h"
#include "kern/datapath.h"
#include "kern/map_io.h"

namespace smtpgov::daemon {

class KernelMaps final : public Maps {
public:
    explicit KernelMaps(const kern::Datapath& dp) : dp_(&dp) {}
    // After a program upgrade the new instance shares the same maps.
    void rebind(const kern::Datapath& dp) { dp_ = &dp; }

    uint32_t max_vms() const override { return dp_->max_vms(); }
    Status update(MapId id, const void* key, const void* value) override { return kern::map_update(*dp_, id, key, value); }
    Status remove(MapId id, const void* key) override { return kern::map_delete(*dp_, id, key); }
    Result<bool> lookup(MapId id, const void* key, void* value) override { return kern::map_lookup(*dp_, id, key, value); }
    Result<std::vector<uint8_t>> keys(MapId id) override;
    Status reset_slot(uint32_t slot) override { return kern::reset_slot(*dp_, slot); }
    Status vm_stats(uint32_t n, std::vector<sg_vm_stats>& out) override { return reader_.vm_stats(*dp_, n, out); }
    Result<sg_vm_stats> vm_stats_one(uint32_t slot) override { return reader_.vm_stats_one(*dp_, slot); }
    Status auto_entries(AutoEntries& out) override { return reader_.auto_entries(*dp_, out); }
    Result<GlobalCounters> global() override { return reader_.global(*dp_); }
    Status vm_buckets(uint32_t n, std::vector<sg_bucket>& out) override { return reader_.vm_buckets(*dp_, n, out); }
    Status conn_entries(BatchCursor& c, uint32_t max, ConnEntries& out) override;

private:
    const kern::Datapath* dp_;
    kern::MapReader reader_;
};

}  // namespace smtpgov::daemon
