// DNSBL monitoring (DESIGN.md "Address reputation contract"), the pure half: the
// daemon config's "dnsbl" section, which addresses are looked up in which zone and under
// what name, and what an answer means. No I/O here: svc/dnsbl_resolver.h asks the
// resolver, core/dnsbl_schedule.h decides when, core/dnsbl_listings.h keeps the state.
//
// What an answer means (think of a hijacking resolver and of Spamhaus' error codes):
//   A record(s), all in 127.0.0.0/8        listed (the codes say why; TXT is the reason)
//   an A in 127.255.255.0/24                error: the list refuses this resolver
//                                            (Spamhaus 252 typo, 254 public resolver,
//                                            255 rate-limited): never a listing
//   an A outside 127.0.0.0/8                error: a resolver that rewrites NXDOMAIN
//   a listing while the zone lists 127.0.0.1 error: the zone lists the world (RFC 5782)
//   NXDOMAIN                                 not listed
//   anything else (NODATA, SERVFAIL, REFUSED, timeout, malformed, resolver down; a
//   truncated answer is asked again over TCP, and fails as one of these)
//                                            error: the state stays as it was
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ip_prefix.h"
#include "core/result.h"

namespace smtpgov::dnsbl {

struct Zone {
    std::string name;   // "zen.spamhaus.org" (no trailing dot)
    bool ipv6 = false;  // the zone lists IPv6 addresses (nibble names)
    bool operator==(const Zone&) const = default;
};

// The daemon config's "dnsbl" object.
struct Options {
    std::vector<Zone> zones;
    std::optional<Endpoint> resolver;  // required when zones are set
    uint32_t interval_s = 3600;
    uint32_t queries_per_s = 10;
    uint32_t max_per_prefix = 256;
    bool enabled() const { return !zones.empty(); }
};
// {} or null: off. Errors name the key ("dnsbl/zones/1/zone: ...").
Result<Options> parse_options(const nlohmann::json& v);

// One address looked up in one zone.
struct Lookup {
    IpPrefix address;  // a host address
    std::string zone;
    auto operator<=>(const Lookup&) const = default;
};

// "7.113.0.203.zen.spamhaus.org"; IPv6: 32 nibbles, least significant first. None for
// an IPv6 address in a zone that lists IPv4 only, or for a prefix.
std::optional<std::string> query_name(const IpPrefix& host, const Zone& z);

// The first `max` host addresses of a prefix (all of a shorter one); a host is itself.
std::vector<IpPrefix> hosts_of(const IpPrefix& p, uint32_t max);

// Every lookup of these addresses (hosts or prefixes) in every zone that takes them.
std::vector<Lookup> lookups_of(const std::vector<IpPrefix>& addresses, const std::vector<Zone>& zones,
                               uint32_t max_per_prefix);

// What the resolver said, before it is judged.
struct Answer {
    // A truncated (TC) answer is asked again over TCP by c-ares; when that fails too it
    // is Unreachable or Timeout.
    enum class Status { Ok, NxDomain, NoData, ServFail, Refused, Timeout, Malformed, Unreachable, Other };
    Status status = Status::Other;
    std::vector<std::string> a;    // dotted quads of the A records (Status::Ok)
    uint32_t ttl_s = 0;            // the smallest TTL of the A records
    std::vector<std::string> txt;  // TXT strings of the same name, when asked
    std::string detail;            // the resolver library's words, for errors
    // With a listing, the zone's 127.0.0.1 (RFC 5782: never listed) is asked at once: a
    // zone that lists it lists the world, and this listing is not believed.
    std::optional<Status> control;          // how that lookup went (none: not asked)
    std::vector<std::string> control_a;     // its A records
};

enum class Kind { Listed, NotListed, Error };

struct Verdict {
    Kind kind = Kind::Error;
    std::vector<std::string> codes;  // the A records of a listing
    std::string reason;              // TXT strings joined by "; "
    std::string error;               // why an answer is an error
    bool list_refuses = false;       // 127.255.255.x: the list refuses this resolver
    std::string label;               // smtpgov_dnsbl_queries_total{result}: a fixed set
};
Verdict classify(const Answer& a);

// RFC 5782 test entries: every IPv4 list lists 127.0.0.2 and never 127.0.0.1. Each zone's
// two are looked up with the governed addresses, and their answers gate the others:
//   127.0.0.1 listed     the zone lists the world (a list shut down with a wildcard, or a
//                        lying resolver): its listings are errors, never charged
//   127.0.0.2 not listed the zone's answers do not reach us (a resolver that says
//                        NXDOMAIN to everything): its "not listed" are errors, never a
//                        delisting
// Unknown (not answered yet, or an error) gates nothing.
struct ZoneCheck {
    std::optional<bool> lists_127_0_0_1, lists_127_0_0_2;
    bool operator==(const ZoneCheck&) const = default;
};
std::vector<Lookup> test_lookups(const std::vector<Zone>& zones);
// 127.0.0.1 or 127.0.0.2: a test entry, not a governed address.
bool is_test_entry(const IpPrefix& host);
// What a test entry's answer says about its zone (an error says nothing).
void note_test_answer(ZoneCheck& z, const IpPrefix& entry, const Verdict& v);
// The verdict about a governed address, judged by what its zone's test entries said.
Verdict gated(const Verdict& v, const ZoneCheck& z);

// Every value label() can take, for metrics that start at 0.
const std::vector<std::string_view>& result_labels();

}  // namespace smtpgov::dnsbl
