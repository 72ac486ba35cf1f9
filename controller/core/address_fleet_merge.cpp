// What one host writes for its buckets, and other hosts' records merged into this host's
// ip.check / ip.show answer (core/address_fleet.h).
#include <algorithm>
#include <set>

#include "core/address_fleet.h"

namespace smtpgov::addrfleet {

using nlohmann::json;

namespace {

// The newest `max` of v by `newer` (a strict "a is newer than b"), in their old order.
template <typename T, typename Newer>
void keep_newest(std::vector<T>& v, size_t max, Newer newer) {
    if (v.size() <= max) return;
    std::vector<size_t> idx(v.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return newer(v[a], v[b]); });
    idx.resize(max);
    std::sort(idx.begin(), idx.end());
    std::vector<T> out;
    for (size_t i : idx) out.push_back(std::move(v[i]));
    v = std::move(out);
}

// The newest `max` of each kind (holdings in force and listings in force first).
void bound(HostRecord& r, size_t max) {
    keep_newest(r.holdings, max, [](const Holding& a, const Holding& b) {
        if (a.open() != b.open()) return a.open();  // holdings in force first
        return (a.to_unix ? *a.to_unix : a.from_unix) > (b.to_unix ? *b.to_unix : b.from_unix);
    });
    keep_newest(r.complaints, max, [](const Complaint& a, const Complaint& b) { return a.arrival_unix > b.arrival_unix; });
    keep_newest(r.listings, max, [](const Listing& a, const Listing& b) {
        if (!a.until_unix != !b.until_unix) return !a.until_unix;  // listed now first
        return a.until_unix.value_or(0) > b.until_unix.value_or(0);
    });
}

// The record's text within kMaxValueBytes (what readers take): long strings can make
// even kMaxEntries entries too big, and then the oldest go until it fits.
std::string fitted(HostRecord& r, bool wide) {
    size_t max = wide ? kMaxWide : kMaxEntries;
    bound(r, max);
    std::string text = to_json(r).dump();
    while (text.size() > kMaxValueBytes && max > 1) {
        max /= 2;
        bound(r, max);
        text = to_json(r).dump();
    }
    return text;
}

}  // namespace

std::map<std::string, std::string> host_records(const AddressHistory& h, const dnsbl::Listings& l,
                                                const std::string& host) {
    std::map<std::string, HostRecord> by;
    auto rec = [&](const std::string& bucket) -> HostRecord& {
        HostRecord& r = by[bucket];
        r.host = host;
        return r;
    };
    for (const Holding& x : h.holdings()) rec(bucket_of(x.prefix).value_or("wide")).holdings.push_back(x);
    for (const Complaint& c : h.complaints())
        if (auto b = bucket_of(c.address)) rec(*b).complaints.push_back(c);
    for (const auto& [lookup, s] : l.states())
        if (auto b = bucket_of(lookup.address); b && s.listed)
            rec(*b).listings.push_back({lookup.address, lookup.zone, s.reason, s.holder, s.since_unix, std::nullopt,
                                        s.charged, checked_day(s.checked_unix)});
    for (const dnsbl::PastListing& p : l.past())
        if (auto b = bucket_of(p.lookup.address))
            rec(*b).listings.push_back(
                {p.lookup.address, p.lookup.zone, p.reason, p.holder, p.from_unix, p.to_unix, p.charged, std::nullopt});
    std::map<std::string, std::string> out;
    for (auto& [bucket, r] : by) {
        out[bucket] = fitted(r, bucket == "wide");
    }
    return out;
}

// ---- the merge -----------------------------------------------------------------------

namespace {

json listing_entry(const Listing& l, const std::string& host) {
    json j{{"address", l.address.to_string()}, {"zone", l.zone}, {"reason", l.reason}, {"holder", l.holder},
           {"charged", l.charged}, {"listed_now", !l.until_unix}, {"host", host}};
    if (l.until_unix) {
        j["from_unix"] = l.since_unix;
        j["to_unix"] = *l.until_unix;
    } else {
        j["since_unix"] = l.since_unix;
    }
    if (l.checked_unix) j["checked_unix"] = *l.checked_unix;
    return j;
}

void tag(json& entries, const std::string& host) {
    if (!entries.is_array()) return;
    for (json& e : entries)
        if (e.is_object()) e["host"] = host;
}

void sort_by(json& entries, const char* field) {
    std::stable_sort(entries.begin(), entries.end(),
                     [&](const json& a, const json& b) { return a.value(field, int64_t{0}) < b.value(field, int64_t{0}); });
}

struct Merger {
    json& out;
    const IpPrefix& addr;
    int64_t since;
    bool show;
    bool tainted = false;
    int best_len = -1;  // the remote holder now's prefix length

    void complaint(const Complaint& c, const std::string& host) {
        if (!addr.contains(c.address)) return;
        json j = to_json(c);
        j["host"] = host;
        if (show) out["complaints"].push_back(j);
        if (c.arrival_unix < since) return;
        tainted = true;
        out["complaints_in_window"] = out.value("complaints_in_window", size_t{0}) + 1;
        out["reasons"].push_back("complaint (" + c.feedback_type + ") about " + c.address.to_string() + " at " +
                                 std::to_string(c.arrival_unix) + ", held by " + c.vm + " (recorded by host " + host + ")");
    }

    void listing(const Listing& l, const std::string& host) {
        if (!addr.contains(l.address) || (l.until_unix && *l.until_unix < since)) return;
        // in force, but not seen listed within the window: its host stopped writing
        // (taken out of the fleet); a day's slack for the day-granular checked_unix
        if (!l.until_unix && l.checked_unix && *l.checked_unix + kCheckedDay < since) return;
        tainted = true;
        out["dnsbl"].push_back(listing_entry(l, host));
        out["reasons"].push_back(std::string(l.until_unix ? "was listed" : "listed now") + " in " + l.zone + ": " +
                                 l.address.to_string() + (l.reason.empty() ? "" : " (" + l.reason + ")") +
                                 " (recorded by host " + host + ")");
    }

    void holding(const Holding& h, const std::string& host, bool local_holder) {
        if (!show || !h.prefix.overlaps(addr)) return;
        json j = to_json(h);
        j["host"] = host;
        out["history"].push_back(j);
        if (local_holder || !h.open() || !h.prefix.contains(addr) || h.prefix.len <= best_len) return;
        best_len = h.prefix.len;
        out["holder"] = j;
    }
};

}  // namespace

json merge(json local, const FleetRead& read, const IpPrefix& addr, const std::string& self, int64_t now_unix,
           int taint_days, bool show) {
    json out = std::move(local);
    for (const char* f : {"dnsbl", "reasons"})
        if (!out.contains(f) || !out[f].is_array()) out[f] = json::array();
    tag(out["dnsbl"], self);
    const bool local_holder = out.contains("holder") && out["holder"].is_object();
    if (show) {
        for (const char* f : {"history", "complaints"}) {
            if (!out.contains(f) || !out[f].is_array()) out[f] = json::array();
            tag(out[f], self);
        }
        if (local_holder) out["holder"]["host"] = self;
    }
    Merger m{out, addr, now_unix - int64_t{taint_days} * 86400, show};
    std::set<std::string> hosts{self};
    for (const HostRecord& r : read.records) {
        hosts.insert(r.host);
        for (const Holding& h : r.holdings) m.holding(h, r.host, local_holder);
        for (const Complaint& c : r.complaints) m.complaint(c, r.host);
        for (const Listing& l : r.listings) m.listing(l, r.host);
    }
    if (show) {
        sort_by(out["history"], "from_unix");
        sort_by(out["complaints"], "arrival_unix");
    }
    out["tainted"] = out.value("tainted", false) || m.tainted;
    json refused = json::array();
    for (const auto& [key, error] : read.refused) refused.push_back({{"key", key}, {"error", error}});
    out["fleet"] = {{"host", self}, {"hosts", hosts}, {"records_read", read.records.size()}, {"refused", refused}};
    return out;
}

std::optional<std::pair<Holding, std::string>> holder_at(const FleetRead& read, const IpPrefix& addr, int64_t t) {
    std::optional<std::pair<Holding, std::string>> best;
    for (const HostRecord& r : read.records)
        for (const Holding& h : r.holdings)
            if (h.prefix.contains(addr) && h.held_at(t) && (!best || h.prefix.len > best->first.prefix.len))
                best.emplace(h, r.host);
    return best;
}

}  // namespace smtpgov::addrfleet
