// smtpgov-bench-datapath's last table: one VM over its limit flooded from one CPU and
// from two CPUs at once (BPF_PROG_TEST_RUN on two threads pinned to CPUs 0 and 1), the
// case where whatever an over-limit SYN writes to the VM's shared bucket bounces its
// cache line between the CPUs. Against the empty program run the same way.
#include "bench_contention.h"

#include <linux/bpf.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <smtpgov/abi.h>

#include "flow.h"
#include "test_datapath.h"

namespace sgb {
namespace {

constexpr uint32_t kSlot = 5;
constexpr int kRounds = 7;

void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// ns/frame of `repeat` runs on `cpus` CPUs started together: the mean over the CPUs.
double run_on(int cpus, int fd, const sgt::Bytes& frame, int ifindex, uint32_t repeat, uint32_t expect)
{
    std::vector<double> ns(size_t(cpus), 0);
    std::vector<uint32_t> act(size_t(cpus), 0);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < cpus; c++)
        threads.emplace_back([&, c] {
            pin(c);
            ready++;
            while (ready < cpus)
                ;
            sgt::XdpRun r = sgt::run_xdp(fd, frame, ifindex, repeat);
            ns[size_t(c)] = r.duration_ns;
            act[size_t(c)] = r.action;
        });
    for (auto& t : threads)
        t.join();
    double sum = 0;
    for (int c = 0; c < cpus; c++) {
        if (act[size_t(c)] != expect)
            throw std::runtime_error("contention: action " + std::to_string(act[size_t(c)]));
        sum += ns[size_t(c)];
    }
    return sum / cpus;
}

}  // namespace

void contention(uint32_t repeat, int empty_xdp_fd)
{
    if (std::thread::hardware_concurrency() < 2) {
        std::printf("\ncontention: skipped (one CPU)\n");
        return;
    }
    const int ifx = sgt::test_iface("sgcont0");
    sgt::TestDatapath dp;
    dp.iface(ifx, SG_IFACE_HAS_VM, kSlot);
    dp.route("10.1.0.6", 32, kSlot);
    sg_vm_policy pol = sgt::policy(SG_TIER_OK, 1, 1, SG_ACT_DROP, SG_ACT_DROP,
                                   SG_VMF_ACTIVE | SG_VMF_HAS_ADDRS | SG_VMF_ONE_V4);
    const uint8_t addr[4] = {10, 1, 0, 6};
    std::copy(addr, addr + 4, pol.v4_addr);
    dp.vm(kSlot, pol);
    dp.reset_slot(kSlot);
    const sgt::Bytes syn = sgt::Flow{.vm = "10.1.0.6", .vm_port = 9}.syn();
    dp.xdp(syn, ifx);   // its one token taken: every later SYN is over the limit
    const int fd = dp.kern().xdp_prog_fd();
    std::vector<double> e1, e2, o1, o2;
    for (int r = 0; r < kRounds; r++) {
        e1.push_back(run_on(1, empty_xdp_fd, syn, ifx, repeat, XDP_PASS));
        o1.push_back(run_on(1, fd, syn, ifx, repeat, XDP_DROP));
        e2.push_back(run_on(2, empty_xdp_fd, syn, ifx, repeat, XDP_PASS));
        o2.push_back(run_on(2, fd, syn, ifx, repeat, XDP_DROP));
    }
    const sg_vm_stats s = dp.stats(kSlot);
    const uint64_t expect = uint64_t(kRounds) * repeat * 3 + 1;   // + the SYN that took the token
    std::printf("\nover-limit SYN of one VM (one IPv4 address inline), from one CPU and from two CPUs at once\n");
    std::printf("%-32s %9s %9s %9s\n", "", "empty", "over", "+ns");
    std::printf("%-32s %9.1f %9.1f %9.1f\n", "one CPU", median(e1), median(o1), median(o1) - median(e1));
    std::printf("%-32s %9.1f %9.1f %9.1f\n", "two CPUs, same VM (per CPU)", median(e2), median(o2),
                median(o2) - median(e2));
    std::printf("medians of %d interleaved rounds x %u repeats (two CPUs: the mean of the two threads);\n"
                "the VM's counters: %llu over its limit and %llu passed (refilled at 1/s) of %llu sent\n",
                kRounds, repeat, (unsigned long long)s.syn[SG_VERDICT_THROTTLE],
                (unsigned long long)s.syn[SG_VERDICT_PASS], (unsigned long long)expect);
}

}  // namespace sgb
