#include "harness.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "smtpgov.skel.h"

namespace sgt {
namespace {

void check(int rc, const std::string& what)
{
    if (rc < 0)
        throw std::runtime_error(what + ": " + std::strerror(rc == -1 ? errno : -rc));
}

int ncpus()
{
    static int n = libbpf_num_possible_cpus();
    return n;
}

}  // namespace

int test_iface(const std::string& name, unsigned index)
{
    static std::once_flag once;
    std::call_once(once, [] {
        check(unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");
        check(std::system("ip link set lo up") == 0 ? 0 : -EIO, "ip link set lo up");
    });
    if (unsigned idx = if_nametoindex(name.c_str()))
        return int(idx);
    // veth, not dummy: the test kernel has no dummy driver; the peer stays unused
    std::string at = index ? " index " + std::to_string(index) : "";
    std::string cmd = "ip link add " + name + at + " type veth peer name " + name + "p && ip link set " +
                      name + " up && ip link set " + name + "p up";
    check(std::system(cmd.c_str()) == 0 ? 0 : -EIO, cmd);
    return int(if_nametoindex(name.c_str()));
}

sg_vm_policy policy(uint8_t tier, uint32_t rate, uint32_t burst, uint8_t over, uint8_t block,
                    uint8_t flags)
{
    sg_vm_policy p{};
    p.rate = rate;
    p.burst = burst;
    p.tier = tier;
    p.over_action = over;
    p.block_action = block;
    p.flags = flags;
    return p;
}

Datapath::Datapath(const std::vector<uint16_t>& ports)
{
    skel_ = smtpgov_bpf__open();
    if (!skel_)
        throw std::runtime_error("smtpgov_bpf__open failed");
    if (!ports.empty()) {
        auto* cfg = const_cast<sg_static_cfg*>(&skel_->rodata->sg_cfg);
        std::memset(cfg->ports, 0, sizeof(cfg->ports));
        for (size_t i = 0; i < ports.size() && i < SG_MAX_PORTS; i++)
            cfg->ports[i] = ports[i];
        cfg->n_ports = uint32_t(ports.size());
    }
    int rc = smtpgov_bpf__load(skel_);
    if (rc) {
        smtpgov_bpf__destroy(skel_);
        check(rc, "smtpgov_bpf__load");
    }
}

Datapath::~Datapath() { smtpgov_bpf__destroy(skel_); }

int Datapath::xdp_fd() const { return bpf_program__fd(skel_->progs.smtpgov_xdp); }
int Datapath::tc_fd() const { return bpf_program__fd(skel_->progs.smtpgov_tc_reply); }

int Datapath::map_fd(const char* name) const
{
    return bpf_map__fd(bpf_object__find_map_by_name(skel_->obj, name));
}

XdpRun Datapath::xdp(const Bytes& frame, int ifindex, uint32_t repeat) const
{
    XdpRun r;
    r.out.resize(frame.size() + 256);
    xdp_md ctx{};
    ctx.data_end = uint32_t(frame.size());
    ctx.ingress_ifindex = uint32_t(ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_out = r.out.data(), .data_size_in = uint32_t(frame.size()),
                .data_size_out = uint32_t(r.out.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof(ctx), .repeat = int(repeat));
    check(bpf_prog_test_run_opts(xdp_fd(), &opts), "BPF_PROG_TEST_RUN xdp");
    r.action = opts.retval;
    r.duration_ns = opts.duration;
    r.out.resize(opts.data_size_out);
    return r;
}

int Datapath::tc(const Bytes& frame, int ifindex) const
{
    __sk_buff ctx{};
    ctx.ifindex = uint32_t(ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = uint32_t(frame.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof(ctx), .repeat = 1);
    check(bpf_prog_test_run_opts(tc_fd(), &opts), "BPF_PROG_TEST_RUN tc");
    return int(opts.retval);
}

void Datapath::iface(int ifindex, uint32_t flags, uint32_t slot) const
{
    sg_iface v{slot, flags};
    uint32_t k = uint32_t(ifindex);
    // the same split as kern/map_io: an array below SG_MAX_IFACES, a hash above
    const char* map = k < SG_MAX_IFACES ? "sg_ifaces" : "sg_ifaces_big";
    check(bpf_map_update_elem(map_fd(map), &k, &v, BPF_ANY), map);
}

void Datapath::vm(uint32_t slot, const sg_vm_policy& pol) const
{
    check(bpf_map_update_elem(map_fd("sg_vm_policy"), &slot, &pol, BPF_ANY), "update sg_vm_policy");
}

void Datapath::defaults(uint32_t idx, const sg_vm_policy& pol) const
{
    check(bpf_map_update_elem(map_fd("sg_defaults"), &idx, &pol, BPF_ANY), "update sg_defaults");
}

void Datapath::auto_policy(const sg_auto_key& key, const sg_vm_policy& pol) const
{
    check(bpf_map_update_elem(map_fd("sg_auto_policy"), &key, &pol, BPF_ANY), "update sg_auto_policy");
}

void Datapath::route(const std::string& prefix, uint32_t len, uint32_t slot) const
{
    Bytes a = addr(prefix);
    if (a.size() == 4) {
        sg_lpm_v4 k{len, {}};
        std::memcpy(k.addr, a.data(), 4);
        check(bpf_map_update_elem(map_fd("sg_vm_v4"), &k, &slot, BPF_ANY), "update sg_vm_v4");
    } else {
        sg_lpm_v6 k{len, {}};
        std::memcpy(k.addr, a.data(), 16);
        check(bpf_map_update_elem(map_fd("sg_vm_v6"), &k, &slot, BPF_ANY), "update sg_vm_v6");
    }
}

Global Datapath::global() const
{
    Global g{};
    std::vector<uint64_t> per(static_cast<size_t>(ncpus()));
    for (uint32_t k = 0; k < SG_RES_MAX; k++) {
        check(bpf_map_lookup_elem(map_fd("sg_global"), &k, per.data()), "lookup sg_global");
        for (uint64_t v : per)
            g[k] += v;
    }
    return g;
}

std::vector<sg_vm_stats> Datapath::stats_per_cpu(uint32_t slot) const
{
    std::vector<sg_vm_stats> per(static_cast<size_t>(ncpus()));
    check(bpf_map_lookup_elem(map_fd("sg_vm_stats"), &slot, per.data()), "lookup sg_vm_stats");
    return per;
}

std::vector<sg_event> Datapath::drain_events() const
{
    std::vector<sg_event> out;
    auto cb = [](void* ctx, void* data, size_t size) -> int {
        if (size >= sizeof(sg_event))
            static_cast<std::vector<sg_event>*>(ctx)->push_back(*static_cast<sg_event*>(data));
        return 0;
    };
    ring_buffer* rb = ring_buffer__new(map_fd("sg_events"), cb, &out, nullptr);
    if (!rb)
        throw std::runtime_error("ring_buffer__new failed");
    int rc = ring_buffer__consume(rb);
    ring_buffer__free(rb);
    check(rc, "ring_buffer__consume");
    return out;
}

sg_vm_stats Datapath::stats(uint32_t slot) const
{
    sg_vm_stats sum{};
    for (auto& s : stats_per_cpu(slot)) {
        for (int v = 0; v < SG_VERDICT_MAX; v++)
            sum.syn[v] += s.syn[v];
        for (int r = 0; r < SG_REPLY_MAX; r++)
            sum.replies[r] += s.replies[r];
        sum.spoofed += s.spoofed;
        sum.rst_sent += s.rst_sent;
    }
    return sum;
}

sg_bucket Datapath::bucket(uint32_t slot) const
{
    sg_bucket b{};
    check(bpf_map_lookup_elem(map_fd("sg_vm_bucket"), &slot, &b), "lookup sg_vm_bucket");
    return b;
}

std::optional<sg_auto_vm> Datapath::auto_vm(const sg_auto_key& key) const
{
    sg_auto_vm v{};
    if (bpf_map_lookup_elem(map_fd("sg_auto"), &key, &v) < 0)
        return std::nullopt;
    return v;
}

size_t Datapath::auto_count() const
{
    sg_auto_key k{}, next{};
    size_t n = 0;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(map_fd("sg_auto"), prev, &next) == 0) {
        n++;
        k = next;
        prev = &k;
    }
    return n;
}

sg_auto_key auto_key(int ifindex, uint8_t family, const std::string& address)
{
    sg_auto_key k{};
    k.ifindex = uint32_t(ifindex);
    k.family = family;
    if (!address.empty()) {
        Bytes a = addr(address);
        std::memcpy(k.addr, a.data(), family == 6 ? 8 : 4);   // IPv6 sources group per /64
    }
    return k;
}

Global delta(const Global& after, const Global& before)
{
    Global d{};
    for (size_t i = 0; i < d.size(); i++)
        d[i] = after[i] - before[i];
    return d;
}

std::string describe(const Global& g)
{
    static const char* names[SG_RES_MAX] = {"non_ip", "non_tcp", "non_smtp", "smtp_syn",
                                            "unparsed", "fragment", "auto_new", "rst_sent",
                                            "event_lost", "spoofed"};
    std::string s;
    for (size_t i = 0; i < g.size(); i++)
        if (g[i])
            s += std::string(s.empty() ? "" : " ") + names[i] + "=" + std::to_string(g[i]);
    return s.empty() ? "none" : s;
}

}  // namespace sgt
