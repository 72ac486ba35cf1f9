// Injectable wall clock (Unix milliseconds): pins and persisted tier times must survive a
// restart, so the controller's reputation runs on wall time, and tests on a ManualClock.
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
    virtual int64_t now_ms() const = 0;
};

struct SystemClock final : Clock {
    int64_t now_ms() const override {
        using namespace std::chrono;
        return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    }
};

// Time moves only when a test says so; safe to read from other threads.
class ManualClock final : public Clock {
public:
    explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
    int64_t now_ms() const override { return now_.load(); }
    void set_ms(int64_t t) { now_.store(t); }
    void advance_ms(int64_t d) { now_.fetch_add(d); }
    void advance_s(double s) { now_.fetch_add(static_cast<int64_t>(s * 1000)); }

private:
    std::atomic<int64_t> now_;
};

}  // namespace smtpgov
