#include "core/dnsbl_schedule.h"

#include <algorithm>
#include <functional>

namespace smtpgov::dnsbl {

Scheduler::Scheduler(uint32_t interval_s, uint32_t queries_per_s)
    : interval_ms_(int64_t{std::max<uint32_t>(interval_s, 1)} * 1000),
      qps_(std::max<uint32_t>(queries_per_s, 1)),
      spacing_ms_(1000.0 / std::max<uint32_t>(queries_per_s, 1)) {}

int64_t Scheduler::offset_ms(const Lookup& l) const {
    // FNV-1a of the query: stable across restarts (std::hash of a string need not be)
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint8_t b) { h = (h ^ b) * 1099511628211ull; };
    for (uint8_t b : l.address.addr) mix(b);
    for (char ch : l.zone) mix(static_cast<uint8_t>(ch));
    return static_cast<int64_t>(h % static_cast<uint64_t>(interval_ms_));
}

void Scheduler::schedule(const Lookup& l, int64_t at_ms) {
    if (auto it = due_.find(l); it != due_.end()) queue_.erase({it->second, l});
    due_[l] = at_ms;
    queue_.insert({at_ms, l});
}

void Scheduler::set_lookups(const std::vector<Lookup>& lookups, int64_t now_ms) {
    std::set<Lookup> wanted(lookups.begin(), lookups.end());
    for (auto it = due_.begin(); it != due_.end();) {
        if (wanted.count(it->first)) {
            ++it;
            continue;
        }
        queue_.erase({it->second, it->first});
        it = due_.erase(it);
    }
    for (auto it = flying_.begin(); it != flying_.end();)
        it = wanted.count(*it) ? std::next(it) : flying_.erase(it);
    for (const Lookup& l : wanted)
        if (!due_.count(l) && !flying_.count(l)) schedule(l, now_ms + offset_ms(l));
}

std::optional<Lookup> Scheduler::next(int64_t now_ms) {
    if (queue_.empty() || queue_.begin()->first > now_ms || next_query_ms_ > static_cast<double>(now_ms))
        return std::nullopt;
    const Lookup l = queue_.begin()->second;
    queue_.erase(queue_.begin());
    due_.erase(l);
    flying_.insert(l);
    spend(now_ms);
    return l;
}

void Scheduler::spend(int64_t now_ms) {
    // paced, never bursting: a quiet minute does not buy a burst of queries later
    next_query_ms_ = std::max(next_query_ms_, static_cast<double>(now_ms)) + spacing_ms_;
}

void Scheduler::done(const Lookup& l, bool answered, uint32_t ttl_s, int64_t now_ms) {
    if (!flying_.erase(l)) return;  // dropped meanwhile
    const int64_t ttl_ms = std::min<int64_t>(int64_t{ttl_s} * 1000, kMaxTtlMs);
    schedule(l, now_ms + (answered ? std::max(interval_ms_, ttl_ms) : std::min(interval_ms_, kMaxRetryMs)));
}

std::optional<int64_t> Scheduler::wake_at(int64_t now_ms) const {
    if (queue_.empty()) return std::nullopt;
    const int64_t paced = static_cast<int64_t>(next_query_ms_ + 0.999);
    return std::max({now_ms, queue_.begin()->first, paced});
}

}  // namespace smtpgov::dnsbl
