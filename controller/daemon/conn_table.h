// The controller's side of the datapath's connection table (abi.h: sg_conn, its per-owner
// ring sg_conn_ring and the steered-flow index sg_conn_nat). The kernel creates and
// updates entries; this class only deletes the ones idle past SG_CONN_IDLE_NS
// (established) or SG_CONN_SHORT_NS (SYN sent, or both sides sent FIN), with the ring
// and NAT entries that still point at them, and the entries of slots given to new VMs.
// Work per sweep is bounded (kBatch entries read, at most kMaxDeletes deleted, resuming
// where the last step stopped), so a table of 500,000 entries never stalls the loop; each full pass publishes the
// live connections per owner. It also answers which steered flow a client ADDR:PORT
// (as the proxy sees it) is.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "core/ip_prefix.h"
#include "daemon/map_plan.h"
#include "daemon/maps.h"

namespace smtpgov::daemon {

// Idle for longer than its state allows, on the clock of bpf_ktime_get_ns()
// (CLOCK_MONOTONIC, core/clock.h mono_ns()). Pure.
bool conn_expired(const sg_conn& c, uint64_t now_ns);

// The connection key the client side ADDR:PORT of a steered flow names (sg_conn_nat).
sg_conn_nat_key nat_key(const Endpoint& client);
// The destination a connection was dialled to, as the VM sees it.
Endpoint original_dst(const sg_conn_key& k);

class ConnTable {
public:
    static constexpr uint32_t kBatch = 16384;       // sg_conn entries read per step
    static constexpr uint32_t kMaxDeletes = 4096;   // entries deleted per step (about 8 us each)
    static constexpr uint64_t kStepBudgetNs = 10'000'000;  // and no deleting past 10 ms

    // step_budget_ns: tests pass their own (a step's deletions stop on it, checked every 256)
    explicit ConnTable(Maps& maps, uint64_t step_budget_ns = kStepBudgetNs) : maps_(maps), budget_ns_(step_budget_ns) {}

    // Counts of the last complete pass.
    struct Counts {
        uint64_t tracked = 0, steered = 0;
        std::unordered_map<uint32_t, uint32_t> by_slot;       // registered VMs
        std::map<KeyBytes<sg_auto_key>, uint32_t> by_auto;    // auto entries
    };

    // One step of the pass: the next kBatch entries from where the last step stopped
    // (read when the previous batch is done with); the expired ones (and those of purged
    // slots) are deleted, at most kMaxDeletes per step. Returns the entries deleted.
    Result<uint32_t> step(uint64_t now_ns);
    // Entries owned by these slots and created before now_ns go at their next visit
    // (slots given to new VMs: the old owner's connections are not the new one's).
    void purge_slots(const std::set<uint32_t>& slots, uint64_t now_ns);

    const Counts& counts() const { return done_; }
    bool complete() const { return passes_ > 0; }  // counts() is from a whole pass
    uint32_t live(uint32_t slot) const;
    uint32_t live(const sg_auto_key& owner) const;
    uint64_t passes() const { return passes_; }
    uint64_t deleted() const { return deleted_; }  // entries this controller deleted

    struct Flow {
        sg_conn_key key{};
        sg_conn conn{};
    };
    // The live (not expired) steered connection whose client side is `client`.
    Result<std::optional<Flow>> steered_flow(const Endpoint& client, uint64_t now_ns);

private:
    Result<bool> remove_expired(const sg_conn_key& k, uint64_t now_ns);
    bool purged(const sg_conn& c) const;
    void count(const sg_conn& c);
    void finish_pass();

    struct Purge {
        uint64_t before_ns = 0;  // entries created before this go
        uint64_t pass = 0;       // the pass under way when it was asked for
    };

    Maps& maps_;
    uint64_t budget_ns_;
    BatchCursor cursor_;
    ConnEntries buf_;
    size_t pos_ = 0;                       // the next entry of buf_ to look at
    Counts counting_, done_;
    bool in_pass_ = false;
    uint64_t pass_id_ = 0;                 // passes started
    std::map<uint32_t, Purge> purge_;      // by slot
    uint64_t passes_ = 0, deleted_ = 0;    // passes completed, entries deleted
};

// Spam reports taken per steered connection (the policy service): at most kPerConn for
// one connection, so whoever can reach the service cannot turn one connection into an
// unbounded score. Remembers the newest kMaxConns connections.
class ReportLedger {
public:
    static constexpr uint32_t kPerConn = 32;
    static constexpr size_t kMaxConns = 65536;
    // Counts one report; false (and nothing counted) once the connection had kPerConn.
    bool take(const sg_conn_key& k, uint64_t created_ns);

private:
    using Id = std::pair<KeyBytes<sg_conn_key>, uint64_t>;  // a reused 5-tuple is a new connection
    std::map<Id, uint32_t> counts_;
    std::deque<Id> order_;
};

}  // namespace smtpgov::daemon
