// DNSBL listing state per address x zone, and the rule of who is charged (pure logic;
// the daemon's Controller owns the one instance, applies every answer on its loop
// thread and persists it as <state_dir>/dnsbl.json, so a restart charges nothing twice).
//
// Tenure rule: a listing is charged (policy weight dnsbl_listing) only to a VM that holds
// the address and only when the listing appeared during its tenure: the address was
// looked up clean (NXDOMAIN) while that VM held it, and then listed. A listing present at
// the first good answer after the address changed holder (or at the first lookup ever)
// predates the holder: it is announced, counted and makes the address tainted, but
// charges nobody. Quarantine egress addresses (policy proxy.egress) and addresses of no
// VM charge nobody either. An error answer changes nothing (no listing, no delisting).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dnsbl.h"
#include "core/result.h"

namespace smtpgov::dnsbl {

struct Holder {
    enum class Kind { None, Vm, Quarantine };
    Kind kind = Kind::None;
    std::string vm, tenant;  // Kind::Vm
    std::string key() const;  // "vm:<id>", "quarantine", "none"
    std::string label() const;  // "vm", "quarantine", "none" (metric label)
};

struct State {
    Lookup lookup;
    std::string holder = "none";  // Holder::key() at the last good answer
    bool clean_seen = false;      // an NXDOMAIN while `holder` held the address
    bool listed = false;
    int64_t since_unix = 0;       // listed since (the first answer that said so)
    int64_t checked_unix = 0;     // the last good answer
    std::vector<std::string> codes;
    std::string reason;           // TXT
    bool charged = false;         // this listing was charged to `holder`
    bool predates = false;        // this listing was there before `holder`'s first clean answer
    bool operator==(const State&) const = default;
};

// A listing that ended (delisted, or the address no longer monitored).
struct PastListing {
    Lookup lookup;
    std::string holder, reason;
    int64_t from_unix = 0, to_unix = 0;
    bool charged = false;
    bool operator==(const PastListing&) const = default;
};

enum class Change { None, Listed, Delisted };

struct Outcome {
    Change change = Change::None;
    bool charge = false;  // one dnsbl_listing signal against the holder VM
    State state;          // after the answer
    std::string previous_holder;  // when the holder changed with this answer
};

class Listings {
public:
    static constexpr size_t kMaxPast = 10'000;

    // One judged answer for a lookup whose address `holder` holds now.
    Outcome apply(const Lookup& l, const Holder& holder, const Verdict& v, int64_t now_unix);
    // Forgets lookups no longer made (a listing among them ends now, "no longer monitored").
    void retain(const std::set<Lookup>& lookups, int64_t now_unix);

    // A listing that ended, as this host shared it through the fleet, taken back after
    // its state dir was lost (core/address_fleet.h recover). False when already known
    // (by lookup, holder and start: past, or in force here).
    bool restore(const PastListing& p);
    // Listed now, of addresses inside `within`; every listed state.
    std::vector<State> listed_in(const IpPrefix& within) const;
    std::vector<State> listed() const;
    // Listings of addresses inside `within` that ended at or after since_unix.
    std::vector<PastListing> ended_in(const IpPrefix& within, int64_t since_unix) const;
    // Addresses listed now, by zone and holder label ("vm", "quarantine", "none").
    std::map<std::pair<std::string, std::string>, size_t> counts() const;
    const std::map<Lookup, State>& states() const { return states_; }
    const std::vector<PastListing>& past() const { return past_; }  // oldest end first

    nlohmann::json to_json() const;
    static Result<Listings> from_json(const nlohmann::json& j);

private:
    void end(State& s, int64_t now_unix);

    std::map<Lookup, State> states_;
    std::vector<PastListing> past_;  // oldest end first; at most kMaxPast
};

nlohmann::json to_json(const State& s);
nlohmann::json to_json(const PastListing& p);

}  // namespace smtpgov::dnsbl
