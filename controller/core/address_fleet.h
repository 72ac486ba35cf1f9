// Address history shared through the fleet (DESIGN.md "Address reputation contract";
// README "Running a fleet"), as pure logic: the bucket an address falls in, the record
// one host writes for one bucket, its strict decoding, and the merge of other hosts'
// records into this host's ip.check / ip.show answer. No I/O here: svc/fleet_agent
// writes and reads the records, daemon/daemon_fleet.cpp merges.
//
// Layout (one writer per key: the host named in it):
//   <prefix>/addresses/<bucket>/hosts/<host>   this host's holdings, complaints and DNSBL
//                                              listings of addresses inside <bucket>
//   <prefix>/addresses/wide/hosts/<host>       its holdings of prefixes wider than a bucket
// A bucket is an IPv4 /24 or an IPv6 /48 in fixed-width text, "v4/203.000.113" or
// "v6/2001:0db8:0000", so that the buckets a prefix covers are one contiguous key range.
//
// Other hosts' records are evidence for ip.check / ip.show only: nothing read from them
// ever charges a VM (the reputation path never sees them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/address_history.h"
#include "core/dnsbl_listings.h"
#include "core/fleet.h"
#include "core/ip_prefix.h"
#include "core/result.h"

namespace smtpgov::addrfleet {

constexpr int kBucketLenV4 = 24, kBucketLenV6 = 48;
constexpr size_t kMaxEntries = 256;            // per kind (holdings, complaints, listings) per record
constexpr size_t kMaxWide = 1024;              // holdings in a host's wide record
constexpr size_t kMaxValueBytes = 512 * 1024;  // a longer value is refused when read
constexpr size_t kMaxText = 1024;              // a longer string is cut when written, refused when read
constexpr int64_t kMaxRead = 1000;             // records one ip.check / ip.show reads at most

// "v4/203.000.113" for an address or a prefix inside one bucket; nullopt for a prefix
// wider than a bucket.
std::optional<std::string> bucket_of(const IpPrefix& p);
bool wider_than_bucket(const IpPrefix& p);
// The key range [begin, end) holding every record of every bucket that `q` overlaps.
std::pair<std::string, std::string> bucket_range(const fleet::Keys& k, const IpPrefix& q);
std::string record_key(const fleet::Keys& k, const std::string& bucket, const std::string& host);  // bucket or "wide"
std::string wide_prefix(const fleet::Keys& k);  // every host's wide record
std::string records_prefix(const fleet::Keys& k);  // every record: "<prefix>/addresses/"
// key -> {bucket ("wide" for the wide record), host}; nullopt for a key of another shape.
std::optional<std::pair<std::string, std::string>> parse_key(const fleet::Keys& k, std::string_view key);

// A DNSBL listing as shared: listed now (until none) or ended. A listing in force
// carries the day its host last saw it listed (checked_unix, the start of that UTC day:
// the record changes once a day, not at every lookup); a record whose host stopped
// writing (a host taken out of the fleet) stops tainting taint_days after it. Records
// without it (older versions) count as listed now.
struct Listing {
    IpPrefix address;
    std::string zone, reason, holder;  // holder: "vm:<id>", "quarantine" or "none"
    int64_t since_unix = 0;
    std::optional<int64_t> until_unix;
    bool charged = false;
    std::optional<int64_t> checked_unix;  // in force only
    bool operator==(const Listing&) const = default;
};
// The checked_unix a record carries for a listing last seen listed at `unix`: the start
// of that UTC day (the daemon saves a re-check when this moves: daemon/dnsbl.cpp).
constexpr int64_t kCheckedDay = 86400;
constexpr int64_t checked_day(int64_t unix) { return unix - unix % kCheckedDay; }

struct HostRecord {
    std::string host;
    std::vector<Holding> holdings;
    std::vector<Complaint> complaints;
    std::vector<Listing> listings;
    bool operator==(const HostRecord&) const = default;
};

nlohmann::json to_json(const HostRecord& r);
// A value read from `key`: strict (version 1, the host the key names, every entry inside
// the bucket, bounded); the error names the key and what is wrong.
Result<HostRecord> decode(const fleet::Keys& k, const std::string& key, const std::string& value);

// This host's address history and DNSBL state, as the daemon's loop thread last changed
// them (handed to the fleet agent's writer, which makes the records).
struct AddressState {
    AddressHistory history;
    dnsbl::Listings listings;
    // This host's own records were read back from etcd and recovered into the history
    // (recover below): until then the writer writes nothing, so a host that lost its
    // state dir never overwrites the fleet's copy of its history with a shorter one.
    bool recovered = false;
};

// This host's own records as etcd held them at start, taken back into its history and
// DNSBL state where they are missing (a lost state dir; after a plain restart nothing is):
// holdings and complaints (AddressHistory::restore), and listings as ended ones (a
// listing still in force in a record but not here ends at now_unix: the next lookup says
// whether it still holds). Evidence only: nothing is charged again.
struct Recovered {
    size_t holdings = 0, complaints = 0, listings = 0;
    size_t total() const { return holdings + complaints + listings; }
};
Recovered recover(AddressHistory& h, dnsbl::Listings& l, const std::vector<HostRecord>& own, int64_t now_unix);

// Every record `host` writes from its history and DNSBL state: bucket (or "wide") ->
// value. Bounded: the newest kMaxEntries of each kind per bucket (holdings in force and
// listings in force first), kMaxWide wide holdings, and fewer (the oldest dropped) when
// that would not fit in kMaxValueBytes.
std::map<std::string, std::string> host_records(const AddressHistory& h, const dnsbl::Listings& l,
                                                const std::string& host);

// Records read for one question, decoded; refused ones with their errors.
struct FleetRead {
    std::vector<HostRecord> records;                        // other hosts' only
    std::vector<std::pair<std::string, std::string>> refused;  // key, error
};
FleetRead decode_all(const fleet::Keys& k, const std::vector<std::pair<std::string, std::string>>& kvs,
                     const std::string& self);

// This host's ip.check / ip.show answer (daemon/addresses.cpp) with the other hosts'
// evidence about `addr` added: each entry names the host that recorded it ("host"),
// tainted and the reasons count theirs within taint_days, and "fleet" says what was read.
nlohmann::json merge(nlohmann::json local, const FleetRead& read, const IpPrefix& addr, const std::string& self,
                     int64_t now_unix, int taint_days, bool show);

// Who held `addr` (a host address) at time t by the other hosts' records: the longest
// prefix, and the host that recorded it. For report.arf on a host that never held it.
std::optional<std::pair<Holding, std::string>> holder_at(const FleetRead& read, const IpPrefix& addr, int64_t t);

}  // namespace smtpgov::addrfleet
