// When each DNSBL lookup is made (pure logic; the resolver's thread owns the one
// instance). Every address x zone is looked up once per interval, the first lookups
// spread over one interval (by a hash of the lookup, so a restart spreads them the same
// way), and never more than queries_per_s DNS queries a second (paced evenly: a query
// every 1/queries_per_s s). An answer is kept for its TTL: the next lookup comes after
// max(interval, TTL), the TTL capped at a day. A failed lookup is tried again after
// min(interval, 5 min). A lookup in flight is not handed out again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "core/dnsbl.h"

namespace smtpgov::dnsbl {

class Scheduler {
public:
    static constexpr int64_t kMaxTtlMs = 86'400'000;
    static constexpr int64_t kMaxRetryMs = 300'000;

    Scheduler(uint32_t interval_s, uint32_t queries_per_s);

    // The lookups to make from now on: known ones keep their next time, new ones are
    // spread over the coming interval, gone ones are dropped (an answer still in flight
    // for one is ignored by done()).
    void set_lookups(const std::vector<Lookup>& lookups, int64_t now_ms);

    // A lookup due now, when the rate allows a query now; it is in flight until done().
    std::optional<Lookup> next(int64_t now_ms);
    // One more query made for a lookup (the TXT of a listing): paid from the same rate.
    void spend(int64_t now_ms);
    // The lookup's answer came: good (its TTL applies) or an error (retried sooner).
    void done(const Lookup& l, bool answered, uint32_t ttl_s, int64_t now_ms);

    // When next() may give a lookup (now_ms or later); none when nothing is waiting.
    std::optional<int64_t> wake_at(int64_t now_ms) const;
    size_t size() const { return due_.size(); }
    size_t in_flight() const { return flying_.size(); }
    // Lookups per interval that the rate allows; fewer than size(): the interval stretches.
    uint64_t capacity_per_interval() const { return static_cast<uint64_t>(interval_ms_ / 1000) * qps_; }

private:
    int64_t offset_ms(const Lookup& l) const;  // where in the interval its first lookup falls
    void schedule(const Lookup& l, int64_t at_ms);

    int64_t interval_ms_;
    uint32_t qps_;
    double spacing_ms_;
    double next_query_ms_ = 0;                   // the earliest time of the next query
    std::map<Lookup, int64_t> due_;              // lookup -> next time (not in flight)
    std::set<std::pair<int64_t, Lookup>> queue_; // (time, lookup), earliest first
    std::set<Lookup> flying_;
};

}  // namespace smtpgov::dnsbl
