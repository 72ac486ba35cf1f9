// The connection GC (daemon/ConnTable) over the kernel's own sg_conn (a private, unpinned
// datapath): the batched walk resumes at the kernel's bucket position across steps, sees
// every entry once while entries come and go, and a step over a full table (524,288
// entries) stays short. Runs as root.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "core/clock.h"
#include "daemon/conn_table.h"
#include "daemon/kernel_maps.h"
#include "kern/datapath.h"

using namespace smtpgov;
using namespace smtpgov::daemon;

namespace {

constexpr uint64_t kS = 1'000'000'000;

sg_conn_key key_of(uint32_t i) {
    sg_conn_key k{};
    k.ifindex = 7;
    k.family = 4;
    k.vm_port = htons(static_cast<uint16_t>(1024 + i % 60000));
    k.dst_port = htons(25);
    const uint32_t a = htonl(0x0a000000u + i / 60000);  // 10.0.0.0/8, one address per 60,000 ports
    std::memcpy(k.vm_addr, &a, 4);
    k.dst_addr[0] = 203;
    return k;
}

class ConnGcKernel : public ::testing::Test {
protected:
    void SetUp() override {
        kern::DatapathOptions o;
        o.bpffs = "";  // private and unpinned
        auto dp = kern::Datapath::load(o);
        ASSERT_TRUE(dp) << dp.error().message;
        dp_.emplace(std::move(dp.value()));
        maps_.emplace(*dp_);
    }
    // n entries owned by slot i % 4; those with i % every == 0 idle since long ago.
    void fill(uint32_t n, uint64_t now, uint32_t every) {
        const int fd = dp_->map_fd(kern::MapId::Conn);
        for (uint32_t i = 0; i < n; ++i) {
            sg_conn_key k = key_of(i);
            sg_conn c{};
            c.slot = i % 4;
            c.state = SG_CONN_ESTABLISHED;
            c.created_ns = c.last_ns = every && i % every == 0 ? now - 700 * kS : now;
            ASSERT_EQ(bpf_map_update_elem(fd, &k, &c, BPF_NOEXIST), 0) << i << ": " << std::strerror(errno);
        }
    }
    size_t count() {
        const int fd = dp_->map_fd(kern::MapId::Conn);
        size_t n = 0;
        sg_conn_key cur{}, next{};
        bool first = true;
        while (bpf_map_get_next_key(fd, first ? nullptr : &cur, &next) == 0) {
            ++n;
            cur = next;
            first = false;
        }
        return n;
    }
    std::optional<kern::Datapath> dp_;
    std::optional<KernelMaps> maps_;
};

}  // namespace

// What reading a batch costs, nothing to delete: the floor of a step.
TEST_F(ConnGcKernel, StepWithNothingToDelete) {
    const uint64_t now = mono_ns();
    fill(SG_CONN_MAX, now, 0);
    ConnTable t(*maps_);
    double worst_ms = 0, total_ms = 0;
    int steps = 0;
    while (!t.complete() && steps < 200) {
        auto t0 = std::chrono::steady_clock::now();
        ASSERT_TRUE(t.step(now + 1));
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        worst_ms = std::max(worst_ms, ms);
        total_ms += ms;
        ++steps;
    }
    EXPECT_EQ(t.counts().tracked, SG_CONN_MAX);
    std::printf("[ info ] a pass over %u live entries: %d steps, %.1f ms in all, worst step %.1f ms\n", SG_CONN_MAX,
                steps, total_ms, worst_ms);
}

TEST_F(ConnGcKernel, WalkResumesAndSeesEveryEntryOnce) {
    const uint64_t now = mono_ns();
    fill(50'000, now, 0);
    BatchCursor c;
    ConnEntries out;
    std::set<std::vector<uint8_t>> seen;
    int steps = 0;
    while (!c.done && steps < 100) {
        ASSERT_TRUE(maps_->conn_entries(c, 4096, out));
        EXPECT_LE(out.size(), 4096u);
        for (const auto& [k, v] : out) {
            const auto* b = reinterpret_cast<const uint8_t*>(&k);
            EXPECT_TRUE(seen.emplace(b, b + sizeof k).second) << "an entry seen twice";
        }
        ++steps;
    }
    EXPECT_TRUE(c.done);
    EXPECT_EQ(seen.size(), 50'000u);
    EXPECT_GE(steps, 13);
}

// A whole table: a step reads at most kBatch entries (well under a sweep), the pass
// deletes exactly the idle tenth, and the counts are the live ones.
TEST_F(ConnGcKernel, FullTableInBoundedSteps) {
    const uint64_t now = mono_ns();
    fill(SG_CONN_MAX, now, 10);
    ConnTable t(*maps_);
    double worst_ms = 0;
    uint64_t deleted = 0;
    int steps = 0;
    while (!t.complete() && steps < 200) {
        auto t0 = std::chrono::steady_clock::now();
        auto r = t.step(now + 1);
        worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        ASSERT_TRUE(r) << r.error().message;
        deleted += *r;
        ++steps;
    }
    ASSERT_TRUE(t.complete());
    const uint64_t idle = (SG_CONN_MAX + 9) / 10;
    EXPECT_EQ(deleted, idle);
    EXPECT_EQ(t.counts().tracked, SG_CONN_MAX - idle);
    EXPECT_EQ(t.live(0) + t.live(1) + t.live(2) + t.live(3), SG_CONN_MAX - idle);
    EXPECT_EQ(count(), SG_CONN_MAX - idle);
    EXPECT_GE(steps, static_cast<int>(SG_CONN_MAX / ConnTable::kBatch));
    // reported, not asserted: a wall-clock bound fails on a loaded machine
    RecordProperty("steps", steps);
    RecordProperty("worst_step_ms", static_cast<int>(worst_ms));
    std::printf("[ info ] %d steps over %u entries, worst step %.1f ms (deleting up to %u idle entries)\n", steps,
                SG_CONN_MAX, worst_ms, ConnTable::kBatch / 10 + 1);
}

// Every entry idle (a mass expiry): deletions per step are capped, so steps stay short;
// the table empties over the following steps, nothing is skipped.
TEST_F(ConnGcKernel, MassExpiryInBoundedSteps) {
    const uint64_t now = mono_ns();
    fill(100'000, now, 1);
    ConnTable t(*maps_);
    double worst_ms = 0;
    int steps = 0;
    while (!t.complete() && steps < 1000) {
        auto t0 = std::chrono::steady_clock::now();
        auto r = t.step(now + 1);
        worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_LE(*r, ConnTable::kMaxDeletes);
        ++steps;
    }
    ASSERT_TRUE(t.complete());
    EXPECT_EQ(count(), 0u);
    EXPECT_EQ(t.deleted(), 100'000u);
    EXPECT_EQ(t.counts().tracked, 0u);
    EXPECT_GE(steps, static_cast<int>(100'000 / ConnTable::kMaxDeletes));
    RecordProperty("worst_step_ms", static_cast<int>(worst_ms));
    std::printf("[ info ] 100000 idle entries deleted in %d steps, worst step %.1f ms\n", steps, worst_ms);
}
