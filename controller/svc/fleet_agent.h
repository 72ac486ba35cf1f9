// A daemon's side of the fleet (DESIGN.md "Fleet contract"): two threads and an etcd
// client each.
//   watcher  reads and then watches <prefix>/policy/global, this host's value and the
//            tenants it runs; hands a policy to apply (global + this host's value, serials
//            matching, with the records of its tenants) and other writers' records to
//            the daemon through the callbacks (which post to the loop thread).
//   writer   keeps <prefix>/hosts/<host>/live under a lease, writes the status and this
//            host's VM records (core/fleet.h Outbox: changes only, at most one batch a
//            second, at once on a tier change), each by compare-and-swap on the
//            revision it last saw; a lost race is resolved by fleet::resolve and
//            written again.
//            It also writes this host's address records (core/address_fleet.h: one key
//            per bucket, changes only) from the history and DNSBL state it is offered.
// etcd away: both retry with backoff; nothing here ever changes what the datapath
// enforces, and offered records wait in the outbox until etcd is back.
// FleetAddressReader answers ip.check / ip.show on a control worker's thread, with a
// client of its own, never on the loop thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/address_fleet.h"
#include "core/fleet.h"
#include "svc/etcd.h"

namespace smtpgov::svc {

struct FleetCallbacks {
    // A policy for this host (global + host value put together), its serial and the
    // global value's revision, and the shared records of every tenant it names.
    std::function<void(nlohmann::json policy, int64_t serial, int64_t revision, std::vector<fleet::Record> records)>
        on_policy;
    // Records of this host's tenants written by anyone (this host included).
    std::function<void(std::vector<fleet::Record> records)> on_records;
    // (on_policy and on_records: once the controller has taken the records in, the daemon
    // calls FleetAgent::taken_in with their VMs. Until then what it offers for them was
    // made before it knew them, and is not written over them.)
    std::function<void(const std::string& what, bool up)> on_connectivity;  // etcd reachable or not
    // This host's own address records as etcd held them at start (read once, before the
    // writer writes any): the daemon recovers what its history lacks and then offers an
    // AddressState with `recovered` set. Refused ones: key, error.
    std::function<void(std::vector<addrfleet::HostRecord> own,
                       std::vector<std::pair<std::string, std::string>> refused)>
        on_own_addresses;
};

struct FleetStats {
    bool etcd_up = false;
    double watch_lag_s = 0;         // the newest record received: now - its updated_at
    uint64_t writes_reputation = 0; // records written
    uint64_t txns = 0;              // write requests (txn or put) sent
    uint64_t write_conflicts = 0;   // compare-and-swap lost, resolved and written again
    uint64_t hosts_live = 0, hosts_lost = 0;  // from the last scan of <prefix>/hosts/
    size_t outbox = 0;              // records waiting to be written
    uint64_t writes_addresses = 0;  // address records written or deleted
    size_t addresses_pending = 0;   // address records waiting to be written or deleted
};


// The etcd client options a fleet config names (endpoints, TLS, user) with its password.
etcd::Options etcd_options(const fleet::Options& opts, std::string password);

// Every host's address records about an address or prefix (fleet_addresses.cpp).
// Immutable once made: any thread may use it at once (each read has its own client).
class FleetAddressReader {
public:
    FleetAddressReader(const fleet::Options& opts, std::string password);
    // (key, value) of every record of the buckets q overlaps, and with `wide` every host's
    // wide record. An error when etcd cannot be read ("fleet history unavailable: ...")
    // or holds more than addrfleet::kMaxRead of them.
    Result<std::vector<std::pair<std::string, std::string>>> read(const IpPrefix& q, bool wide) const;
    const fleet::Keys& keys() const { return keys_; }
    const std::string& host() const { return host_; }

private:
    etcd::Options etcd_;
    fleet::Keys keys_;
    std::string host_;
};

class FleetAgent {
public:
    static std::unique_ptr<FleetAgent> start(fleet::Options opts, std::string password, std::string version,
                                             FleetCallbacks cb);
    ~FleetAgent();

    // From the loop thread.
    void set_tenants(std::set<std::string> tenants);  // tenants with VMs here ("" = none)
    void offer(const std::vector<fleet::Record>& now, double half_life_s);  // this host's VMs now
    void forget(const std::vector<std::string>& vms);                        // left this host
    void taken_in(const std::vector<std::string>& vms);  // records handed over, now in the controller
    void set_status(const fleet::HostStatus& s);
    void offer_addresses(std::shared_ptr<const addrfleet::AddressState> s);  // after a change
    FleetStats stats() const;

private:
    FleetAgent() = default;
    void watch_loop();
    void write_loop();
    bool sync(etcd::Client& c, int64_t& revision);  // full read; false: etcd away
    void policy_changed(etcd::Client& c);
    bool read_policy(etcd::Client& c);
    std::vector<fleet::Record> read_tenant(etcd::Client& c, const std::string& tenant, int64_t* revision);
    void received(std::vector<fleet::Record> recs);                // from the watch: lag, then hand_over
    void hand_over(std::vector<fleet::Record> recs);               // counted, then to on_records
    void handing_over(const std::vector<fleet::Record>& recs);     // counted in unabsorbed_
    void write_records(etcd::Client& c, int64_t now_ms);
    bool write_resolved(etcd::Client& c, fleet::Outbox::Write w, double half_life, int64_t now_ms);
    void keep_live(etcd::Client& c, int64_t now_ms);
    void scan_hosts(etcd::Client& c);
    void write_addresses(etcd::Client& c);
    bool read_own_addresses(etcd::Client& c);
    etcd::Options client_options() const;
    void set_up(bool up, const std::string& what);

    fleet::Options opts_;
    fleet::Keys keys_;
    std::string password_, version_;
    FleetCallbacks cb_;
    std::atomic<bool> stop_{false}, rewatch_{false};
    std::thread watcher_, writer_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::set<std::string> tenants_;          // watched
    std::set<std::string> tenants_loaded_;   // read whole since the last (re)watch
    fleet::Outbox outbox_;
    // VM -> its key's mod revision as this host last wrote or read it for a write: the
    // compare of the next write, so another writer's change since is resolved with ours
    // (never overwritten by an offer made before the controller knew it).
    std::unordered_map<std::string, int64_t> cas_rev_;
    // VM -> its key's mod revision as the watcher last delivered it (replays dropped).
    std::unordered_map<std::string, int64_t> seen_rev_;
    // VM -> records handed to the daemon and not yet taken in (taken_in): offers for it
    // are ignored meanwhile (made before the controller knew the record).
    std::unordered_map<std::string, int> unabsorbed_;
    std::unordered_map<std::string, std::string> tenant_of_;
    std::optional<fleet::HostStatus> status_;
    bool status_dirty_ = false;
    int64_t lease_ = 0, next_live_ms_ = 0;  // writer thread only: the live key's lease
    int64_t applied_serial_ = -1;  // watcher thread only: the serial last handed over
    nlohmann::json global_, share_;  // watcher thread only: the policy keys as last seen
    int64_t global_rev_ = 0;
    int64_t global_known_ = 0, share_known_ = 0;  // watcher thread only: revision each is known as of
    FleetStats stats_;
    double half_life_s_ = 600;
    std::shared_ptr<const addrfleet::AddressState> addr_offered_;  // guarded by mu_: not yet turned into records
    std::map<std::string, std::string> addr_want_;     // writer thread only: bucket -> value to hold
    std::map<std::string, std::string> addr_have_;     // writer thread only: what etcd holds
    bool addr_read_ = false;   // writer thread only: this host's records read back (addr_have_ from them)
    bool addr_ready_ = false;  // writer thread only: addr_want_ is from a recovered AddressState
};

}  // namespace smtpgov::svc
