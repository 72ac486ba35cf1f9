#include "pacer.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "core/clock.h"

namespace flood {

std::atomic<bool> g_stop{false};

double now_s()
{
    return (double)smtpgov::mono_ns() * 1e-9;
}

namespace {
void sleep_until(double t)
{
    timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}
} // namespace

Pacer::Pacer(double rate, uint64_t count, double duration, uint32_t max_batch)
    : rate_(rate), duration_(duration), start_(now_s()), count_(count), max_batch_(std::max<uint32_t>(1, max_batch))
{
    // about 2,000 wake-ups per second at most: small batches at low rates keep the
    // spacing exact, larger ones at high rates keep the syscall count bounded
    min_batch_ = rate_ > 0 ? (uint32_t)std::clamp(rate_ / 2000.0, 1.0, (double)max_batch_) : max_batch_;
}

uint32_t Pacer::next()
{
    for (;;) {
        double t = now_s(), elapsed = t - start_;
        if (sent_ >= count_ || elapsed >= duration_ || g_stop)
            return 0;
        uint64_t left = count_ - sent_;
        if (rate_ <= 0)
            return (uint32_t)std::min<uint64_t>(left, max_batch_);
        // frames due by now (the first one at t = 0), never more than the run allows
        uint64_t due_total = std::min<uint64_t>((uint64_t)std::floor(elapsed * rate_) + 1, count_);
        uint64_t due = due_total > sent_ ? due_total - sent_ : 0;
        if (due >= min_batch_ || (due > 0 && due == left))
            return (uint32_t)std::min<uint64_t>(due, max_batch_);
        // sleep until min_batch are due, but not past the end of the run
        uint64_t want = std::min<uint64_t>(sent_ + std::min<uint64_t>(min_batch_, left), count_);
        double wake = start_ + (double)(want - 1) / rate_;
        sleep_until(std::min(wake, start_ + duration_));
    }
}

} // namespace flood
