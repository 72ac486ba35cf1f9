// SYN flood: BPF_PROG_RUN live frames (XDP_TX out of the VM's interface), with an
// AF_PACKET sendmmsg fallback when the kernel or the device refuses live frames.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/unique_fd.h"
#include "frame.h"   // flood_abi.h first: the skeleton names its structs
#include "flood.skel.h"
#include "pacer.h"

namespace flood {
namespace {

struct Plan {
    std::vector<flood_target> v4, v6;   // targets per family
    flood_params params{};
    FrameLayout l4{ETH_HLEN, false}, l6{ETH_HLEN, true};
    std::string iface;
    int ifindex = 0;
    Mac src_mac{}, dst_mac{};
    std::string route_if;              // where replies arrive (differs from iface on the VLAN VM)
    Addr next_hop;
    std::optional<Addr> probe_src;     // our address in next_hop's family, if any
    uint16_t vlan = 0;
};

class Sender {
public:
    virtual ~Sender() = default;
    virtual uint32_t send(uint32_t n, bool v6) = 0;   // frames sent; throws on failure
    virtual const char* method() const = 0;
};

class LiveSender final : public Sender {
public:
    explicit LiveSender(const Plan& p) : ifindex_(p.ifindex)
    {
        skel_ = flood_bpf__open();
        if (!skel_)
            fail_errno("open flood BPF object", errno);
        skel_->rodata->params = p.params;
        skel_->rodata->params.tx_ifindex = (uint32_t)p.ifindex;
        if (int err = flood_bpf__load(skel_))
            fail_errno("load flood BPF program", -err);
        // keep the program in the XDP dispatcher (see flood.bpf.c); without it every
        // run with repeat > 1 waits for two dispatcher updates. Best effort: the
        // link goes away with this process, however it ends.
        lo_link_ = bpf_program__attach_xdp(skel_->progs.flood_xdp, (int)if_nametoindex("lo"));
        if (!lo_link_)
            lo_link_error_ = std::strerror(errno);
        int map = bpf_map__fd(skel_->maps.flood_targets);
        uint32_t idx = 0;
        for (auto* fam : {&p.v4, &p.v6})
            for (const auto& t : *fam) {
                if (bpf_map_update_elem(map, &idx, &t, BPF_ANY) < 0)
                    fail_errno("fill flood_targets", errno);
                idx++;
            }
        // only the size of the input frame matters: the program rewrites all of it
        frame4_.assign(p.l4.len(), 0);
        frame6_.assign(p.l6.len(), 0);
    }
    ~LiveSender() override
    {
        bpf_link__destroy(lo_link_);
        flood_bpf__destroy(skel_);
    }
    std::string lo_link_error_;
    LiveSender(const LiveSender&) = delete;
    LiveSender& operator=(const LiveSender&) = delete;

    uint32_t send(uint32_t n, bool v6) override
    {
        const auto& frame = v6 ? frame6_ : frame4_;
        xdp_md md{};
        md.data_end = (uint32_t)frame.size();
        md.ingress_ifindex = (uint32_t)ifindex_;
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = (uint32_t)frame.size(),
                    .ctx_in = &md, .ctx_size_in = sizeof md, .repeat = (int)n,
                    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
        if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.flood_xdp), &opts) < 0)
            fail_errno("BPF_PROG_RUN live frames", errno);
        return n;
    }
    const char* method() const override { return "xdp-live-frames"; }

    // One ICMP echo to the next hop through the live-frames path; true when the
    // reply shows up. A veth whose peer runs no NAPI (no XDP program, GRO off)
    // drops XDP_TX frames without counting them anywhere, so this is the only
    // way to know.
    bool probe(const Plan& p)
    {
        if (!p.probe_src)
            return true;   // nothing to probe with: trust the kernel
        smtpgov::UniqueFd rx(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
        if (!rx)
            fail_errno("AF_PACKET socket", errno);
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = ifindex_of(p.route_if);
        bind(rx.get(), (sockaddr*)&sll, sizeof sll);
        std::array<uint8_t, 16> cookie;
        std::random_device rd;
        for (auto& c : cookie)
            c = (uint8_t)rd();
        auto frame = make_echo(p.l4.l3_off, p.src_mac, p.dst_mac, p.vlan, *p.probe_src, p.next_hop, cookie);
        xdp_md md{};
        md.data_end = (uint32_t)frame.size();
        md.ingress_ifindex = (uint32_t)ifindex_;
        bool seen = false;
        for (int attempt = 0; attempt < 3 && !seen; attempt++) {
            LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = (uint32_t)frame.size(),
                        .ctx_in = &md, .ctx_size_in = sizeof md, .repeat = 1, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
            if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.flood_probe), &opts) < 0)
                break;
            double until = now_s() + 0.3;
            uint8_t buf[2048];
            while (!seen && now_s() < until) {
                timeval tv{0, 50 * 1000};
                setsockopt(rx.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                ssize_t n = recv(rx.get(), buf, sizeof buf, 0);
                if (n > 0 && std::search(buf, buf + n, cookie.begin(), cookie.end()) != buf + n)
                    seen = true;   // our request never comes back on this socket: it left via XDP
            }
        }
        return seen;
    }

private:
    flood_bpf* skel_ = nullptr;
    bpf_link* lo_link_ = nullptr;
    int ifindex_;
    std::vector<uint8_t> frame4_, frame6_;
};

class PacketSender final : public Sender {
public:
    // protocol 0: send only
    explicit PacketSender(const Plan& p)
        : plan_(p), rng_(std::random_device{}()), fd_(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0))
    {
        if (!fd_)
            fail_errno("AF_PACKET socket", errno);
        int one = 1;
        setsockopt(fd_.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_ifindex = p.ifindex;
        if (bind(fd_.get(), (sockaddr*)&sll, sizeof sll) < 0)
            fail_errno("bind AF_PACKET to " + p.iface, errno);
    }

    uint32_t send(uint32_t n, bool v6) override
    {
        const auto& targets = v6 ? plan_.v6 : plan_.v4;
        const FrameLayout& l = v6 ? plan_.l6 : plan_.l4;
        n = std::min<uint32_t>(n, kMax);
        for (uint32_t i = 0; i < n; i++) {
            finish_frame(targets[cursor_++ % targets.size()], l, plan_.params, rng_, buf_[i]);
            iov_[i] = {buf_[i], l.len()};
            msgs_[i] = {};
            msgs_[i].msg_hdr.msg_iov = &iov_[i];
            msgs_[i].msg_hdr.msg_iovlen = 1;
        }
        for (uint32_t done = 0; done < n;) {
            int r = sendmmsg(fd_.get(), msgs_ + done, n - done, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && errno == ENOBUFS) {
                usleep(50);
                continue;
            }
            if (r < 0)
                fail_errno("sendmmsg on " + plan_.iface, errno);
            done += (uint32_t)r;
        }
        return n;
    }
    const char* method() const override { return "af-packet"; }
    static constexpr uint32_t kMax = 1024;

private:
    const Plan& plan_;
    std::mt19937_64 rng_;
    smtpgov::UniqueFd fd_;
    uint64_t cursor_ = 0;
    uint8_t buf_[kMax][FLOOD_FRAME_MAX];
    iovec iov_[kMax];
    mmsghdr msgs_[kMax];
};

std::optional<Mac> resolve_mac(const Addr& next_hop)
{
    if (auto m = neigh_mac(next_hop))
        return m;
    // nudge the kernel into ARP/ND with one datagram to the discard port, then wait
    if (smtpgov::UniqueFd s(socket(next_hop.family, SOCK_DGRAM | SOCK_CLOEXEC, 0)); s) {
        sockaddr_storage ss{};
        socklen_t sl;
        if (next_hop.family == AF_INET) {
            auto* a = (sockaddr_in*)&ss;
            a->sin_family = AF_INET;
            a->sin_port = htons(9);
            std::memcpy(&a->sin_addr, next_hop.b.data(), 4);
            sl = sizeof *a;
        } else {
            auto* a = (sockaddr_in6*)&ss;
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(9);
            std::memcpy(&a->sin6_addr, next_hop.b.data(), 16);
            sl = sizeof *a;
        }
        sendto(s.get(), "", 0, 0, (sockaddr*)&ss, sl);
    }
    for (int i = 0; i < 20; i++) {
        usleep(50 * 1000);
        if (auto m = neigh_mac(next_hop))
            return m;
    }
    return std::nullopt;
}

Plan make_plan(const SynOptions& o)
{
    if (o.dst.empty())
        throw std::invalid_argument("--dst: at least one destination address");
    Plan p;
    std::string route_if;
    std::optional<Addr> next_hop;
    std::optional<Addr> src[2];
    for (const Addr& d : o.dst) {
        int fi = d.family == AF_INET6;
        if (!src[fi] && !(o.spoof && o.spoof->addr.family == d.family)) {
            Route r = route_to(d);
            if (o.src && o.src->family == d.family)
                src[fi] = o.src;
            else if (!(src[fi] = iface_addr(r.ifname, d.family)))
                throw std::runtime_error("no " + std::string(fi ? "IPv6" : "IPv4") + " address on " + r.ifname +
                                         " (give --src)");
        }
        if (route_if.empty()) {
            Route r = route_to(d);
            route_if = r.ifname;
            next_hop = r.gateway ? *r.gateway : d;
        }
    }
    p.iface = o.iface.empty() ? route_if : o.iface;
    p.route_if = route_if;
    p.next_hop = *next_hop;
    p.probe_src = src[p.next_hop.family == AF_INET6];
    if (o.spoof && p.probe_src)
        p.probe_src = iface_addr(route_if, p.next_hop.family);
    p.vlan = o.vlan;
    p.ifindex = ifindex_of(p.iface);
    p.src_mac = mac_of(p.iface);
    if (o.dst_mac) {
        p.dst_mac = *o.dst_mac;
    } else if (auto m = resolve_mac(*next_hop)) {
        p.dst_mac = *m;
    } else {
        throw std::runtime_error("no neighbour entry for " + next_hop->str() + " (give --dst-mac)");
    }
    uint32_t l3 = o.vlan ? ETH_HLEN + 4 : ETH_HLEN;
    p.l4 = {l3, false};
    p.l6 = {l3, true};
    std::optional<Prefix> spoof[2];
    if (o.spoof)
        spoof[o.spoof->addr.family == AF_INET6] = o.spoof;
    for (const Addr& d : o.dst)
        for (uint16_t port : o.dports) {
            int fi = d.family == AF_INET6;
            Addr s = src[fi] ? *src[fi] : Addr{d.family, {}};
            (fi ? p.v6 : p.v4).push_back(make_target(fi ? p.l6 : p.l4, p.src_mac, p.dst_mac, o.vlan, s, d, port,
                                                     spoof[fi].has_value()));
        }
    if (p.v4.size() + p.v6.size() > FLOOD_MAX_TARGETS)
        throw std::invalid_argument("at most " + std::to_string(FLOOD_MAX_TARGETS) + " destination x port pairs");
    p.params = make_params((uint32_t)p.v4.size(), (uint32_t)p.v6.size(), l3, spoof[0], spoof[1]);
    return p;
}

// Live frames unless told otherwise or they do not arrive (then AF_PACKET).
std::unique_ptr<Sender> first_sender(const SynOptions& o, const Plan& plan, std::string& fallback_reason)
{
    if (o.method == "packet")
        return nullptr;
    try {
        auto live = std::make_unique<LiveSender>(plan);
        if (o.method == "auto" && !live->probe(plan))
            throw std::runtime_error("live frames do not arrive (peer veth without XDP or GRO?)");
        return live;
    } catch (const std::exception& e) {
        if (o.method == "live")
            throw;
        fallback_reason = e.what();
        return nullptr;
    }
}

nlohmann::json summary(const SynOptions& o, const Plan& plan, const Sender* sender, const Pacer& pacer,
                       const IfStats& before, const IfStats& after)
{
    const double elapsed = now_s() - pacer.started();
    nlohmann::json dsts = nlohmann::json::array(), ports = nlohmann::json::array();
    for (const Addr& d : o.dst)
        dsts.push_back(d.str());
    for (uint16_t port : o.dports)
        ports.push_back(port);
    // this process's CPU time: with the receiver on the same CPU and no RPS, the veth's
    // receive path runs inside its sends (tools/bench/run.sh subtracts a floor from it)
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    return {
        {"mode", "syn"},
        {"method", sender ? sender->method() : "none"},
        {"iface", plan.iface},
        {"dst_mac", mac_str(plan.dst_mac)},
        {"vlan", o.vlan},
        {"dst", dsts},
        {"dport", ports},
        {"spoof", o.spoof ? o.spoof->addr.str() + "/" + std::to_string(o.spoof->len) : ""},
        {"target_rate", o.bounds.rate > 0 ? nlohmann::json(o.bounds.rate) : nlohmann::json("max")},
        {"sent", pacer.total()},
        {"duration_s", elapsed},
        {"rate", elapsed > 0 ? (double)pacer.total() / elapsed : 0.0},
        {"iface_tx_dropped", after.tx_dropped - before.tx_dropped},
        {"iface_xdp_xmit_errors", after.xdp_xmit_errors - before.xdp_xmit_errors},
        {"cpu_s", cpu_s},
    };
}

} // namespace

nlohmann::json run_syn(const SynOptions& o)
{
    Plan plan = make_plan(o);
    std::string fallback_reason;
    std::unique_ptr<Sender> sender = first_sender(o, plan, fallback_reason);
    double rate = o.bounds.rate;
    uint64_t count = o.bounds.count ? o.bounds.count
                     : rate > 0     ? (uint64_t)std::llround(rate * o.bounds.duration)
                                    : 100'000'000ULL;
    uint32_t max_batch = o.batch ? o.batch : rate > 0 ? 256 : 4096;
    IfStats before = iface_stats(plan.iface);
    Pacer pacer(rate, count, o.bounds.duration, max_batch);
    bool v6_next = plan.v4.empty();
    while (uint32_t n = pacer.next()) {
        if (!sender)
            sender = std::make_unique<PacketSender>(plan);
        try {
            n = sender->send(n, v6_next);
        } catch (const std::exception& e) {
            // live frames refused by the kernel or the device: the rest goes through AF_PACKET
            if (o.method != "auto" || std::string(sender->method()) != "xdp-live-frames")
                throw;
            fallback_reason = e.what();
            sender = std::make_unique<PacketSender>(plan);
            continue;
        }
        pacer.sent(n);
        if (!plan.v4.empty() && !plan.v6.empty())
            v6_next = !v6_next;
    }
    nlohmann::json j = summary(o, plan, sender.get(), pacer, before, iface_stats(plan.iface));
    if (!fallback_reason.empty())
        j["fallback_reason"] = fallback_reason;
    return j;
}

} // namespace flood
