// Injectable clocks. Durations (score decay, dwell, pin expiry, holds) run on the
// boot-time clock, which never steps, so setting the wall clock neither freezes nor
// bulk-expires tiers and pins; times shown to people and written to files that outlive
// a boot are wall-clock (Unix ms). Tests run on a ManualClock.
#pragma once

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace smtpgov {

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns() and of sg_event.ts_ns, and the
// one every interval, timeout and latency in smtpgov is measured on.
inline uint64_t mono_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

struct Clock {
    virtual ~Clock() = default;
    virtual int64_t now_ms() const = 0;   // durations: CLOCK_BOOTTIME (counts suspend, never steps)
    virtual int64_t wall_ms() const = 0;  // Unix ms, for people and persisted times
    // wall_ms() - now_ms(): the same from one call to the next, so a time converted to
    // Unix ms and back is the time it was (a pin's end read from the fleet is written back
    // to it unchanged).
    virtual int64_t wall_offset_ms() const { return wall_ms() - now_ms(); }
    // A time of now_ms()'s clock as Unix ms, and back (at today's offset).
    int64_t to_wall(int64_t t) const { return t + wall_offset_ms(); }
    int64_t from_wall(int64_t unix_ms) const { return unix_ms - wall_offset_ms(); }
};

struct SystemClock final : Clock {
    int64_t now_ms() const override {
        timespec ts{};
        ::clock_gettime(CLOCK_BOOTTIME, &ts);
        return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
    }
    int64_t wall_ms() const override {
        using namespace std::chrono;
        return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    }
    // Two clocks read one after the other, each cut to whole ms, differ by one more or
    // less from call to call (more when the thread is preempted between the reads), so
    // the offset is kept process-wide and moved only when the wall clock was set (or
    // slewed) by more than kWallStepMs since.
    static constexpr int64_t kWallStepMs = 100;
    int64_t wall_offset_ms() const override {
        static std::atomic<int64_t> kept{INT64_MIN};
        const int64_t seen = wall_ms() - now_ms();
        int64_t k = kept.load(std::memory_order_relaxed);
        if (k != INT64_MIN && seen - k <= kWallStepMs && k - seen <= kWallStepMs) return k;
        kept.compare_exchange_strong(k, seen, std::memory_order_relaxed);
        return kept.load(std::memory_order_relaxed);
    }
};

// Time moves only when a test says so; safe to read from other threads. The wall clock
// is the boot clock plus an offset a test can step.
class ManualClock final : public Clock {
public:
    explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
    int64_t now_ms() const override { return now_.load(); }
    int64_t wall_ms() const override { return now_.load() + wall_offset_.load(); }
    void step_wall_ms(int64_t d) { wall_offset_.fetch_add(d); }  // someone sets the date
    void set_ms(int64_t t) { now_.store(t); }
    void advance_ms(int64_t d) { now_.fetch_add(d); }
    void advance_s(double s) { now_.fetch_add(static_cast<int64_t>(s * 1000)); }

private:
    std::atomic<int64_t> now_;
    std::atomic<int64_t> wall_offset_{0};
};

}  // namespace smtpgov
