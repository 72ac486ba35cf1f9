// smtpgov-bench-datapath: ns/frame of the XDP datapath per traffic class against an
// empty XDP program, via BPF_PROG_TEST_RUN inside a private network namespace, on
// the production kern::Datapath (unpinned) from tests/lib (sg_testlib).
#include <linux/bpf.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <smtpgov/abi.h>

#include "test_datapath.h"
#include "xdp_pass.skel.h"

namespace {

using sgt::Bytes;

constexpr uint32_t kSlot = 1;
constexpr int kRounds = 7;

struct EmptyProgram {
    struct Destroy {
        void operator()(xdp_pass_bpf* s) const { xdp_pass_bpf__destroy(s); }
    };
    std::unique_ptr<xdp_pass_bpf, Destroy> skel{xdp_pass_bpf__open_and_load()};
    int fd() const
    {
        if (!skel)
            throw std::runtime_error("load the empty XDP program");
        return bpf_program__fd(skel->progs.xdp_pass);
    }
};

Bytes tcp_frame(uint16_t dport, uint8_t flags)
{
    return sgt::Packet().eth().ipv4("10.1.0.2", "198.51.100.7").tcp(40000, dport).flags(flags).build();
}

Bytes arp_frame()  // 60 bytes, broadcast
{
    return sgt::Packet().eth(sgt::kVmMac, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}).ethertype(0x0806).l2_padding(46).build();
}

// Median over the rounds of the kernel's per-repeat duration (ns).
double run(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat, uint32_t expect)
{
    std::vector<double> samples;
    int loops = repeat == 1 ? 20000 : kRounds;   // repeat=1 for frames the program rewrites
    for (int r = 0; r < loops; r++) {
        sgt::XdpRun run = sgt::run_xdp(prog_fd, frame, ifindex, repeat);
        if (run.action != expect)
            throw std::runtime_error("action " + std::to_string(run.action) + ", expected " + std::to_string(expect));
        samples.push_back(run.duration_ns);
    }
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
}

void set_vm(const sgt::TestDatapath& dp, uint32_t rate, uint32_t burst, uint8_t over)
{
    dp.vm(kSlot, sgt::policy(SG_TIER_OK, rate, burst, over));
    dp.reset_slot(kSlot);   // a full bucket for the new policy
}

struct Row {
    const char* name;
    double ns;
    bool single;   // measured with repeat=1 (compared with the empty program at repeat=1)
};

void print(const std::vector<Row>& rows, double empty_ns, double empty_single, uint32_t repeat)
{
    std::printf("%-28s %10s %8s %9s\n", "class", "ns/frame", "Mpps", "vs empty");
    for (const Row& r : rows) {
        double ratio = r.ns / (r.single ? empty_single : empty_ns);
        std::printf("%-28s %10.1f %8.2f %8.2fx%s\n", r.name, r.ns, r.ns > 0 ? 1000.0 / r.ns : 0.0, ratio,
                    r.single ? " *" : "");
    }
    std::printf("medians of %d rounds x %u repeats; * repeat=1 (the program rewrites the frame), "
                "compared with the empty program at repeat=1 (%.1f ns)\n",
                kRounds, repeat, empty_single);
}

void bench(uint32_t repeat)
{
    int ifindex = sgt::test_iface("sgbench0");
    sgt::TestDatapath sg;
    EmptyProgram empty;
    sg.iface(ifindex, SG_IFACE_HAS_VM, kSlot);
    const int xdp = sg.kern().xdp_prog_fd(), base = empty.fd();
    const Bytes syn = tcp_frame(25, sgt::kSyn), ack = tcp_frame(443, sgt::kAck), arp = arp_frame();

    std::vector<Row> rows;
    double empty_ns = run(base, syn, ifindex, repeat, XDP_PASS);
    double empty_single = run(base, syn, ifindex, 1, XDP_PASS);
    rows.push_back({"non-IP", run(xdp, arp, ifindex, repeat, XDP_PASS), false});
    rows.push_back({"non-SMTP TCP", run(xdp, ack, ifindex, repeat, XDP_PASS), false});
    set_vm(sg, 4000000000u, 4000000000u, SG_ACT_DROP);
    rows.push_back({"SMTP SYN passed", run(xdp, syn, ifindex, repeat, XDP_PASS), false});
    set_vm(sg, 0, 1, SG_ACT_DROP);
    rows.push_back({"SMTP SYN over limit (drop)", run(xdp, syn, ifindex, repeat, XDP_DROP), false});
    set_vm(sg, 0, 1, SG_ACT_RESET);
    rows.push_back({"SMTP SYN reset", run(xdp, syn, ifindex, 1, XDP_TX), true});
    rows.push_back({"empty program", empty_ns, false});
    print(rows, empty_ns, empty_single, repeat);
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
