// A host's own address records read back from etcd at start (core/address_fleet.h
// recover): what a lost state dir took away comes back from the fleet's copy.
#include "core/address_fleet.h"

namespace smtpgov::addrfleet {

Recovered recover(AddressHistory& h, dnsbl::Listings& l, const std::vector<HostRecord>& own, int64_t now_unix) {
    Recovered r;
    for (const HostRecord& rec : own) {
        for (const Holding& x : rec.holdings) r.holdings += h.restore(x, now_unix);
        for (const Complaint& c : rec.complaints) r.complaints += h.restore(c);
        for (const Listing& x : rec.listings) {
            const dnsbl::Lookup lookup{x.address, x.zone};
            // in force when shared: still in force here (restore skips it), or ended unseen
            const int64_t to = x.until_unix.value_or(std::max(now_unix, x.since_unix));
            r.listings += l.restore({lookup, x.holder, x.reason, x.since_unix, to, x.charged});
        }
    }
    return r;
}

}  // namespace smtpgov::addrfleet
