// Address history (DESIGN.md "Address reputation contract"): which VM and tenant held
// each governed address or prefix, from when to when (wall-clock Unix seconds), and the
// feedback-loop complaints made about each address. Pure logic: the daemon's Controller
// owns the one instance, feeds it the VMs' addresses at every policy change and at start,
// and persists it (<state_dir>/address_history.json).
//
// A holding is the interval [from, to) in which one VM held one policy prefix; an open
// holding (to = none) is in force. An address inside a VM's prefix is held by that VM;
// when prefixes nest, the longest one wins.
//
// Bounded: at most kMaxHoldings holdings (open ones are never dropped; past the bound
// the closed holding that ended first goes) and kMaxComplaints complaints (past it the
// one with the oldest arrival goes). At 100,000 each the file stays near 20 MB.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ip_prefix.h"
#include "core/result.h"

namespace smtpgov {

struct Holding {
    IpPrefix prefix;
    std::string vm, tenant;
    int64_t from_unix = 0;
    std::optional<int64_t> to_unix;  // none: held now
    bool open() const { return !to_unix; }
    bool held_at(int64_t t) const { return from_unix <= t && (!to_unix || t < *to_unix); }
    bool operator==(const Holding&) const = default;
};

// One VM's addresses as a policy puts them in force.
struct HolderNow {
    std::string vm, tenant;
    std::vector<IpPrefix> prefixes;
};

struct Complaint {
    IpPrefix address;          // a host address
    int64_t arrival_unix = 0;  // when the reported message arrived (ARF Arrival-Date)
    int64_t received_unix = 0; // when smtpgovd took the report
    std::string vm, tenant;    // who held the address at arrival_unix
    std::string feedback_type, reporting_mta;
    bool operator==(const Complaint&) const = default;
};

class AddressHistory {
public:
    static constexpr size_t kMaxHoldings = 100'000;
    static constexpr size_t kMaxComplaints = 100'000;

    AddressHistory(size_t max_holdings = kMaxHoldings, size_t max_complaints = kMaxComplaints)
        : max_holdings_(max_holdings), max_complaints_(max_complaints) {}

    // The VMs' addresses in force from now_unix on: a (vm, prefix) no longer listed is
    // closed at now_unix, a new one opened (a tenant change closes and reopens). True when
    // anything changed.
    bool update(const std::vector<HolderNow>& now, int64_t now_unix);

    // Who held `addr` (a host address) at time t: the longest prefix containing it.
    std::optional<Holding> holder_at(const IpPrefix& addr, int64_t t) const;
    // Every holding of a prefix that overlaps `addr` (an address or a prefix), oldest first.
    std::vector<Holding> holdings_of(const IpPrefix& addr) const;

    // What this host recorded before and shared through the fleet, taken back after its
    // state dir was lost (core/address_fleet.h recover): what the history already holds
    // wins. A holding known by (prefix, VM, tenant, from) is left alone; an open one the
    // history reopened later (at start, the state lost) is held since the earlier time;
    // an open one no longer in force here is closed at the first later holding of an
    // overlapping prefix, else at now_unix. True when anything changed.
    bool restore(Holding h, int64_t now_unix);
    bool restore(const Complaint& c);  // false when the history holds it

    void add_complaint(Complaint c);
    // Complaints about addresses inside `addr` (or about `addr`), oldest arrival first.
    std::vector<Complaint> complaints_of(const IpPrefix& addr) const;
    size_t complaints_against(const std::string& vm) const;

    const std::vector<Holding>& holdings() const { return holdings_; }
    const std::vector<Complaint>& complaints() const { return complaints_; }

    nlohmann::json to_json() const;
    static Result<AddressHistory> from_json(const nlohmann::json& j);

private:
    void trim();

    size_t max_holdings_, max_complaints_;
    std::vector<Holding> holdings_;      // in the order they were opened
    std::vector<Complaint> complaints_;  // in the order they were taken
};

nlohmann::json to_json(const Holding& h);
nlohmann::json to_json(const Complaint& c);

}  // namespace smtpgov
