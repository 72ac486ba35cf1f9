#include "core/dnsbl.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <set>

namespace smtpgov::dnsbl {

using nlohmann::json;

namespace {

// "" when `name` is a DNS name of dot-separated labels of [A-Za-z0-9_-], else why not.
std::string zone_problem(const std::string& name) {
    if (name.empty()) return "must not be empty";
    if (name.size() > 200) return "is longer than 200 characters (the query name adds up to 64)";
    size_t label = 0;
    for (char ch : name) {
        if (ch == '.') {
            if (label == 0) return "\"" + name + "\" has an empty label";
            label = 0;
            continue;
        }
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_')
            return "\"" + name + "\" is not a DNS name (letters, digits, '-', '_' and dots)";
        if (++label > 63) return "\"" + name + "\" has a label longer than 63 characters";
    }
    if (label == 0) return "\"" + name + "\" has an empty label";
    return "";
}

Result<Zone> parse_zone(const json& z, const std::string& at) {
    Zone out;
    if (z.is_string()) {
        out.name = z.get<std::string>();
    } else if (z.is_object()) {
        for (auto& [k, _] : z.items())
            if (k != "zone" && k != "ipv6") return Error::msg(at + "/" + k + ": unknown key (zone, ipv6)");
        if (!z.contains("zone") || !z["zone"].is_string()) return Error::msg(at + "/zone: required, a zone name");
        out.name = z["zone"].get<std::string>();
        if (z.contains("ipv6")) {
            if (!z["ipv6"].is_boolean()) return Error::msg(at + "/ipv6: must be true or false");
            out.ipv6 = z["ipv6"].get<bool>();
        }
    } else {
        return Error::msg(at + ": must be a zone name or {\"zone\": NAME, \"ipv6\": true}");
    }
    if (out.name.size() > 1 && out.name.back() == '.') out.name.pop_back();
    if (auto why = zone_problem(out.name); !why.empty())
        return Error::msg(at + (z.is_object() ? "/zone" : "") + ": " + why);
    std::transform(out.name.begin(), out.name.end(), out.name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return out;
}

Status parse_count(const json& v, const char* key, uint32_t min, uint32_t max, uint32_t& out) {
    if (!v.contains(key)) return ok_status();
    const json& n = v[key];
    if (!n.is_number_unsigned() || n.get<uint64_t>() < min || n.get<uint64_t>() > max)
        return Error::msg(std::string("dnsbl/") + key + ": must be an integer " + std::to_string(min) + ".." +
                          std::to_string(max));
    out = n.get<uint32_t>();
    return ok_status();
}

}  // namespace

Result<Options> parse_options(const json& v) {
    Options o;
    if (v.is_null() || (v.is_object() && v.empty())) return o;
    if (!v.is_object()) return Error::msg("dnsbl: must be an object");
    for (auto& [k, _] : v.items())
        if (k != "zones" && k != "resolver" && k != "interval_s" && k != "queries_per_s" && k != "max_per_prefix")
            return Error::msg("dnsbl/" + k + ": unknown key (zones, resolver, interval_s, queries_per_s, max_per_prefix)");
    if (!v.contains("zones") || !v["zones"].is_array() || v["zones"].empty())
        return Error::msg("dnsbl/zones: required, a list of zones (\"zen.spamhaus.org\" or {\"zone\": NAME, \"ipv6\": true})");
    std::set<std::string> seen;
    for (size_t i = 0; i < v["zones"].size(); ++i) {
        const std::string at = "dnsbl/zones/" + std::to_string(i);
        auto z = parse_zone(v["zones"][i], at);
        if (!z) return z.error();
        if (!seen.insert(z->name).second) return Error::msg(at + ": \"" + z->name + "\" is listed twice");
        o.zones.push_back(*z);
    }
    if (!v.contains("resolver") || !v["resolver"].is_string())
        return Error::msg("dnsbl/resolver: required, the resolver's ADDR:PORT (\"127.0.0.1:53\", \"[::1]:53\"); "
                          "the big lists refuse public resolvers");
    auto r = Endpoint::parse(v["resolver"].get<std::string>());
    if (!r) return Error::msg("dnsbl/resolver: must be ADDR:PORT or [IPv6]:PORT (" + r.error().message + ")");
    if (r->port == 0) return Error::msg("dnsbl/resolver: port 0 is not a resolver's port");
    o.resolver = *r;
    if (auto s = parse_count(v, "interval_s", 1, 7 * 86400, o.interval_s); !s) return s.error();
    if (auto s = parse_count(v, "queries_per_s", 1, 1000, o.queries_per_s); !s) return s.error();
    if (auto s = parse_count(v, "max_per_prefix", 1, 65536, o.max_per_prefix); !s) return s.error();
    return o;
}

std::optional<std::string> query_name(const IpPrefix& host, const Zone& z) {
    if (!host.is_host()) return std::nullopt;
    std::string out;
    if (host.family == IpPrefix::Family::V4) {
        for (int i = 3; i >= 0; --i) out += std::to_string(host.addr[i]) + ".";
        return out + z.name;
    }
    if (!z.ipv6) return std::nullopt;
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
        out += kHex[host.addr[i] & 0xf];
        out += '.';
        out += kHex[host.addr[i] >> 4];
        out += '.';
    }
    return out + z.name;
}

std::vector<IpPrefix> hosts_of(const IpPrefix& p, uint32_t max) {
    std::vector<IpPrefix> out;
    IpPrefix h = p.masked();
    const int host_bits = p.max_len() - p.len;
    const uint64_t count = host_bits >= 32 ? std::numeric_limits<uint64_t>::max() : uint64_t{1} << host_bits;
    h.len = static_cast<uint8_t>(p.max_len());
    const size_t last = p.family == IpPrefix::Family::V4 ? 3 : 15;
    for (uint64_t i = 0; i < count && i < max; ++i) {
        out.push_back(h);
        for (size_t b = last + 1; b-- > 0;)  // h + 1, carrying
            if (++h.addr[b] != 0) break;
    }
    return out;
}

std::vector<Lookup> lookups_of(const std::vector<IpPrefix>& addresses, const std::vector<Zone>& zones,
                               uint32_t max_per_prefix) {
    std::set<Lookup> out;
    for (const IpPrefix& p : addresses)
        for (const IpPrefix& h : hosts_of(p, max_per_prefix))
            for (const Zone& z : zones)
                if (query_name(h, z)) out.insert({h, z.name});
    return {out.begin(), out.end()};
}

namespace {

Verdict error(std::string why, std::string label) {
    Verdict v;
    v.error = std::move(why);
    v.label = std::move(label);
    return v;
}

// 127.a.b.c -> true; any other dotted quad (or garbage) -> false
bool in_loopback8(const std::string& quad, bool& list_refuses) {
    auto p = IpPrefix::parse(quad);
    if (!p || p->family != IpPrefix::Family::V4 || !p->is_host()) return false;
    if (p->addr[0] != 127) return false;
    list_refuses = list_refuses || (p->addr[1] == 255 && p->addr[2] == 255);
    return true;
}

std::string joined(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& s : parts) out += (out.empty() ? "" : "; ") + s;
    return out;
}

}  // namespace

Verdict classify(const Answer& a) {
    using S = Answer::Status;
    switch (a.status) {
    case S::NxDomain: {
        Verdict v;
        v.kind = Kind::NotListed;
        v.label = "not_listed";
        return v;
    }
    case S::NoData: return error("an answer without an A record (" + a.detail + ")", "nodata");
    case S::ServFail: return error("SERVFAIL from the resolver (" + a.detail + ")", "servfail");
    case S::Refused: return error("the resolver refused the query (" + a.detail + ")", "refused");
    case S::Timeout: return error("no answer in time (" + a.detail + ")", "timeout");
    case S::Malformed: return error("a malformed answer (" + a.detail + ")", "malformed");
    case S::Unreachable: return error("the resolver cannot be reached (" + a.detail + ")", "unreachable");
    case S::Other: return error("lookup failed (" + a.detail + ")", "other");
    case S::Ok: break;
    }
    if (a.a.empty()) return error("an answer without an A record", "nodata");
    bool list_refuses = false;
    for (const std::string& quad : a.a)
        if (!in_loopback8(quad, list_refuses))
            return error("answer " + quad + " is outside 127.0.0.0/8: a resolver that rewrites NXDOMAIN, or forged",
                         "outside_127");
    if (list_refuses) {
        Verdict v = error("the list refuses this resolver (answer " + joined(a.a) +
                              ": 127.255.255.252 typo, .254 public/open resolver, .255 rate-limited)",
                          "list_refuses");
        v.list_refuses = true;
        return v;
    }
    if (a.control && *a.control != S::NxDomain) {
        if (*a.control == S::Ok && !a.control_a.empty())
            return error("the zone lists its test entry 127.0.0.1 too (RFC 5782): it lists the world, so this "
                         "listing is not believed",
                         "lists_the_world");
        return error("the zone's test entry 127.0.0.1 could not be checked with this listing", "other");
    }
    Verdict v;
    v.kind = Kind::Listed;
    v.codes = a.a;
    std::sort(v.codes.begin(), v.codes.end());
    v.reason = joined(a.txt);
    v.label = "listed";
    return v;
}

namespace {

IpPrefix loopback_host(uint8_t last) {
    IpPrefix p;
    p.addr[0] = 127;
    p.addr[3] = last;
    p.len = 32;
    return p;
}
const IpPrefix& entry_127_0_0_1() {
    static const IpPrefix p = loopback_host(1);
    return p;
}
const IpPrefix& entry_127_0_0_2() {
    static const IpPrefix p = loopback_host(2);
    return p;
}

}  // namespace

std::vector<Lookup> test_lookups(const std::vector<Zone>& zones) {
    std::vector<Lookup> out;
    for (const Zone& z : zones) {
        out.push_back({entry_127_0_0_1(), z.name});
        out.push_back({entry_127_0_0_2(), z.name});
    }
    return out;
}

bool is_test_entry(const IpPrefix& host) { return host == entry_127_0_0_1() || host == entry_127_0_0_2(); }

void note_test_answer(ZoneCheck& z, const IpPrefix& entry, const Verdict& v) {
    if (v.kind == Kind::Error) return;
    (entry == entry_127_0_0_1() ? z.lists_127_0_0_1 : z.lists_127_0_0_2) = v.kind == Kind::Listed;
}

Verdict gated(const Verdict& v, const ZoneCheck& z) {
    if (v.kind == Kind::Listed && z.lists_127_0_0_1.value_or(false))
        return error("the zone lists its test entry 127.0.0.1 (RFC 5782): it lists the world, its listings are not "
                     "believed",
                     "lists_the_world");
    if (v.kind == Kind::NotListed && !z.lists_127_0_0_2.value_or(true))
        return error("the zone does not list its test entry 127.0.0.2 (RFC 5782): its answers are not believed",
                     "test_entry_missing");
    return v;
}

const std::vector<std::string_view>& result_labels() {
    static const std::vector<std::string_view> labels{"listed",  "not_listed", "list_refuses", "outside_127",
                                                      "nodata",  "servfail",   "refused",      "timeout",
                                                      "malformed", "unreachable", "other",
                                                      "lists_the_world", "test_entry_missing"};
    return labels;
}

}  // namespace smtpgov::dnsbl
