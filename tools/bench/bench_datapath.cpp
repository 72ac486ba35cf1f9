// smtpgov-bench-datapath: ns/frame of the datapath per traffic class against empty XDP
// and TC programs, via BPF_PROG_TEST_RUN inside a private network namespace, on the
// production kern::Datapath (unpinned) from tests/lib (sg_testlib). Connection-table
// rows: a SYN that creates an entry, the VM's data on a tracked connection, steered
// SYN and data (rewritten), and on the return path a tracked reply, the reverse NAT
// and VM-bound traffic that is not SMTP.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <smtpgov/abi.h>

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

void set_vm(const sgt::TestDatapath& dp, uint32_t slot, uint8_t tier, uint32_t rate, uint32_t burst, uint8_t over)
{
    dp.vm(slot, sgt::policy(tier, rate, burst, over));
    dp.reset_slot(slot);   // a full bucket for the new policy
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
