// Steering with real TCP stacks on both sides: a VM network namespace behind a veth
// pair whose host end runs the datapath (XDP native or generic, TC egress), a proxy
// listening on the host. The VM's client dials 198.51.100.7:25 (or [2001:db8:ff::7]:25)
// and talks to the proxy as if it were that server; the proxy sees the VM's address.
// The kernel's own stacks (CHECKSUM_PARTIAL and GSO from the VM's, the proxy's on the
// return path) check what BPF_PROG_TEST_RUN cannot. The proxy is local, as in the first
// version of steering: a locally delivered CHECKSUM_PARTIAL frame is not verified
// (docs/internals.md, "Connections", on a proxy elsewhere). The VM namespace is named
// sga-veth-<pid>, removed after.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>

#include "flow.h"
#include "steer_setup.h"
#include "table_test.h"

namespace sgt {
namespace {

constexpr uint32_t kSlot = 1;

void sh(const std::string& cmd)
{
    if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error(cmd + ": failed");
}

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    ~Fd()
    {
        if (fd >= 0)
            close(fd);
    }
};

// A socket address for ADDR:PORT (IPv4 or IPv6).
sockaddr_storage sockaddr_of(const std::string& a, uint16_t port, socklen_t& len)
{
    sockaddr_storage ss{};
    if (a.find(':') == std::string::npos) {
        auto* s = reinterpret_cast<sockaddr_in*>(&ss);
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        inet_pton(AF_INET, a.c_str(), &s->sin_addr);
        len = sizeof(*s);
    } else {
        auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        inet_pton(AF_INET6, a.c_str(), &s->sin6_addr);
        len = sizeof(*s);
    }
    return ss;
}

std::string text_of(const sockaddr_storage& ss)
{
    char buf[INET6_ADDRSTRLEN] = {};
    uint16_t port;
    if (ss.ss_family == AF_INET) {
        auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
        port = ntohs(s->sin_port);
        return std::string(buf) + ":" + std::to_string(port);
    }
    auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf));
    port = ntohs(s->sin6_port);
    return "[" + std::string(buf) + "]:" + std::to_string(port);
}

std::string read_line(int fd)
{
    std::string line;
    char c;
    while (line.size() < 4096 && recv(fd, &c, 1, 0) == 1) {
        line += c;
        if (c == '\n')
            break;
    }
    return line;
}

std::string trimmed(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
        s.pop_back();
    return s;
}

void send_all(int fd, const std::string& s) { ASSERT_EQ(send(fd, s.data(), s.size(), 0), ssize_t(s.size())); }

// The proxy: one session on ADDR:2525; what it saw of its client.
std::string proxy_session(int listener, size_t body)
{
    Fd c(accept(listener, nullptr, nullptr));
    if (c.fd < 0)
        return "accept failed";
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    getpeername(c.fd, reinterpret_cast<sockaddr*>(&peer), &len);
    send_all(c.fd, "220 proxy.example ESMTP\r\n");
    std::string ehlo = read_line(c.fd);
    std::string got;
    while (got.size() < body) {
        char buf[65536];
        ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        got.append(buf, size_t(n));
    }
    send_all(c.fd, "250 ok " + std::to_string(got.size()) + "\r\n");
    return text_of(peer) + " " + ehlo.substr(0, 4);
}

class SteerVeth : public ::testing::TestWithParam<uint32_t> {
protected:
    void SetUp() override
    {
        test_iface("sgv-lo");   // our own network namespace (the hypervisor)
        ns_ = "sga-veth-" + std::to_string(getpid());
        sh("ip netns add " + ns_);
        sh("ip link add sgv-hv type veth peer name sgv-vm netns " + ns_);
        sh("ip link set sgv-hv up && ip addr add 10.1.0.1/24 dev sgv-hv && "
           "ip addr add 2001:db8:1::1/64 dev sgv-hv nodad && "
           "ip addr add " + kProxy4 + "/32 dev lo && ip addr add " + kProxy6 + "/128 dev lo nodad");
        std::string n = "ip -n " + ns_ + " ";
        sh(n + "link set lo up && " + n + "link set sgv-vm up && " + n + "addr add 10.1.0.2/24 dev sgv-vm && " + n +
           "addr add 2001:db8:1::2/64 dev sgv-vm nodad && " + n + "route add default via 10.1.0.1 && " + n +
           "-6 route add default via 2001:db8:1::1");
        ifindex_ = int(if_nametoindex("sgv-hv"));
        dp_.iface(ifindex_, SG_IFACE_HAS_VM, kSlot);
        dp_.vm(kSlot, policy(SG_TIER_STEERED, 1000, 1000));
        dp_.runtime(proxy_runtime());
        ASSERT_EQ(bpf_xdp_attach(ifindex_, dp_.kern().xdp_prog_fd(), GetParam(), nullptr), 0);
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_EGRESS);
        ASSERT_EQ(bpf_tc_hook_create(&hook), 0);
        LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = dp_.kern().tc_prog_fd());
        ASSERT_EQ(bpf_tc_attach(&hook, &opts), 0);
    }
    void TearDown() override
    {
        // best effort: what SetUp did not get to make is not there (this process's own netns)
        (void)!std::system(("ip netns del " + ns_ + " 2>/dev/null").c_str());
        (void)!std::system("ip link del sgv-hv 2>/dev/null; ip addr flush dev lo scope global 2>/dev/null");
    }

    // The VM dials server:25 and sends `body` bytes after EHLO; returns what it saw.
    std::string vm_session(const std::string& server, size_t body) const
    {
        // a thread in the VM's namespace: setns changes the calling thread only
        return std::async(std::launch::async, [&]() -> std::string {
                   Fd ns(open(("/run/netns/" + ns_).c_str(), O_RDONLY));
                   if (setns(ns.fd, CLONE_NEWNET) != 0)
                       return "setns failed";
                   socklen_t len;
                   sockaddr_storage to = sockaddr_of(server, 25, len);
                   Fd s(socket(to.ss_family, SOCK_STREAM, 0));
                   timeval tv{10, 0};
                   setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                   setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                   if (connect(s.fd, reinterpret_cast<sockaddr*>(&to), len) != 0)
                       return "connect failed";
                   sockaddr_storage peer{};
                   socklen_t plen = sizeof(peer);
                   getpeername(s.fd, reinterpret_cast<sockaddr*>(&peer), &plen);
                   std::string greeting = read_line(s.fd);
                   std::string ehlo = "EHLO vm\r\n" + std::string(body, 'b');
                   if (send(s.fd, ehlo.data(), ehlo.size(), 0) != ssize_t(ehlo.size()))
                       return "send failed";
                   std::string done = read_line(s.fd);
                   return text_of(peer) + " | " + trimmed(greeting) + " | " + trimmed(done);
               })
            .get();
    }

    std::string ns_;
    int ifindex_ = 0;
    TestDatapath dp_;
};

TEST_P(SteerVeth, Ipv4SessionThroughTheProxy)
{
    socklen_t len;
    sockaddr_storage at = sockaddr_of(kProxy4, kProxyPort, len);
    Fd l(socket(AF_INET, SOCK_STREAM, 0));
    ASSERT_EQ(bind(l.fd, reinterpret_cast<sockaddr*>(&at), len), 0) << strerror(errno);
    ASSERT_EQ(listen(l.fd, 4), 0);
    const size_t body = 200000;   // several GSO segments from the VM
    auto proxy_side = std::async(std::launch::async, proxy_session, l.fd, body);
    std::string vm_saw = vm_session("198.51.100.7", body);
    EXPECT_EQ(vm_saw, "198.51.100.7:25 | 220 proxy.example ESMTP | 250 ok 200000") << "the VM talks to the server it dialled";
    std::string proxy_saw = proxy_side.get();
    EXPECT_EQ(proxy_saw.substr(0, proxy_saw.find(':')), "10.1.0.2") << proxy_saw;
    EXPECT_EQ(proxy_saw.substr(proxy_saw.size() - 4), "EHLO");
    sg_vm_stats s = dp_.stats(kSlot);
    EXPECT_EQ(s.syn[SG_VERDICT_STEER], 1u);
    for (int k = 0; k < SG_REPLY_MAX; k++)
        EXPECT_EQ(s.replies[k], 0u) << "the proxy's answers are no evidence";
}

TEST_P(SteerVeth, Ipv6SessionThroughTheProxy)
{
    socklen_t len;
    sockaddr_storage at = sockaddr_of(kProxy6, kProxyPort, len);
    Fd l(socket(AF_INET6, SOCK_STREAM, 0));
    ASSERT_EQ(bind(l.fd, reinterpret_cast<sockaddr*>(&at), len), 0) << strerror(errno);
    ASSERT_EQ(listen(l.fd, 4), 0);
    const size_t body = 200000;
    auto proxy_side = std::async(std::launch::async, proxy_session, l.fd, body);
    std::string vm_saw = vm_session("2001:db8:ff::7", body);
    EXPECT_EQ(vm_saw, "[2001:db8:ff::7]:25 | 220 proxy.example ESMTP | 250 ok 200000");
    std::string proxy_saw = proxy_side.get();
    EXPECT_EQ(proxy_saw.substr(0, 15), "[2001:db8:1::2]") << proxy_saw;
}

INSTANTIATE_TEST_SUITE_P(Modes, SteerVeth, ::testing::Values(uint32_t(XDP_FLAGS_DRV_MODE), uint32_t(XDP_FLAGS_SKB_MODE)),
                         [](const ::testing::TestParamInfo<uint32_t>& i) {
                             return i.param == XDP_FLAGS_DRV_MODE ? std::string("native") : std::string("generic");
                         });

}  // namespace
}  // namespace sgt
