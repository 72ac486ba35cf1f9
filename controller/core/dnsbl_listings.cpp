#include "core/dnsbl_listings.h"

#include <algorithm>

namespace smtpgov::dnsbl {

using nlohmann::json;

std::string Holder::key() const {
    switch (kind) {
    case Kind::Vm: return "vm:" + vm;
    case Kind::Quarantine: return "quarantine";
    case Kind::None: break;
    }
    return "none";
}

std::string Holder::label() const {
    return kind == Kind::Vm ? "vm" : kind == Kind::Quarantine ? "quarantine" : "none";
}

namespace {

std::string label_of_key(const std::string& key) { return key.rfind("vm:", 0) == 0 ? "vm" : key; }

}  // namespace

Outcome Listings::apply(const Lookup& l, const Holder& holder, const Verdict& v, int64_t now_unix) {
    auto [it, fresh] = states_.try_emplace(l);
    State& s = it->second;
    if (fresh) s.lookup = l;
    Outcome out;
    if (v.kind == Kind::Error) {  // nothing learnt: no listing, no delisting, same holder
        if (fresh) states_.erase(it);
        else out.state = s;
        return out;
    }
    const std::string key = holder.key();
    if (s.holder != key) {  // a new tenure starts with this answer
        out.previous_holder = s.holder;
        s.holder = key;
        s.clean_seen = false;
    }
    s.checked_unix = now_unix;
    if (v.kind == Kind::NotListed) {
        s.clean_seen = true;
        if (s.listed) {
            end(s, now_unix);
            out.change = Change::Delisted;
        }
        out.state = s;
        return out;
    }
    s.codes = v.codes;
    if (!v.reason.empty()) s.reason = v.reason;
    const bool new_tenure = !out.previous_holder.empty();
    if (s.listed && !new_tenure) {  // still listed, already announced to this holder
        out.state = s;
        return out;
    }
    if (!s.listed) {
        s.since_unix = now_unix;
        if (v.reason.empty()) s.reason.clear();
    }
    s.listed = true;
    s.predates = !s.clean_seen;
    s.charged = holder.kind == Holder::Kind::Vm && s.clean_seen;
    out.change = Change::Listed;
    out.charge = s.charged;
    out.state = s;
    return out;
}

bool Listings::restore(const PastListing& p) {
    // known by its lookup, holder and start (it may have ended since the fleet's copy)
    for (const PastListing& x : past_)
        if (x.lookup == p.lookup && x.holder == p.holder && x.from_unix == p.from_unix) return false;
    if (auto st = states_.find(p.lookup); st != states_.end() && st->second.listed && st->second.since_unix == p.from_unix)
        return false;
    auto at = std::upper_bound(past_.begin(), past_.end(), p.to_unix,
                               [](int64_t t, const PastListing& x) { return t < x.to_unix; });
    past_.insert(at, p);  // oldest end first
    if (past_.size() > kMaxPast) past_.erase(past_.begin(), past_.begin() + long(past_.size() - kMaxPast));
    return true;
}

void Listings::end(State& s, int64_t now_unix) {
    past_.push_back({s.lookup, s.holder, s.reason, s.since_unix, now_unix, s.charged});
    if (past_.size() > kMaxPast) past_.erase(past_.begin(), past_.begin() + long(past_.size() - kMaxPast));
    s.listed = s.charged = s.predates = false;
    s.since_unix = 0;
    s.codes.clear();
    s.reason.clear();
}

void Listings::retain(const std::set<Lookup>& lookups, int64_t now_unix) {
    for (auto it = states_.begin(); it != states_.end();) {
        if (lookups.count(it->first)) {
            ++it;
            continue;
        }
        if (it->second.listed) end(it->second, now_unix);
        it = states_.erase(it);
    }
}

std::vector<State> Listings::listed_in(const IpPrefix& within) const {
    std::vector<State> out;
    for (const auto& [l, s] : states_)
        if (s.listed && within.contains(l.address)) out.push_back(s);
    return out;
}

std::vector<State> Listings::listed() const {
    std::vector<State> out;
    for (const auto& [l, s] : states_)
        if (s.listed) out.push_back(s);
    return out;
}

std::vector<PastListing> Listings::ended_in(const IpPrefix& within, int64_t since_unix) const {
    std::vector<PastListing> out;
    for (const PastListing& p : past_)
        if (p.to_unix >= since_unix && within.contains(p.lookup.address)) out.push_back(p);
    return out;
}

std::map<std::pair<std::string, std::string>, size_t> Listings::counts() const {
    std::map<std::pair<std::string, std::string>, size_t> out;
    for (const auto& [l, s] : states_)
        if (s.listed) ++out[{l.zone, label_of_key(s.holder)}];
    return out;
}

json to_json(const State& s) {
    return {{"address", s.lookup.address.to_string()}, {"zone", s.lookup.zone}, {"holder", s.holder},
            {"clean_seen", s.clean_seen}, {"listed", s.listed}, {"since_unix", s.since_unix},
            {"checked_unix", s.checked_unix}, {"codes", s.codes}, {"reason", s.reason},
            {"charged", s.charged}, {"predates_holder", s.predates}};
}

json to_json(const PastListing& p) {
    return {{"address", p.lookup.address.to_string()}, {"zone", p.lookup.zone}, {"holder", p.holder},
            {"reason", p.reason}, {"from_unix", p.from_unix}, {"to_unix", p.to_unix}, {"charged", p.charged}};
}

json Listings::to_json() const {
    json st = json::array(), past = json::array();
    for (const auto& [l, s] : states_) st.push_back(dnsbl::to_json(s));
    for (const PastListing& p : past_) past.push_back(dnsbl::to_json(p));
    return {{"version", 1}, {"states", st}, {"past", past}};
}

namespace {

Result<Lookup> lookup_of(const json& j) {
    auto a = IpPrefix::parse(j.at("address").get<std::string>());
    if (!a || !a->is_host()) return Error::msg("dnsbl.json: address: not a host address");
    return Lookup{*a, j.at("zone").get<std::string>()};
}

}  // namespace

Result<Listings> Listings::from_json(const json& j) {
    Listings out;
    try {
        for (const auto& x : j.at("states")) {
            auto l = lookup_of(x);
            if (!l) return l.error();
            State s{*l,
                    x.at("holder").get<std::string>(),
                    x.at("clean_seen").get<bool>(),
                    x.at("listed").get<bool>(),
                    x.at("since_unix").get<int64_t>(),
                    x.at("checked_unix").get<int64_t>(),
                    x.at("codes").get<std::vector<std::string>>(),
                    x.at("reason").get<std::string>(),
                    x.at("charged").get<bool>(),
                    x.at("predates_holder").get<bool>()};
            out.states_[*l] = std::move(s);
        }
        for (const auto& x : j.at("past")) {
            auto l = lookup_of(x);
            if (!l) return l.error();
            out.past_.push_back({*l, x.at("holder").get<std::string>(), x.at("reason").get<std::string>(),
                                 x.at("from_unix").get<int64_t>(), x.at("to_unix").get<int64_t>(),
                                 x.at("charged").get<bool>()});
        }
    } catch (const json::exception& e) {
        return Error::msg(std::string("dnsbl.json: ") + e.what());
    }
    return out;
}

}  // namespace smtpgov::dnsbl
