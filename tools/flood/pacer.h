// Token-bucket scheduling against CLOCK_MONOTONIC: frame k is due at start + k/rate.
// next() sleeps until at least min_batch frames are due (or the end is near) and
// returns how many to send now, capped at max_batch; 0 when count or duration is
// exhausted.
#pragma once

#include <atomic>
#include <cstdint>

namespace flood {

double now_s();   // CLOCK_MONOTONIC seconds
extern std::atomic<bool> g_stop;   // set by SIGINT/SIGTERM: finish early, still report

class Pacer {
public:
    Pacer(double rate, uint64_t count, double duration, uint32_t max_batch);
    uint32_t next();
    void sent(uint32_t n) { sent_ += n; }
    uint64_t total() const { return sent_; }
    double started() const { return start_; }
    uint32_t min_batch() const { return min_batch_; }

private:
    double rate_, duration_, start_;
    uint64_t count_, sent_ = 0;
    uint32_t max_batch_, min_batch_;
};

} // namespace flood
