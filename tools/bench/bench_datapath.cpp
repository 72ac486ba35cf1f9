// smtpgov-bench-datapath: ns/frame of the datapath per traffic class against empty XDP
// and TC programs, via BPF_PROG_TEST_RUN inside a private network namespace, on the
// production kern::Datapath (unpinned) from tests/lib (sg_testlib). Connection-table
// rows: a SYN that creates an entry, the VM's data on a tracked connection, steered
// SYN and data (rewritten), and on the return path a tracked reply, the reverse NAT
// and VM-bound traffic that is not SMTP. Then the per-stage breakdown of a new SMTP
// connection: one private instance per stop (rodata sg_static_cfg.bench_stop, abi.h
// enum sg_bench_stop) that passes the SYN right after that stage; last, an over-limit
// VM flooded from one CPU and from two at once (bench_contention.cpp).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <smtpgov/abi.h>

#include "bench_contention.h"
#include "flow.h"
#include "steer_setup.h"
#include "test_datapath.h"
#include "xdp_pass.skel.h"

namespace {

using sgt::Bytes;
using sgt::Flow;

constexpr uint32_t kSlot = 1, kSteeredSlot = 2;
constexpr int kRounds = 7;
constexpr uint32_t kSingles = 20000;   // repeat=1 runs of a row whose frames change

struct EmptyPrograms {
    struct Destroy {
        void operator()(xdp_pass_bpf* s) const { xdp_pass_bpf__destroy(s); }
    };
    std::unique_ptr<xdp_pass_bpf, Destroy> skel{xdp_pass_bpf__open_and_load()};
    int xdp() const { return bpf_program__fd(check()->progs.xdp_pass); }
    int tc() const { return bpf_program__fd(check()->progs.tc_pass); }
    xdp_pass_bpf* check() const
    {
        if (!skel)
            throw std::runtime_error("load the empty programs");
        return skel.get();
    }
};

// One run of a program on a frame: its kernel-measured ns per repeat and its action.
using Runner = std::function<std::pair<double, int>(const Bytes& frame, uint32_t repeat)>;

Runner xdp_runner(int fd, int ifindex)
{
    return [=](const Bytes& f, uint32_t repeat) {
        sgt::XdpRun r = sgt::run_xdp(fd, f, ifindex, repeat);
        return std::make_pair(double(r.duration_ns), int(r.action));
    };
}

Runner tc_runner(int fd, int ifindex)
{
    return [=](const Bytes& f, uint32_t repeat) {
        sgt::TcRun r = sgt::run_tc_frame(fd, f, ifindex, repeat);
        return std::make_pair(double(r.duration_ns), r.action);
    };
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Median over kRounds x `repeat` of one frame.
double repeated(const Runner& run, const Bytes& frame, uint32_t repeat, int expect)
{
    std::vector<double> samples;
    for (int r = 0; r < kRounds; r++) {
        auto [ns, action] = run(frame, repeat);
        if (action != expect)
            throw std::runtime_error("action " + std::to_string(action) + ", expected " + std::to_string(expect));
        samples.push_back(ns);
    }
    return median(samples);
}

// Median of repeat=1 runs over frames (each run sees its frame as built: rewrites, new tuples).
double singles(const Runner& run, const std::vector<Bytes>& frames, int expect)
{
    std::vector<double> samples;
    for (const Bytes& f : frames) {
        auto [ns, action] = run(f, 1);
        if (action != expect)
            throw std::runtime_error("action " + std::to_string(action) + ", expected " + std::to_string(expect));
        samples.push_back(ns);
    }
    return median(samples);
}

std::vector<Bytes> times(const Bytes& f, uint32_t n) { return std::vector<Bytes>(n, f); }

// n SYNs of distinct connections from vm (source ports 1024...).
std::vector<Bytes> new_syns(const Flow& base, uint32_t n)
{
    std::vector<Bytes> out;
    for (uint32_t i = 0; i < n; i++) {
        Flow f = base;
        f.vm_port = uint16_t(1024 + i);
        out.push_back(f.syn());
    }
    return out;
}

struct Row {
    std::string name;
    double ns;
    bool single;   // repeat=1: compared with the empty program at repeat=1
    bool tc;       // compared with the empty TC program
};

struct Baselines {
    double xdp, xdp_single, tc, tc_single;
    double of(const Row& r) const { return r.tc ? (r.single ? tc_single : tc) : (r.single ? xdp_single : xdp); }
};

void print(const std::vector<Row>& rows, const Baselines& b, uint32_t repeat)
{
    std::printf("%-40s %9s %8s %8s %9s\n", "class", "ns/frame", "Mpps", "+ns", "vs empty");
    for (const Row& r : rows) {
        double base = b.of(r);
        std::printf("%-40s %9.1f %8.2f %8.1f %8.2fx%s\n", r.name.c_str(), r.ns, r.ns > 0 ? 1000.0 / r.ns : 0.0,
                    r.ns - base, r.ns / base, r.single ? " *" : "");
    }
    std::printf("medians of %d rounds x %u repeats; * repeat=1 over %u frames (rewritten frames, new tuples),\n"
                "compared with the empty program at repeat=1 (XDP %.1f ns, TC %.1f ns); TC rows against the\n"
                "empty TC program (%.1f ns)\n",
                kRounds, repeat, kSingles, b.xdp_single, b.tc_single, b.tc);
}

// host: the last byte of the VM's one IPv4 address 10.1.0.host (SG_VMF_ONE_V4)
void set_vm(const sgt::TestDatapath& dp, uint32_t slot, uint8_t tier, uint32_t rate, uint32_t burst, uint8_t over,
            uint8_t flags = SG_VMF_ACTIVE, uint8_t host = 0)
{
    sg_vm_policy pol = sgt::policy(tier, rate, burst, over, SG_ACT_DROP, flags);
    if (flags & SG_VMF_ONE_V4) {
        const uint8_t a[4] = {10, 1, 0, host};
        std::memcpy(pol.v4_addr, a, 4);
    }
    dp.vm(slot, pol);
    dp.reset_slot(slot);   // a full bucket for the new policy
}

struct Stage {
    const char* name;
    uint32_t stop;
    bool lpm = true;   // the spoof check by LPM lookup (else inline: SG_VMF_ONE_V4)
};

// In program order; each row is the program stopped after that stage (the last: whole).
constexpr Stage kStages[] = {
    {"parse, classify, sg_global", SG_STOP_PARSE},
    {"+ judge call, interface entry", SG_STOP_IFACE},
    {"+ VM policy/bucket/counters lookups", SG_STOP_VM},
    {"+ spoof check (LPM)", SG_STOP_SPOOF},
    {"+ clock", SG_STOP_CLOCK},
    {"+ token bucket (+ event)", SG_STOP_BUCKET},
    {"+ verdict charged", SG_STOP_CHARGE},
    {"+ connection entry: whole program", SG_STOP_NONE},
    {"whole, one IPv4 address inline (no LPM)", SG_STOP_NONE, false},
};

constexpr uint32_t kOverSlot = 3, kBlockedSlot = 4;

// One instance stopped at `stop` with three VMs, each with its address registered (spoof
// check on; lpm: by LPM lookup, else inline as the daemon writes a VM with one IPv4 address): passed (kSlot on ifaces[0], rate and burst 4e9), over its limit (kOverSlot
// on ifaces[1], rate 1/s and burst 1, its one token taken: the bucket is read, no CAS)
// and blocked (kBlockedSlot on ifaces[2]).
std::unique_ptr<sgt::TestDatapath> stage_instance(uint32_t stop, const int (&ifaces)[3], const Bytes& over_syn,
                                                  bool lpm)
{
    auto dp = std::make_unique<sgt::TestDatapath>(std::vector<uint16_t>{}, stop);
    dp->runtime(sgt::proxy_runtime(46, SG_TIER_THROTTLED, SG_CONN_PER_VM_MAX));
    const uint32_t slots[3] = {kSlot, kOverSlot, kBlockedSlot};
    for (int i = 0; i < 3; i++) {
        dp->iface(ifaces[i], SG_IFACE_HAS_VM, slots[i]);
        dp->route(i == 0 ? "10.1.0.2" : (i == 1 ? "10.1.0.4" : "10.1.0.5"), 32, slots[i]);
    }
    const uint8_t addrs = SG_VMF_ACTIVE | SG_VMF_HAS_ADDRS | (lpm ? 0 : SG_VMF_ONE_V4);
    set_vm(*dp, kSlot, SG_TIER_OK, 4000000000u, 4000000000u, SG_ACT_DROP, addrs, 2);
    set_vm(*dp, kOverSlot, SG_TIER_OK, 1, 1, SG_ACT_DROP, addrs, 4);
    set_vm(*dp, kBlockedSlot, SG_TIER_BLOCKED, 1, 1, SG_ACT_DROP, addrs, 5);
    dp->xdp(over_syn, ifaces[1]);   // takes the over-limit VM's one token
    return dp;
}

// ns/frame of each stage for the three VMs of stage_instance, rounds interleaved over
// the stages: passed (a new connection per frame: repeat=1 over new tuples, against the
// empty program at repeat=1), over its limit and blocked (repeat, against the empty
// program at repeat).
void breakdown(uint32_t repeat, const Baselines& b)
{
    const int ifaces[3] = {sgt::test_iface("sgstage0"), sgt::test_iface("sgstage1"), sgt::test_iface("sgstage2")};
    const Flow pass_flow, over_flow{.vm = "10.1.0.4", .vm_port = 9}, blk_flow{.vm = "10.1.0.5", .vm_port = 9};
    const Bytes over_syn = over_flow.syn(), blk_syn = blk_flow.syn();
    constexpr size_t kStageCount = sizeof(kStages) / sizeof(kStages[0]);
    std::vector<std::unique_ptr<sgt::TestDatapath>> dps;
    for (const Stage& st : kStages)
        dps.push_back(stage_instance(st.stop, ifaces, over_syn, st.lpm));
    const uint32_t per_round = kSingles / kRounds;
    std::vector<std::vector<double>> pass(kStageCount), over(kStageCount), blk(kStageCount);
    for (int r = 0; r < kRounds; r++) {
        std::vector<Bytes> fresh;
        for (uint32_t i = 0; i < per_round; i++) {
            Flow f = pass_flow;
            f.vm_port = uint16_t(1024 + r * per_round + i);
            fresh.push_back(f.syn());
        }
        for (size_t i = 0; i < kStageCount; i++) {
            bool judged = kStages[i].stop == SG_STOP_NONE || kStages[i].stop >= SG_STOP_CHARGE;
            int fd = dps[i]->kern().xdp_prog_fd();
            for (const Bytes& f : fresh) {
                auto [ns, action] = xdp_runner(fd, ifaces[0])(f, 1);
                if (action != XDP_PASS)
                    throw std::runtime_error(std::string(kStages[i].name) + ": passed SYN refused");
                pass[i].push_back(ns);
            }
            auto [ons, oact] = xdp_runner(fd, ifaces[1])(over_syn, repeat);
            auto [bns, bact] = xdp_runner(fd, ifaces[2])(blk_syn, repeat);
            if (oact != (judged ? XDP_DROP : XDP_PASS) || bact != (judged ? XDP_DROP : XDP_PASS))
                throw std::runtime_error(std::string(kStages[i].name) + ": unexpected action");
            over[i].push_back(ons);
            blk[i].push_back(bns);
        }
    }
    std::printf("\nper-stage breakdown of a new SMTP connection (VMs with a registered address)\n");
    std::printf("%-40s %8s %7s %7s | %8s %7s %7s | %8s %7s %7s\n", "program stopped after", "passed*", "+ns",
                "stage", "over", "+ns", "stage", "blocked", "+ns", "stage");
    double pp = b.xdp_single, po = b.xdp, pb = b.xdp;
    for (size_t i = 0; i < kStageCount; i++) {
        double p = median(pass[i]), o = median(over[i]), k = median(blk[i]);
        std::printf("%-40s %8.1f %7.1f %7.1f | %8.1f %7.1f %7.1f | %8.1f %7.1f %7.1f\n", kStages[i].name, p,
                    p - b.xdp_single, p - pp, o, o - b.xdp, o - po, k, k - b.xdp, k - pb);
        pp = p, po = o, pb = k;
    }
    std::printf("* repeat=1 over %u new connections, against the empty program at repeat=1 (%.1f ns); over and\n"
                "blocked: medians of %d rounds x %u repeats against the empty program (%.1f ns); stage = this row\n"
                "minus the one above (last row: minus the whole program with the LPM lookup). A blocked VM's\n"
                "judgement ends at its tier: no clock, no bucket.\n",
                per_round * kRounds, b.xdp_single, kRounds, repeat, b.xdp);
}

// A new passed SYN's connection entry with sg_conn and sg_conn_ring allocated as used
// (production) and preallocated, interleaved rounds: medians of repeat=1 runs.
void prealloc_compare(const Baselines& b)
{
    const int hv = sgt::test_iface("sgalloc0");
    const Flow f;
    std::vector<std::unique_ptr<sgt::TestDatapath>> dps;
    for (bool pre : {false, true}) {
        auto dp = std::make_unique<sgt::TestDatapath>(std::vector<uint16_t>{}, SG_STOP_NONE, pre);
        dp->iface(hv, SG_IFACE_HAS_VM, kSlot);
        dp->runtime(sgt::proxy_runtime(46, SG_TIER_THROTTLED, SG_CONN_PER_VM_MAX));
        set_vm(*dp, kSlot, SG_TIER_OK, 4000000000u, 4000000000u, SG_ACT_DROP);
        dps.push_back(std::move(dp));
    }
    const uint32_t per_round = kSingles / kRounds;
    std::vector<double> ns[2];
    for (int r = 0; r < kRounds; r++)
        for (int v = 0; v < 2; v++)
            for (uint32_t i = 0; i < per_round; i++) {
                Flow g = f;
                g.vm_port = uint16_t(1024 + r * per_round + i);
                auto [t, action] = xdp_runner(dps[size_t(v)]->kern().xdp_prog_fd(), hv)(g.syn(), 1);
                if (action != XDP_PASS)
                    throw std::runtime_error("passed SYN refused");
                ns[v].push_back(t);
            }
    std::printf("\nSMTP SYN passed, new entry (repeat=1, %u frames each, interleaved rounds):\n", per_round * kRounds);
    std::printf("  sg_conn, sg_conn_ring allocated as used (BPF_F_NO_PREALLOC): %7.1f ns (+%.1f)\n", median(ns[0]),
                median(ns[0]) - b.xdp_single);
    std::printf("  sg_conn, sg_conn_ring preallocated:                          %7.1f ns (+%.1f)\n", median(ns[1]),
                median(ns[1]) - b.xdp_single);
}

void bench(uint32_t repeat)
{
    const int hv = sgt::test_iface("sgbench0"), steered_if = sgt::test_iface("sgbench1");
    sgt::TestDatapath sg;
    EmptyPrograms empty;
    sg.iface(hv, SG_IFACE_HAS_VM, kSlot);
    sg.iface(steered_if, SG_IFACE_HAS_VM, kSteeredSlot);
    sg.runtime(sgt::proxy_runtime(46, SG_TIER_THROTTLED, SG_CONN_PER_VM_MAX));   // no eviction in these rows
    const Runner xdp = xdp_runner(sg.kern().xdp_prog_fd(), hv), xdp_steered = xdp_runner(sg.kern().xdp_prog_fd(), steered_if);
    const Runner tc = tc_runner(sg.kern().tc_prog_fd(), hv), tc_steered = tc_runner(sg.kern().tc_prog_fd(), steered_if);
    const Runner xdp0 = xdp_runner(empty.xdp(), hv), tc0 = tc_runner(empty.tc(), hv);
    const Flow f, web{.port = 443};
    const Bytes syn = f.syn(), arp = sgt::Packet()
                                         .eth(sgt::kVmMac, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
                                         .ethertype(0x0806)
                                         .l2_padding(46)
                                         .build();

    Baselines b{};
    b.xdp = repeated(xdp0, syn, repeat, XDP_PASS);
    b.xdp_single = singles(xdp0, times(syn, kSingles), XDP_PASS);
    b.tc = repeated(tc0, f.synack(), repeat, TC_ACT_OK);
    b.tc_single = singles(tc0, times(f.synack(), kSingles), TC_ACT_OK);

    std::vector<Row> rows;
    auto add = [&](const std::string& name, double ns, bool single, bool is_tc) { rows.push_back({name, ns, single, is_tc}); };
    add("non-IP", repeated(xdp, arp, repeat, XDP_PASS), false, false);
    add("non-SMTP TCP", repeated(xdp, web.vm_data("GET /"), repeat, XDP_PASS), false, false);
    set_vm(sg, kSlot, SG_TIER_OK, 4000000000u, 4000000000u, SG_ACT_DROP);
    add("SMTP SYN passed: new entry", singles(xdp, new_syns(f, kSingles), XDP_PASS), true, false);
    add("SMTP SYN passed again: entry found", repeated(xdp, syn, repeat, XDP_PASS), false, false);
    add("SMTP data from the VM: entry lookup", repeated(xdp, f.vm_data("RCPT TO:<a@b>\r\n"), repeat, XDP_PASS), false,
        false);
    set_vm(sg, kSlot, SG_TIER_OK, 0, 1, SG_ACT_DROP);
    add("SMTP SYN over limit (drop)", repeated(xdp, Flow{.vm_port = 9}.syn(), repeat, XDP_DROP), false, false);
    set_vm(sg, kSlot, SG_TIER_OK, 0, 1, SG_ACT_RESET);
    add("SMTP SYN reset", singles(xdp, times(Flow{.vm_port = 9}.syn(), kSingles), XDP_TX), true, false);
    set_vm(sg, kSteeredSlot, SG_TIER_STEERED, 4000000000u, 4000000000u, SG_ACT_DROP);
    const Flow s{.vm = "10.1.0.3"};
    add("steered SYN: new entry + rewrite", singles(xdp_steered, new_syns(s, kSingles), XDP_PASS), true, false);
    Flow first = s;
    first.vm_port = 1024;   // the first of those connections
    add("steered data: rewrite", singles(xdp_steered, times(first.vm_data("DATA\r\n"), kSingles), XDP_PASS), true, false);
    add("empty program", b.xdp, false, false);

    // the return path: f is tracked (ESTABLISHED), s's first connection steered
    sg.tc(f.synack(), hv);
    add("TC: non-SMTP TCP to the VM", repeated(tc, web.reply("HTTP/1.1 200 OK\r\n"), repeat, TC_ACT_OK), false, true);
    add("TC: server ACK on a tracked connection", repeated(tc, f.in().ack().seq(f.server_isn + 1).ackno(f.isn + 1).build(), repeat, TC_ACT_OK), false, true);
    Flow proxy = first;
    proxy.server = sgt::kProxy4;
    proxy.port = sgt::kProxyPort;
    add("TC: proxy's segment, reverse NAT", singles(tc_steered, times(proxy.synack(), kSingles), TC_ACT_OK), true, true);
    add("empty TC program", b.tc, false, true);
    print(rows, b, repeat);
    breakdown(repeat, b);
    prealloc_compare(b);
    sgb::contention(repeat, empty.xdp());
}

}  // namespace

int main(int argc, char** argv)
{
    uint32_t repeat = argc > 1 ? uint32_t(std::strtoul(argv[1], nullptr, 0)) : 1000000;
    try {
        bench(repeat);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "smtpgov-bench-datapath: %s\n", e.what());
        return 1;
    }
    return 0;
}
