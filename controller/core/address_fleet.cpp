// Buckets, keys and the record one host writes for one bucket (core/address_fleet.h).
// What a host writes and the merge into answers: address_fleet_merge.cpp.
#include "core/address_fleet.h"

#include <algorithm>
#include <cstdio>

#include "core/json_strict.h"

namespace smtpgov::addrfleet {

using nlohmann::json;

namespace {

constexpr std::string_view kWide = "wide", kHosts = "/hosts/";

std::string addresses(const fleet::Keys& k) { return k.prefix + "/addresses/"; }

std::string bucket_text(const IpPrefix& a) {
    char buf[32];
    if (a.family == IpPrefix::Family::V4)
        std::snprintf(buf, sizeof buf, "v4/%03u.%03u.%03u", a.addr[0], a.addr[1], a.addr[2]);
    else
        std::snprintf(buf, sizeof buf, "v6/%02x%02x:%02x%02x:%02x%02x", a.addr[0], a.addr[1], a.addr[2], a.addr[3],
                      a.addr[4], a.addr[5]);
    return buf;
}

int bucket_len(const IpPrefix& p) { return p.family == IpPrefix::Family::V4 ? kBucketLenV4 : kBucketLenV6; }

// The last address of p (every host bit set).
IpPrefix last_of(const IpPrefix& p) {
    IpPrefix out = p.masked();
    for (int bit = p.len; bit < p.max_len(); ++bit) out.addr[size_t(bit / 8)] |= uint8_t(0x80 >> (bit % 8));
    out.len = uint8_t(out.max_len());
    return out;
}

// "v4/203.000.113" -> 203.0.113.0/24; nullopt for any other text.
std::optional<IpPrefix> bucket_prefix(std::string_view b) {
    IpPrefix p;
    unsigned x[3];
    char tail;
    const std::string s(b);
    if (s.size() == 14 && s.rfind("v4/", 0) == 0 && std::sscanf(s.c_str() + 3, "%3u.%3u.%3u%c", &x[0], &x[1], &x[2], &tail) == 3) {
        if (x[0] > 255 || x[1] > 255 || x[2] > 255) return std::nullopt;
        p.family = IpPrefix::Family::V4;
        for (size_t i = 0; i < 3; ++i) p.addr[i] = uint8_t(x[i]);
        p.len = kBucketLenV4;
    } else if (s.size() == 17 && s.rfind("v6/", 0) == 0 &&
               std::sscanf(s.c_str() + 3, "%4x:%4x:%4x%c", &x[0], &x[1], &x[2], &tail) == 3) {
        p.family = IpPrefix::Family::V6;
        for (size_t i = 0; i < 3; ++i) {
            p.addr[2 * i] = uint8_t(x[i] >> 8);
            p.addr[2 * i + 1] = uint8_t(x[i] & 0xff);
        }
        p.len = kBucketLenV6;
    } else {
        return std::nullopt;
    }
    if (bucket_text(p) != s) return std::nullopt;  // one spelling only ("v4/1.2.3" is not one)
    return p;
}

std::string cut(const std::string& s) { return s.size() > kMaxText ? s.substr(0, kMaxText) : s; }

json to_json(const Listing& l) {
    json j{{"address", l.address.to_string()}, {"zone", cut(l.zone)},     {"reason", cut(l.reason)},
           {"holder", cut(l.holder)},          {"since_unix", l.since_unix},
           {"until_unix", l.until_unix ? json(*l.until_unix) : json(nullptr)}, {"charged", l.charged}};
    if (l.checked_unix && !l.until_unix) j["checked_unix"] = *l.checked_unix;
    return j;
}

}  // namespace

std::string records_prefix(const fleet::Keys& k) { return addresses(k); }

bool wider_than_bucket(const IpPrefix& p) { return p.len < bucket_len(p); }

std::optional<std::string> bucket_of(const IpPrefix& p) {
    if (wider_than_bucket(p)) return std::nullopt;
    return bucket_text(p.masked());
}

std::pair<std::string, std::string> bucket_range(const fleet::Keys& k, const IpPrefix& q) {
    const std::string base = addresses(k);
    // each bucket's records share "<bucket>/"; '0' is the byte after '/'
    return {base + bucket_text(q.masked()) + "/", base + bucket_text(last_of(q)) + "0"};
}

std::string record_key(const fleet::Keys& k, const std::string& bucket, const std::string& host) {
    return addresses(k) + bucket + std::string(kHosts) + fleet::escape(host);
}

std::string wide_prefix(const fleet::Keys& k) { return addresses(k) + std::string(kWide) + std::string(kHosts); }

std::optional<std::pair<std::string, std::string>> parse_key(const fleet::Keys& k, std::string_view key) {
    const std::string base = addresses(k);
    if (key.substr(0, base.size()) != base) return std::nullopt;
    key.remove_prefix(base.size());
    const size_t at = key.find(kHosts);
    if (at == std::string_view::npos) return std::nullopt;
    const std::string_view bucket = key.substr(0, at), host = key.substr(at + kHosts.size());
    if (host.empty() || host.find('/') != std::string_view::npos) return std::nullopt;
    if (bucket != kWide && !bucket_prefix(bucket)) return std::nullopt;
    return std::pair{std::string(bucket), fleet::unescape(host)};
}

json to_json(const HostRecord& r) {
    json hs = json::array(), cs = json::array(), ls = json::array();
    for (const Holding& h : r.holdings) {
        json j = smtpgov::to_json(h);
        j["vm"] = cut(h.vm);
        j["tenant"] = cut(h.tenant);
        hs.push_back(std::move(j));
    }
    for (const Complaint& c : r.complaints) {
        json j = smtpgov::to_json(c);
        for (const char* f : {"vm", "tenant", "feedback_type", "reporting_mta"}) j[f] = cut(j[f].get<std::string>());
        cs.push_back(std::move(j));
    }
    for (const Listing& l : r.listings) ls.push_back(to_json(l));
    return {{"version", 1}, {"host", r.host}, {"holdings", hs}, {"complaints", cs}, {"listings", ls}};
}

// ---- decoding ------------------------------------------------------------------------

namespace {

struct Reader {
    const json& j;
    std::string path;  // "complaints/3"

    Result<std::string> text(const char* f) const {
        if (!j.contains(f) || !j[f].is_string()) return Error::msg(path + "/" + f + ": must be a string");
        if (j[f].get_ref<const std::string&>().size() > kMaxText)
            return Error::msg(path + "/" + f + ": longer than " + std::to_string(kMaxText) + " bytes");
        return j[f].get<std::string>();
    }
    Result<int64_t> unix(const char* f) const {
        if (!j.contains(f) || !j[f].is_number_integer()) return Error::msg(path + "/" + f + ": must be an integer (Unix seconds)");
        return j[f].get<int64_t>();
    }
    Result<std::optional<int64_t>> unix_or_null(const char* f) const {
        if (j.contains(f) && j[f].is_null()) return std::optional<int64_t>{};
        auto t = unix(f);
        if (!t) return t.error();
        return std::optional<int64_t>(*t);
    }
    Result<IpPrefix> prefix(const char* f, bool host) const {
        auto t = text(f);
        if (!t) return t.error();
        auto p = IpPrefix::parse(*t);
        if (!p) return Error::msg(path + "/" + f + ": " + p.error().message);
        if (host && !p->is_host()) return Error::msg(path + "/" + f + ": " + *t + " is not a host address");
        return p->masked();
    }
};

// Is an entry's address or prefix where the key says? (bucket nullopt: the wide record)
Status placed(const IpPrefix& p, const std::optional<IpPrefix>& bucket, const std::string& path) {
    if (bucket ? bucket->contains(p) : wider_than_bucket(p)) return ok_status();
    return Error::msg(path + ": " + p.to_string() +
                      (bucket ? " is not in bucket " + bucket->to_string() : " is not wider than a bucket"));
}

#define SG_TRY(var, expr)               \
    auto var##_r = (expr);              \
    if (!var##_r) return var##_r.error(); \
    auto var = std::move(*var##_r)

Result<Holding> holding_of(const Reader& r, const std::optional<IpPrefix>& bucket) {
    SG_TRY(p, r.prefix("prefix", false));
    if (auto s = placed(p, bucket, r.path + "/prefix"); !s) return s.error();
    SG_TRY(vm, r.text("vm"));
    SG_TRY(tenant, r.text("tenant"));
    SG_TRY(from, r.unix("from_unix"));
    SG_TRY(to, r.unix_or_null("to_unix"));
    return Holding{p, vm, tenant, from, to};
}

Result<Complaint> complaint_of(const Reader& r, const std::optional<IpPrefix>& bucket) {
    if (!bucket) return Error::msg(r.path + ": the wide record holds no complaints");
    SG_TRY(a, r.prefix("address", true));
    if (auto s = placed(a, bucket, r.path + "/address"); !s) return s.error();
    SG_TRY(arrival, r.unix("arrival_unix"));
    SG_TRY(received, r.unix("received_unix"));
    SG_TRY(vm, r.text("vm"));
    SG_TRY(tenant, r.text("tenant"));
    SG_TRY(type, r.text("feedback_type"));
    SG_TRY(mta, r.text("reporting_mta"));
    return Complaint{a, arrival, received, vm, tenant, type, mta};
}

Result<Listing> listing_of(const Reader& r, const std::optional<IpPrefix>& bucket) {
    if (!bucket) return Error::msg(r.path + ": the wide record holds no listings");
    SG_TRY(a, r.prefix("address", true));
    if (auto s = placed(a, bucket, r.path + "/address"); !s) return s.error();
    SG_TRY(zone, r.text("zone"));
    SG_TRY(reason, r.text("reason"));
    SG_TRY(holder, r.text("holder"));
    SG_TRY(since, r.unix("since_unix"));
    SG_TRY(until, r.unix_or_null("until_unix"));
    if (!r.j.contains("charged") || !r.j["charged"].is_boolean()) return Error::msg(r.path + "/charged: must be true or false");
    std::optional<int64_t> checked;  // optional: older versions do not write it
    if (r.j.contains("checked_unix")) {
        SG_TRY(c, r.unix("checked_unix"));
        if (until) return Error::msg(r.path + "/checked_unix: only a listing in force has one");
        checked = c;
    }
    return Listing{a, zone, reason, holder, since, until, r.j["charged"].get<bool>(), checked};
}

template <typename T, typename F>
Status entries(const json& doc, const char* kind, size_t max, std::vector<T>& out, F&& one) {
    if (!doc.contains(kind) || !doc[kind].is_array()) return Error::msg(std::string(kind) + ": must be an array");
    if (doc[kind].size() > max)
        return Error::msg(std::string(kind) + ": " + std::to_string(doc[kind].size()) + " entries, more than " +
                          std::to_string(max));
    for (size_t i = 0; i < doc[kind].size(); ++i) {
        const json& e = doc[kind][i];
        const std::string path = std::string(kind) + "/" + std::to_string(i);
        if (!e.is_object()) return Error::msg(path + ": must be an object");
        auto v = one(Reader{e, path});
        if (!v) return v.error();
        out.push_back(std::move(*v));
    }
    return ok_status();
}

Result<HostRecord> decode_doc(const json& doc, const std::string& bucket, const std::string& host) {
    if (!doc.is_object()) return Error::msg("must be a JSON object");
    if (!doc.contains("version") || doc["version"] != 1) return Error::msg("version: must be 1");
    if (!doc.contains("host") || doc["host"] != host) return Error::msg("host: must be \"" + host + "\", the host the key names");
    const std::optional<IpPrefix> b = bucket == kWide ? std::nullopt : bucket_prefix(bucket);
    HostRecord r{host, {}, {}, {}};
    const size_t max = b ? kMaxEntries : kMaxWide;
    if (auto s = entries(doc, "holdings", max, r.holdings, [&](const Reader& x) { return holding_of(x, b); }); !s)
        return s.error();
    if (auto s = entries(doc, "complaints", kMaxEntries, r.complaints, [&](const Reader& x) { return complaint_of(x, b); }); !s)
        return s.error();
    if (auto s = entries(doc, "listings", kMaxEntries, r.listings, [&](const Reader& x) { return listing_of(x, b); }); !s)
        return s.error();
    return r;
}

}  // namespace

Result<HostRecord> decode(const fleet::Keys& k, const std::string& key, const std::string& value) {
    auto where = parse_key(k, key);
    if (!where) return Error::msg(key + ": not an address record key");
    auto fail = [&](const std::string& why) { return Error::msg(key + ": " + why + ": ignored"); };
    if (value.size() > kMaxValueBytes)
        return fail(std::to_string(value.size()) + " bytes, more than " + std::to_string(kMaxValueBytes));
    auto doc = parse_json_strict(value);
    if (!doc) return fail(doc.error().message);
    auto r = decode_doc(*doc, where->first, where->second);
    if (!r) return fail(r.error().message);
    return r;
}

FleetRead decode_all(const fleet::Keys& k, const std::vector<std::pair<std::string, std::string>>& kvs,
                     const std::string& self) {
    FleetRead out;
    for (const auto& [key, value] : kvs) {
        auto where = parse_key(k, key);
        if (where && where->second == self) continue;  // this host answers from its own history
        auto r = decode(k, key, value);
        if (r) out.records.push_back(std::move(*r));
        else out.refused.emplace_back(key, r.error().message);
    }
    return out;
}

}  // namespace smtpgov::addrfleet
