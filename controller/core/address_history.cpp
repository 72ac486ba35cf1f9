#include "core/address_history.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace smtpgov {

bool AddressHistory::update(const std::vector<HolderNow>& now, int64_t now_unix) {
    using Key = std::tuple<std::string, std::string, IpPrefix>;  // vm, tenant, prefix
    std::set<Key> wanted;
    for (const HolderNow& h : now)
        for (const IpPrefix& p : h.prefixes) wanted.insert({h.vm, h.tenant, p.masked()});
    bool changed = false;
    std::set<Key> open;
    for (Holding& h : holdings_) {
        if (!h.open()) continue;
        Key k{h.vm, h.tenant, h.prefix};
        if (wanted.count(k) && open.insert(k).second) continue;
        h.to_unix = std::max(now_unix, h.from_unix);
        changed = true;
    }
    for (const Key& k : wanted) {
        if (open.count(k)) continue;
        holdings_.push_back({std::get<2>(k), std::get<0>(k), std::get<1>(k), now_unix, std::nullopt});
        changed = true;
    }
    if (changed) trim();
    return changed;
}

std::optional<Holding> AddressHistory::holder_at(const IpPrefix& addr, int64_t t) const {
    const Holding* best = nullptr;
    for (const Holding& h : holdings_)
        if (h.prefix.contains(addr) && h.held_at(t) && (!best || h.prefix.len > best->prefix.len)) best = &h;
    if (!best) return std::nullopt;
    return *best;
}

std::vector<Holding> AddressHistory::holdings_of(const IpPrefix& addr) const {
    std::vector<Holding> out;
    for (const Holding& h : holdings_)
        if (h.prefix.overlaps(addr)) out.push_back(h);
    std::stable_sort(out.begin(), out.end(), [](const Holding& a, const Holding& b) { return a.from_unix < b.from_unix; });
    return out;
}

bool AddressHistory::restore(Holding h, int64_t now_unix) {
    h.prefix = h.prefix.masked();
    std::optional<int64_t> next;  // the first holding of an overlapping prefix opened after h
    for (Holding& x : holdings_) {
        if (x.prefix == h.prefix && x.vm == h.vm && x.tenant == h.tenant) {
            if (x.from_unix == h.from_unix) return false;
            if (x.open() && h.open() && h.from_unix < x.from_unix) {  // reopened at start: held since h
                x.from_unix = h.from_unix;
                return true;
            }
        }
        if (x.prefix.overlaps(h.prefix) && x.from_unix > h.from_unix && (!next || x.from_unix < *next))
            next = x.from_unix;
    }
    if (h.open()) h.to_unix = std::max(h.from_unix, std::min(now_unix, next.value_or(now_unix)));
    holdings_.push_back(std::move(h));
    trim();
    return true;
}

bool AddressHistory::restore(const Complaint& c) {
    if (std::find(complaints_.begin(), complaints_.end(), c) != complaints_.end()) return false;
    add_complaint(c);
    return true;
}

void AddressHistory::add_complaint(Complaint c) {
    complaints_.push_back(std::move(c));
    trim();
}

std::vector<Complaint> AddressHistory::complaints_of(const IpPrefix& addr) const {
    std::vector<Complaint> out;
    for (const Complaint& c : complaints_)
        if (addr.contains(c.address)) out.push_back(c);
    std::stable_sort(out.begin(), out.end(),
                     [](const Complaint& a, const Complaint& b) { return a.arrival_unix < b.arrival_unix; });
    return out;
}

size_t AddressHistory::complaints_against(const std::string& vm) const {
    return static_cast<size_t>(std::count_if(complaints_.begin(), complaints_.end(), [&](const Complaint& c) { return c.vm == vm; }));
}

void AddressHistory::trim() {
    if (holdings_.size() > max_holdings_) {
        // closed holdings, the one that ended first first; open ones stay
        std::vector<size_t> closed;
        for (size_t i = 0; i < holdings_.size(); ++i)
            if (!holdings_[i].open()) closed.push_back(i);
        std::stable_sort(closed.begin(), closed.end(),
                         [&](size_t a, size_t b) { return *holdings_[a].to_unix < *holdings_[b].to_unix; });
        const size_t excess = std::min(holdings_.size() - max_holdings_, closed.size());
        std::vector<bool> drop(holdings_.size(), false);
        for (size_t i = 0; i < excess; ++i) drop[closed[i]] = true;
        std::vector<Holding> kept;
        for (size_t i = 0; i < holdings_.size(); ++i)
            if (!drop[i]) kept.push_back(std::move(holdings_[i]));
        holdings_ = std::move(kept);
    }
    if (complaints_.size() > max_complaints_) {
        std::stable_sort(complaints_.begin(), complaints_.end(),
                         [](const Complaint& a, const Complaint& b) { return a.arrival_unix < b.arrival_unix; });
        complaints_.erase(complaints_.begin(), complaints_.begin() + long(complaints_.size() - max_complaints_));
    }
}

nlohmann::json to_json(const Holding& h) {
    return {{"prefix", h.prefix.to_string()}, {"vm", h.vm}, {"tenant", h.tenant}, {"from_unix", h.from_unix},
            {"to_unix", h.to_unix ? nlohmann::json(*h.to_unix) : nlohmann::json(nullptr)}};
}

nlohmann::json to_json(const Complaint& c) {
    return {{"address", c.address.to_string()}, {"arrival_unix", c.arrival_unix}, {"received_unix", c.received_unix},
            {"vm", c.vm}, {"tenant", c.tenant}, {"feedback_type", c.feedback_type}, {"reporting_mta", c.reporting_mta}};
}

nlohmann::json AddressHistory::to_json() const {
    nlohmann::json hs = nlohmann::json::array(), cs = nlohmann::json::array();
    for (const Holding& h : holdings_) hs.push_back(smtpgov::to_json(h));
    for (const Complaint& c : complaints_) cs.push_back(smtpgov::to_json(c));
    return {{"version", 1}, {"holdings", hs}, {"complaints", cs}};
}

Result<AddressHistory> AddressHistory::from_json(const nlohmann::json& j) {
    AddressHistory out;
    try {
        for (const auto& h : j.at("holdings")) {
            auto p = IpPrefix::parse(h.at("prefix").get<std::string>());
            if (!p) return Error::msg("holding prefix: " + p.error().message);
            Holding x{p->masked(), h.at("vm").get<std::string>(), h.at("tenant").get<std::string>(),
                      h.at("from_unix").get<int64_t>(), std::nullopt};
            if (!h.at("to_unix").is_null()) x.to_unix = h.at("to_unix").get<int64_t>();
            out.holdings_.push_back(std::move(x));
        }
        for (const auto& c : j.at("complaints")) {
            auto a = IpPrefix::parse(c.at("address").get<std::string>());
            if (!a || !a->is_host()) return Error::msg("complaint address: not a host address");
            out.complaints_.push_back({*a, c.at("arrival_unix").get<int64_t>(), c.at("received_unix").get<int64_t>(),
                                       c.at("vm").get<std::string>(), c.at("tenant").get<std::string>(),
                                       c.at("feedback_type").get<std::string>(), c.at("reporting_mta").get<std::string>()});
        }
    } catch (const nlohmann::json::exception& e) {
        return Error::msg(e.what());
    }
    out.trim();
    return out;
}

}  // namespace smtpgov
