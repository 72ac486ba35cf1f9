// smtpgov-bench-datapath: ns/frame of the XDP datapath per traffic class against an
// empty XDP program, via BPF_PROG_TEST_RUN inside a private network namespace.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <smtpgov/abi.h>

#include "smtpgov.skel.h"
#include "xdp_pass.skel.h"

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint32_t kSlot = 1;
constexpr int kRounds = 7;

[[noreturn]] void die(const std::string& what)
{
    std::fprintf(stderr, "smtpgov-bench-datapath: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

uint16_t csum(const uint8_t* p, size_t n, uint32_t sum = 0)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += uint32_t(p[i]) << 8 | p[i + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
}

// Ethernet + IPv4 + TCP (no options) with valid checksums.
Bytes tcp_frame(uint16_t dport, uint8_t flags)
{
    Bytes f(54, 0);
    const uint8_t macs[12] = {2, 0, 0x5e, 0, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56};
    std::memcpy(f.data(), macs, 12);
    f[12] = 0x08;
    uint8_t* ip = &f[14];
    const uint8_t iph[20] = {0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0,
                             10, 1, 0, 2, 198, 51, 100, 7};
    std::memcpy(ip, iph, 20);
    uint16_t c = csum(ip, 20);
    ip[10] = uint8_t(c >> 8);
    ip[11] = uint8_t(c);
    uint8_t* th = &f[34];
    th[0] = 0x9c;   // sport 40000
    th[1] = 0x40;
    th[2] = uint8_t(dport >> 8);
    th[3] = uint8_t(dport);
    th[7] = 1;
    th[12] = 0x50;
    th[13] = flags;
    th[14] = 0xfa;
    uint32_t pseudo = (10u << 8 | 1) + 2 + (198u << 8 | 51) + (100u << 8 | 7) + 6 + 20;
    c = csum(th, 20, pseudo);
    th[16] = uint8_t(c >> 8);
    th[17] = uint8_t(c);
    return f;
}

Bytes arp_frame()
{
    Bytes f(60, 0);
    std::memset(f.data(), 0xff, 6);
    f[12] = 0x08;
    f[13] = 0x06;
    return f;
}

int make_iface()
{
    if (unshare(CLONE_NEWNET))
        die("unshare(CLONE_NEWNET)");
    if (std::system("ip link add sgbench0 type veth peer name sgbench0p && ip link set sgbench0 up"))
        die("create veth in the benchmark namespace");
    return int(if_nametoindex("sgbench0"));
}

// Median over kRounds of the kernel's per-repeat duration (ns).
double run(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat, uint32_t expect)
{
    std::vector<double> samples;
    Bytes out(frame.size() + 64);
    int loops = repeat == 1 ? 20000 : kRounds;   // repeat=1 for frames the program rewrites
    for (int r = 0; r < loops; r++) {
        xdp_md ctx{};
        ctx.data_end = uint32_t(frame.size());
        ctx.ingress_ifindex = uint32_t(ifindex);
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                    .data_size_in = uint32_t(frame.size()), .data_size_out = uint32_t(out.size()),
                    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = int(repeat));
        if (bpf_prog_test_run_opts(prog_fd, &opts))
            die("BPF_PROG_TEST_RUN");
        if (opts.retval != expect) {
            std::fprintf(stderr, "smtpgov-bench-datapath: action %u, expected %u\n", opts.retval, expect);
            std::exit(1);
        }
        samples.push_back(opts.duration);
    }
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
}

void set_vm(smtpgov_bpf* skel, uint32_t rate, uint32_t burst, uint8_t over)
{
    sg_vm_policy pol{};
    pol.rate = rate;
    pol.burst = burst;
    pol.tier = SG_TIER_OK;
    pol.over_action = over;
    pol.flags = SG_VMF_ACTIVE;
    uint32_t slot = kSlot;
    sg_bucket zero{};
    if (bpf_map__update_elem(skel->maps.sg_vm_policy, &slot, sizeof(slot), &pol, sizeof(pol), 0) ||
        bpf_map__update_elem(skel->maps.sg_vm_bucket, &slot, sizeof(slot), &zero, sizeof(zero), 0))
        die("seed VM maps");
}

}  // namespace

int main(int argc, char** argv)
{
    uint32_t repeat = argc > 1 ? uint32_t(std::strtoul(argv[1], nullptr, 0)) : 1000000;
    int ifindex = make_iface();
    smtpgov_bpf* sg = smtpgov_bpf__open_and_load();
    xdp_pass_bpf* empty = xdp_pass_bpf__open_and_load();
    if (!sg || !empty)
        die("load BPF objects");
    sg_iface ifc{kSlot, SG_IFACE_HAS_VM};
    uint32_t key = uint32_t(ifindex);
    if (bpf_map__update_elem(sg->maps.sg_ifaces, &key, sizeof(key), &ifc, sizeof(ifc), 0))
        die("seed sg_ifaces");
    int xdp = bpf_program__fd(sg->progs.smtpgov_xdp);
    int base = bpf_program__fd(empty->progs.xdp_pass);
    Bytes syn = tcp_frame(25, 0x02), ack = tcp_frame(443, 0x10), arp = arp_frame();

    struct Row {
        const char* name;
        double ns;
        bool single;   // measured with repeat=1 (compared with the empty program at repeat=1)
    };
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

    std::printf("%-28s %10s %8s %9s\n", "class", "ns/frame", "Mpps", "vs empty");
    for (const Row& r : rows) {
        double ratio = r.ns / (r.single ? empty_single : empty_ns);
        std::printf("%-28s %10.1f %8.2f %8.2fx%s\n", r.name, r.ns, r.ns > 0 ? 1000.0 / r.ns : 0.0,
                    ratio, r.single ? " *" : "");
    }
    std::printf("medians of %d rounds x %u repeats; * repeat=1 (the program rewrites the frame), "
                "compared with the empty program at repeat=1 (%.1f ns)\n",
                kRounds, repeat, empty_single);
    smtpgov_bpf__destroy(sg);
    xdp_pass_bpf__destroy(empty);
    return 0;
}
