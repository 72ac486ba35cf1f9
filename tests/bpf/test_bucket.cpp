// GCRA token bucket: burst then rate, refill, two CPUs flooding one VM, and the
// rate-limited over-limit events whose cumulative counts add up to the refused SYNs.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <thread>
#include <vector>

#include "test_datapath.h"

namespace sgt {
namespace {

constexpr uint32_t kSlot = 1;

double now_s()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

Bytes smtp_syn() { return Packet().eth().ipv4("10.1.0.2", "198.51.100.7").tcp(40000, 25).syn().build(); }

void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

class Bucket : public ::testing::Test {
protected:
    void SetUp() override
    {
        ifindex_ = test_iface("sgb0");
        dp_.iface(ifindex_, SG_IFACE_HAS_VM, kSlot);
    }
    uint32_t send(int n) const
    {
        uint32_t passed = 0;
        for (int i = 0; i < n; i++)
            passed += dp_.xdp(syn_, ifindex_).action == XDP_PASS;
        return passed;
    }
    // Over-limit events of `slot` are spaced >= 100 ms and carry the VM's throttled SYNs
    // so far (summed over CPUs, the SYN that sent it included): the totals only grow, each
    // by at least the event's own SYN, and the differences the controller takes plus what
    // came after the last event add up to the counter exactly.
    void check_events(uint64_t throttled, double elapsed) const
    {
        uint64_t sum = 0, n = 0, last = 0, prev = 0;
        for (const sg_event& ev : dp_.drain_events()) {
            ASSERT_EQ(ev.type, uint32_t(SG_EV_OVER_LIMIT));
            ASSERT_EQ(ev.slot, kSlot);
            if (n++) {
                EXPECT_GE(ev.ts_ns - last, SG_EVENT_INTERVAL_NS);
            }
            last = ev.ts_ns;
            ASSERT_GT(ev.count, prev) << "event " << n << ": totals only grow";
            ASSERT_LE(ev.count, throttled) << "event " << n;
            sum += ev.count - prev;
            prev = ev.count;
        }
        EXPECT_GE(n, 1u);
        EXPECT_LE(double(n), elapsed / 0.1 + 1);
        EXPECT_EQ(sum + (throttled - prev), throttled);
    }
    // n SYNs of the VM run on `cpu` (repeat n), from a thread pinned there.
    void send_on(int cpu, uint32_t n) const
    {
        std::thread t([&] {
            pin(cpu);
            dp_.xdp(syn_, ifindex_, n);
        });
        t.join();
    }
    int ifindex_ = 0;
    Bytes syn_ = smtp_syn();
    TestDatapath dp_;
};

TEST_F(Bucket, BurstThenRateThenRefill)
{
    constexpr double kRate = 20;
    dp_.vm(kSlot, policy(SG_TIER_OK, uint32_t(kRate), 10));
    double t0 = now_s();
    uint32_t first = send(30);
    double e1 = now_s() - t0;
    EXPECT_GE(first, 10u);
    EXPECT_LE(first, 10 + uint32_t(std::ceil(kRate * e1)));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    double t1 = now_s();
    uint32_t second = send(30);
    double since_first_burst = now_s() - t0;
    // 250 ms at 20/s refills five SYNs (bounded by what accrued since the burst)
    EXPECT_GE(second, 4u);
    EXPECT_LE(second, uint32_t(std::ceil(kRate * (since_first_burst - (t1 - t0 - 0.25)))) + 1);
    EXPECT_EQ(dp_.stats(kSlot).syn[SG_VERDICT_PASS], first + second);
    EXPECT_EQ(dp_.stats(kSlot).syn[SG_VERDICT_THROTTLE], 60 - first - second);
}

TEST_F(Bucket, RateZeroOrBurstZeroPassesNothing)
{
    dp_.vm(kSlot, policy(SG_TIER_OK, 0, 100));
    EXPECT_EQ(send(20), 0u);
    dp_.vm(kSlot, policy(SG_TIER_OK, 100, 0));
    EXPECT_EQ(send(20), 0u);
    EXPECT_EQ(dp_.stats(kSlot).syn[SG_VERDICT_THROTTLE], 40u);
}

TEST_F(Bucket, OverLimitEventsAtMostOncePer100ms)
{
    dp_.vm(kSlot, policy(SG_TIER_OK, 0, 1));
    double t0 = now_s();
    while (now_s() - t0 < 0.35)
        dp_.xdp(syn_, ifindex_, 100);
    double elapsed = now_s() - t0;
    uint64_t throttled = dp_.stats(kSlot).syn[SG_VERDICT_THROTTLE];
    EXPECT_GT(throttled, 1000u);
    check_events(throttled, elapsed);
}

TEST_F(Bucket, AutoEntryEventsCarryTheKey)
{
    TestDatapath dp;
    int ifx = test_iface("sgb1");
    dp.defaults(SG_DEFAULTS_SOURCE, policy(SG_TIER_OK, 0, 1));
    dp.xdp(syn_, ifx, 10);
    auto events = dp.drain_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].slot, SG_SLOT_NONE);
    EXPECT_EQ(events[0].key.ifindex, uint32_t(ifx));
    EXPECT_EQ(events[0].key.family, 0);
    EXPECT_EQ(events[0].count, 1u) << "the first over-limit SYN reports itself";
}

// An event's count is the VM's throttled SYNs on every CPU, exactly: an event sent from
// CPU 1 counts what CPU 0 refused before it, and the other way round. Events come at
// most every 100 ms, so each run after a pause elects one with its first SYN.
TEST_F(Bucket, EventCountsTheThrottledSynsOfEveryCpu)
{
    ASSERT_GE(std::thread::hardware_concurrency(), 2u);
    dp_.vm(kSlot, policy(SG_TIER_OK, 0, 1));
    const auto pause = std::chrono::milliseconds(150);
    send_on(0, 1000);   // event 1: its first SYN
    std::this_thread::sleep_for(pause);
    send_on(1, 500);    // event 2, from CPU 1: CPU 0's 1000 and its first SYN
    std::this_thread::sleep_for(pause);
    send_on(0, 1);      // event 3, from CPU 0: 1000 + 500 + itself
    std::vector<uint64_t> counts;
    for (const sg_event& ev : dp_.drain_events())
        counts.push_back(ev.count);
    EXPECT_EQ(counts, (std::vector<uint64_t>{1, 1001, 1501}));
    auto per_cpu = dp_.stats_per_cpu(kSlot);
    EXPECT_EQ(per_cpu[0].syn[SG_VERDICT_THROTTLE], 1001u);
    EXPECT_EQ(per_cpu[1].syn[SG_VERDICT_THROTTLE], 500u);
    EXPECT_EQ(dp_.bucket(kSlot).reserved_over, 0u) << "the retired field stays unwritten";
}

// Two CPUs flood one VM for 10 s: the passed SYNs stay within 2% of burst + rate * t.
TEST_F(Bucket, TwoCpuContentionStaysWithinTwoPercent)
{
    constexpr double kRate = 2000, kBurst = 500, kWindow = 10.0;
    ASSERT_GE(std::thread::hardware_concurrency(), 2u);
    dp_.vm(kSlot, policy(SG_TIER_OK, uint32_t(kRate), uint32_t(kBurst)));
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::atomic<uint64_t> runs{0};
    double t0 = 0;
    auto flood = [&](int cpu) {
        pin(cpu);
        ready++;
        while (!go)
            ;
        while (now_s() - t0 < kWindow) {
            dp_.xdp(syn_, ifindex_, 2000);
            runs += 2000;
        }
    };
    std::thread a(flood, 0), b(flood, 1);
    while (ready < 2)
        ;
    t0 = now_s();
    go = true;
    a.join();
    b.join();
    double elapsed = now_s() - t0;

    sg_vm_stats s = dp_.stats(kSlot);
    double expected = kBurst + kRate * elapsed;
    double passed = double(s.syn[SG_VERDICT_PASS]);
    std::printf("contention: %.0f passed, %.1f expected (%.3f%%), %.3f s, %lu offered\n", passed,
                expected, 100 * (passed - expected) / expected, elapsed, (unsigned long)runs.load());
    EXPECT_EQ(s.syn[SG_VERDICT_PASS] + s.syn[SG_VERDICT_THROTTLE], runs.load());
    EXPECT_NEAR(passed, expected, 0.02 * expected)
        << "elapsed " << elapsed << " s, offered " << runs.load();
    EXPECT_GT(double(runs.load()), 10 * expected) << "the flood must far exceed the rate";
    auto per_cpu = dp_.stats_per_cpu(kSlot);
    EXPECT_GT(per_cpu[0].syn[SG_VERDICT_PASS], 0u) << "CPU 0 passed some";
    EXPECT_GT(per_cpu[1].syn[SG_VERDICT_PASS], 0u) << "CPU 1 passed some";
    check_events(s.syn[SG_VERDICT_THROTTLE], elapsed);
}

}  // namespace
}  // namespace sgt
