#include "core/reputation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace smtpgov {

namespace {

constexpr double kForgetBelow = 1e-3;  // an ok VM with less score than this carries no information

constexpr std::array<std::pair<Signal, std::string_view>, 6> kSignalNames{{
    {Signal::OverLimit, "over_limit"},
    {Signal::Spoofed, "spoofed"},
    {Signal::RemoteReject, "remote_reject"},
    {Signal::SpamReport, "spam_report"},
    {Signal::Complaint, "complaint"},
    {Signal::DnsblListing, "dnsbl_listing"},
}};

Tier tier_below(Tier t) { return static_cast<Tier>(static_cast<int>(t) - 1); }

// The highest tier whose threshold the score reaches.
Tier earned_by(const Thresholds& th, double score) {
    Tier best = Tier::Ok;
    for (Tier t : kAllTiers)
        if (t != Tier::Ok && score >= th.of(t)) best = t;
    return best;
}

}  // namespace

std::string_view to_string(Signal s) {
    for (const auto& [sig, name] : kSignalNames)
        if (sig == s) return name;
    return "over_limit";
}

std::optional<Signal> parse_signal(std::string_view s) {
    for (const auto& [sig, name] : kSignalNames)
        if (name == s) return sig;
    return std::nullopt;
}

Reputation::Reputation(const Clock& clock, ReputationConfig cfg) : clock_(&clock), cfg_(cfg) {}

void Reputation::decay(State& s, int64_t now_ms) const {
    if (now_ms <= s.updated_ms) return;  // a clock step backwards must not grow scores
    double elapsed_s = static_cast<double>(now_ms - s.updated_ms) / 1000.0;
    s.score *= std::exp2(-elapsed_s / cfg_.half_life_s);
    s.updated_ms = now_ms;
}

void Reputation::set_config(const ReputationConfig& cfg) {
    int64_t now = clock_->now_ms();
    for (auto& [_, s] : vms_) decay(s, now);
    cfg_ = cfg;
}

void Reputation::observe(const std::string& vm, Signal sig, double count, int64_t now_ms) {
    if (!(count > 0) || !std::isfinite(count)) return;
    auto [it, fresh] = vms_.try_emplace(vm);
    State& s = it->second;
    if (fresh) s.updated_ms = s.since_ms = now_ms;
    decay(s, now_ms);
    s.score += cfg_.weights.of(sig) * count;
}

double Reputation::score(const std::string& vm, int64_t now_ms) const {
    auto it = vms_.find(vm);
    if (it == vms_.end()) return 0;
    State s = it->second;
    decay(s, now_ms);
    return s.score;
}

Tier Reputation::tier(const std::string& vm) const {
    auto it = vms_.find(vm);
    return it == vms_.end() ? Tier::Ok : effective(it->second);
}

Tier Reputation::earned_tier(const std::string& vm) const {
    auto it = vms_.find(vm);
    return it == vms_.end() ? Tier::Ok : it->second.earned;
}

std::optional<Pin> Reputation::pin(const std::string& vm) const {
    auto it = vms_.find(vm);
    if (it == vms_.end() || !it->second.pin) return std::nullopt;
    Pin p = *it->second.pin;
    if (p.until_unix_ms) p.until_unix_ms = clock_->to_wall(*p.until_unix_ms);  // shown to people
    return p;
}

// Updates the earned tier; returns the reason when it moved.
std::optional<std::string> Reputation::update_earned(State& s, int64_t now_ms) const {
    Tier target = earned_by(cfg_.thresholds, s.score);
    if (target > s.earned) {
        s.earned = target;
        s.since_ms = now_ms;
        return "score";
    }
    bool below = s.earned != Tier::Ok && s.score < cfg_.thresholds.of(s.earned) * (1 - cfg_.hysteresis);
    bool dwelt = static_cast<double>(now_ms - s.since_ms) >= cfg_.min_dwell_s * 1000;
    if (below && dwelt) {
        s.earned = tier_below(s.earned);
        s.since_ms = now_ms;
        return "recovered";
    }
    return std::nullopt;
}

std::optional<Transition> Reputation::step(const std::string& id, State& s, int64_t now_ms) {
    decay(s, now_ms);
    Tier before = effective(s);
    auto reason = update_earned(s, now_ms);
    if (s.pin && s.pin->until_unix_ms && *s.pin->until_unix_ms <= now_ms) {
        s.pin.reset();
        return Transition{id, before, s.earned, s.score, "pin_expired"};
    }
    if (reason && effective(s) != before) return Transition{id, before, effective(s), s.score, *reason};
    return std::nullopt;
}

std::vector<Transition> Reputation::evaluate(int64_t now_ms) {
    std::vector<Transition> out;
    for (auto it = vms_.begin(); it != vms_.end();) {
        if (auto t = step(it->first, it->second, now_ms)) out.push_back(std::move(*t));
        const State& s = it->second;
        if (!s.pin && s.earned == Tier::Ok && s.floor == Tier::Ok && s.score < kForgetBelow) it = vms_.erase(it);
        else ++it;
    }
    // unordered_map order is arbitrary; callers log these, so make the order stable
    std::sort(out.begin(), out.end(), [](const Transition& a, const Transition& b) { return a.vm < b.vm; });
    return out;
}

std::vector<Transition> Reputation::evaluate(const std::vector<std::string>& ids, int64_t now_ms) {
    std::vector<Transition> out;
    for (const std::string& id : ids)
        if (auto it = vms_.find(id); it != vms_.end())
            if (auto t = step(it->first, it->second, now_ms)) out.push_back(std::move(*t));
    return out;
}

bool Reputation::recover(const std::string& vm, Tier t, int64_t now_ms) {
    if (t == Tier::Ok || tier(vm) >= t) return false;
    auto [it, fresh] = vms_.try_emplace(vm);
    State& s = it->second;
    if (fresh) s.updated_ms = now_ms;
    decay(s, now_ms);
    s.score = std::max(s.score, cfg_.thresholds.of(t));
    if (s.earned < t) {
        s.earned = t;
        s.since_ms = now_ms;
    }
    return true;
}

Transition Reputation::set_pin(const std::string& vm, Tier t, std::optional<int64_t> until_ms, int64_t now_ms) {
    auto [it, fresh] = vms_.try_emplace(vm);
    State& s = it->second;
    if (fresh) s.updated_ms = s.since_ms = now_ms;
    decay(s, now_ms);
    Tier before = effective(s);
    s.pin = Pin{t, until_ms};
    s.pin_set_ms = now_ms;
    return {vm, before, t, s.score, "pin"};
}

std::optional<Transition> Reputation::clear_pin(const std::string& vm, int64_t now_ms) {
    auto it = vms_.find(vm);
    if (it == vms_.end() || !it->second.pin) return std::nullopt;
    State& s = it->second;
    decay(s, now_ms);
    Tier before = effective(s);
    s.pin.reset();
    s.pin_set_ms = now_ms;
    update_earned(s, now_ms);
    return Transition{vm, before, s.earned, s.score, "pin_cleared"};
}

void Reputation::forget(const std::string& vm) { vms_.erase(vm); }

std::optional<Reputation::Shared> Reputation::shared(const std::string& vm) const {
    auto it = vms_.find(vm);
    if (it == vms_.end()) return std::nullopt;
    const State& s = it->second;
    Shared out{s.score, clock_->to_wall(s.updated_ms), s.earned, clock_->to_wall(s.since_ms), s.pin};
    if (out.pin && out.pin->until_unix_ms) out.pin->until_unix_ms = clock_->to_wall(*out.pin->until_unix_ms);
    return out;
}

std::optional<Transition> Reputation::import(const std::string& vm, const Shared& in, int64_t now_ms,
                                             std::optional<int64_t> written_unix_ms) {
    if (!std::isfinite(in.score) || in.score < 0) return std::nullopt;
    auto [it, fresh] = vms_.try_emplace(vm);
    State& s = it->second;
    if (fresh) s.updated_ms = s.since_ms = now_ms;
    decay(s, now_ms);
    const Tier before = effective(s);
    State theirs;
    theirs.score = in.score;
    theirs.updated_ms = std::min(clock_->from_wall(in.score_unix_ms), now_ms);
    decay(theirs, now_ms);
    s.score = std::max(s.score, theirs.score);
    if (in.earned > s.earned) {
        s.earned = in.earned;
        s.since_ms = std::min(clock_->from_wall(in.since_unix_ms), now_ms);
    }
    const bool ours_later = s.pin_set_ms && written_unix_ms && clock_->from_wall(*written_unix_ms) < *s.pin_set_ms;
    if (!ours_later) {
        s.pin.reset();
        if (in.pin) {
            Pin p = *in.pin;
            if (p.until_unix_ms) p.until_unix_ms = clock_->from_wall(*p.until_unix_ms);
            if (!p.until_unix_ms || *p.until_unix_ms > now_ms) s.pin = p;
        }
    }
    if (effective(s) == before) return std::nullopt;
    return Transition{vm, before, effective(s), s.score, "fleet"};
}

std::optional<Transition> Reputation::set_floor(const std::string& vm, Tier floor, int64_t now_ms) {
    auto it = vms_.find(vm);
    if (it == vms_.end()) {
        if (floor == Tier::Ok) return std::nullopt;
        it = vms_.try_emplace(vm).first;
        it->second.updated_ms = it->second.since_ms = now_ms;
    }
    State& s = it->second;
    decay(s, now_ms);
    const Tier before = effective(s);
    s.floor = floor;
    if (effective(s) == before) return std::nullopt;
    return Transition{vm, before, effective(s), s.score, "tenant"};
}

Tier Reputation::floor(const std::string& vm) const {
    auto it = vms_.find(vm);
    return it == vms_.end() ? Tier::Ok : it->second.floor;
}

std::vector<std::string> Reputation::vms() const {
    std::vector<std::string> ids;
    ids.reserve(vms_.size());
    for (const auto& [id, _] : vms_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    return ids;
}

nlohmann::json Reputation::save() const {
    nlohmann::json vms = nlohmann::json::object();
    for (const auto& [id, s] : vms_) {
        // Unix ms on disk: the boot clock starts over at every boot.
        nlohmann::json j{{"score", s.score}, {"updated_ms", clock_->to_wall(s.updated_ms)},
                         {"tier", to_string(s.earned)}, {"since_ms", clock_->to_wall(s.since_ms)}};
        if (s.pin) {
            j["pin"] = {{"tier", to_string(s.pin->tier)}};
            if (s.pin->until_unix_ms) j["pin"]["until_ms"] = clock_->to_wall(*s.pin->until_unix_ms);
        }
        // kept across restarts so that an older shared record cannot undo it (import)
        if (s.pin_set_ms) j["pin_set_ms"] = clock_->to_wall(*s.pin_set_ms);
        vms[id] = std::move(j);
    }
    return {{"version", 1}, {"vms", std::move(vms)}};
}

namespace {

Tier tier_field(const nlohmann::json& j, const char* key) {
    auto t = parse_tier(j.at(key).get<std::string>());
    if (!t) throw std::invalid_argument(std::string("unknown tier in \"") + key + "\"");
    return *t;
}

}  // namespace

Result<Reputation> Reputation::load(const nlohmann::json& saved, const Clock& clock, ReputationConfig cfg) {
    Reputation rep(clock, cfg);
    try {
        if (saved.at("version").get<int>() != 1) return Error::msg("reputation state: unsupported version");
        for (const auto& [id, j] : saved.at("vms").items()) {
            State s;
            s.score = j.at("score").get<double>();
            s.updated_ms = clock.from_wall(j.at("updated_ms").get<int64_t>());
            s.earned = tier_field(j, "tier");
            s.since_ms = clock.from_wall(j.at("since_ms").get<int64_t>());
            if (!std::isfinite(s.score) || s.score < 0) return Error::msg("reputation state: bad score for " + id);
            if (auto p = j.find("pin"); p != j.end()) {
                Pin pin{tier_field(*p, "tier"), std::nullopt};
                if (p->contains("until_ms")) pin.until_unix_ms = clock.from_wall(p->at("until_ms").get<int64_t>());
                s.pin = pin;
            }
            if (j.contains("pin_set_ms")) s.pin_set_ms = clock.from_wall(j.at("pin_set_ms").get<int64_t>());
            rep.vms_.emplace(id, s);
        }
    } catch (const std::exception& e) {
        return Error::msg(std::string("reputation state: ") + e.what());
    }
    return rep;
}

}  // namespace smtpgov
