// Differential test: the XDP program and the userspace reference classifier agree on
// >= 1,000,000 random and mutated frames (return code, RST bytes, global counters):
// VLAN stacks, IPv4 options, IPv6 chains up to two past the walk bound, fragments
// (first fragments whole or tiny, offset 1 over a first fragment, later offsets),
// truncations and bit flips. 10,000,000 frames with SMTPGOV_LONG=1. Seed and frame
// count: SG_DIFF_SEED, SG_DIFF_FRAMES (override both defaults); the seed is printed.
// A second corpus from a steered VM checks the connection table and steering against a
// reference model of them (tests/lib/steer_model.cpp): refusals, rewrites, evictions.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <endian.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <random>
#include <string>

#include "reference.h"
#include "steer_model.h"
#include "test_datapath.h"

namespace sgt {
namespace {

constexpr uint32_t kSlot = 0;
constexpr uint64_t kDefaultSeed = 0x5e6d1f7a2024ULL;
constexpr uint64_t kDefaultFrames = 1000000, kLongFrames = 10000000;
constexpr uint64_t kChunk = 4096;
const std::vector<uint16_t> kPorts = {25, 465, 587};

uint64_t env_u64(const char* name, uint64_t def)
{
    const char* v = std::getenv(name);
    return v ? std::strtoull(v, nullptr, 0) : def;
}

class Corpus {
public:
    // reuse: a third of the IP frames take the addresses (and, for TCP, the ports and
    // sometimes the sequence number) of a recent TCP frame, so that connections are
    // opened again, continued and reset (the connection table's paths).
    explicit Corpus(uint64_t seed, bool reuse = false) : rng_(seed), reuse_(reuse) {}

    Bytes next()
    {
        Bytes f = valid();
        if (chance(0.6))
            mutate(f);
        if (f.size() < 14)
            f.resize(14, 0);   // BPF_PROG_TEST_RUN needs an Ethernet header's worth
        return f;
    }

private:
    uint32_t below(uint32_t n) { return uint32_t(rng_() % n); }
    bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

    std::string v4addr()
    {
        uint32_t a = uint32_t(rng_());
        return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
               std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
    }
    std::string v6addr()
    {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "2001:db8:%x:%x::%x", below(65536), below(65536), below(65536));
        return buf;
    }

    struct Tuple {
        std::string src, dst;
        uint16_t sport, dport;
        uint32_t seq;
    };

    // A recent TCP tuple of the family (nullptr: none, or not this time).
    const Tuple* recent(bool v6)
    {
        auto& r = recent_[v6];
        if (!reuse_ || r.empty() || !chance(0.33))
            return nullptr;
        return &r[below(uint32_t(r.size()))];
    }

    void remember(bool v6, Tuple t)
    {
        auto& r = recent_[v6];
        if (r.size() < 32)
            r.push_back(std::move(t));
        else
            r[below(32)] = std::move(t);
    }

    Bytes valid()
    {
        Packet p;
        p.eth();
        uint32_t vlans = chance(0.05) ? 3 : below(3);
        for (uint32_t i = 0; i < vlans; i++)
            p.vlan(uint16_t(below(4096)), chance(0.5) ? 0x8100 : 0x88a8);
        uint32_t l3 = below(100);
        int frag = -1;   // offset of the (last) fragment header, -1: none
        if (l3 < 10)
            return p.ethertype(chance(0.5) ? 0x0806 : uint16_t(rng_())).payload(random_bytes(below(64))).build();
        const Tuple* again = recent(l3 >= 55);
        Tuple t{again ? again->src : l3 < 55 ? v4addr() : v6addr(), again ? again->dst : l3 < 55 ? v4addr() : v6addr(),
                0, 0, 0};
        if (l3 < 55) {
            p.ipv4(t.src, t.dst);
            if (chance(0.3))
                p.ip_options(4 * below(11));
            if (chance(0.3))
                p.fragment(uint16_t(frag = fragment_offset()), chance(0.7));
        } else {
            p.ipv6(t.src, t.dst);
            uint32_t n = chance(0.5) ? 0 : below(SG_MAX_V6_EXT_HDRS + 3);
            static const uint8_t kExt[] = {0, 43, 60};
            for (uint32_t i = 0; i < n; i++) {
                if (chance(0.25))
                    p.fragment(uint16_t(frag = fragment_offset()), chance(0.7));
                else
                    p.ext(kExt[below(3)], 8 * (1 + below(4)));
            }
        }
        uint32_t l4 = below(100);
        if (l4 < 75) {
            t.dport = again ? again->dport : chance(0.6) ? kPorts[below(3)] : uint16_t(rng_());
            t.sport = again ? again->sport : uint16_t(rng_());
            t.seq = again && chance(0.5) ? again->seq : uint32_t(rng_());
            p.tcp(t.sport, t.dport);
            uint32_t fl = below(10);
            p.flags(fl < 5 ? kSyn : fl < 6 ? kSyn | kEce | kCwr : uint8_t(rng_()));
            p.seq(t.seq);
            remember(l3 >= 55, t);
            if (chance(0.4))
                p.tcp_options(4 * below(11));
        } else if (l4 < 85) {
            p.udp(uint16_t(rng_()), chance(0.5) ? 25 : uint16_t(rng_()));
        } else {
            static const uint8_t kProto[] = {1, 50, 51, 59, 58, 132, 0, 43, 60, 44};
            p.l4(chance(0.7) ? kProto[below(10)] : uint8_t(rng_()));
        }
        if (chance(0.3))
            p.payload(random_bytes(below(80)));
        if (frag >= 0 && chance(0.6))
            share(p, frag);
        if (chance(0.1))
            p.l2_padding(below(16));
        return p.build();
    }

    // first fragments, offset 1 (RFC 1858's overlap) and 2 (just past the flags) often
    int fragment_offset()
    {
        uint32_t k = below(10);
        return k < 4 ? 0 : k < 6 ? 1 : k < 7 ? 2 : int(3 + below(8000));
    }

    // the datagram carries one fragment's share of the L4 segment: a first fragment
    // cut inside, at or past the end of the TCP header; a later fragment from its offset
    // (or overlapping what an earlier one carried)
    void share(Packet& p, int offset)
    {
        if (offset == 0)
            p.slice(0, below(80));
        else
            p.slice(chance(0.7) ? size_t(offset) * 8 : below(24), chance(0.5) ? SIZE_MAX : below(64));
    }

    Bytes random_bytes(size_t n)
    {
        Bytes b(n);
        for (auto& x : b)
            x = uint8_t(rng_());
        return b;
    }

    void mutate(Bytes& f)
    {
        uint32_t kind = below(3);
        if (kind == 0 || kind == 2) {
            uint32_t flips = 1 + below(4);
            size_t span = std::min<size_t>(f.size(), 100);   // mostly the headers
            for (uint32_t i = 0; i < flips; i++)
                f[below(uint32_t(span))] ^= uint8_t(1u << below(8));
        }
        if (kind == 1 || kind == 2)
            f.resize(14 + below(uint32_t(f.size() - 13)));
    }

    std::mt19937_64 rng_;
    bool reuse_;
    std::array<std::vector<Tuple>, 2> recent_;
};

TEST(Differential, BpfAgreesWithReference)
{
    uint64_t seed = env_u64("SG_DIFF_SEED", kDefaultSeed);
    const char* long_run = std::getenv("SMTPGOV_LONG");
    bool is_long = long_run && std::string(long_run) == "1";
    uint64_t frames = env_u64("SG_DIFF_FRAMES", is_long ? kLongFrames : kDefaultFrames);
    std::printf("differential: seed 0x%llx, %llu frames (SG_DIFF_SEED/SG_DIFF_FRAMES)\n",
                (unsigned long long)seed, (unsigned long long)frames);
    RecordProperty("seed", std::to_string(seed));

    int ifx = test_iface("sgd0");
    TestDatapath dp;
    dp.iface(ifx, SG_IFACE_HAS_VM, kSlot);
    // blocked + reset makes every judged SYN observable: XDP_TX with the RST bytes
    dp.vm(kSlot, policy(SG_TIER_BLOCKED, 0, 0, SG_ACT_DROP, SG_ACT_RESET));

    Corpus corpus(seed);
    Global chunk_start = dp.global(), want{};
    std::array<uint64_t, SG_RES_MAX> classes{};
    uint64_t mismatches = 0;
    for (uint64_t i = 0; i < frames; i++) {
        Bytes f = corpus.next();
        sgref::Classification c = sgref::classify(f, kPorts);
        XdpRun r = dp.xdp(f, ifx);
        bool smtp = c.result == SG_RES_SMTP_SYN;
        Bytes expect = smtp ? sgref::reset_for(f, c) : f;
        uint32_t action = smtp ? XDP_TX : c.result == SG_RES_REFUSED ? XDP_DROP : XDP_PASS;
        ASSERT_NE(r.action, uint32_t(XDP_ABORTED)) << "frame " << i;
        if (r.action != action || r.out != expect) {
            if (++mismatches <= 5) {
                std::string hex;
                for (uint8_t b : f)
                    hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
                ADD_FAILURE() << "frame " << i << ": bpf action " << r.action << ", reference "
                              << action << " (class " << c.result << ")\n" << hex;
            }
        }
        want[c.result]++;
        classes[c.result]++;
        if (smtp)
            want[SG_RES_RST_SENT]++;
        if ((i + 1) % kChunk == 0 || i + 1 == frames) {
            Global now = dp.global();
            ASSERT_EQ(delta(now, chunk_start), want)
                << "chunk ending at frame " << i << ": bpf " << describe(delta(now, chunk_start))
                << ", reference " << describe(want);
            chunk_start = now;
            want = Global{};
        }
    }
    EXPECT_EQ(mismatches, 0u);
    std::printf("differential: classes %s\n", describe(classes).c_str());
    // the corpus must exercise every class, or the agreement proves little
    for (int res : {SG_RES_NON_IP, SG_RES_NON_TCP, SG_RES_NON_SMTP, SG_RES_SMTP_SYN,
                    SG_RES_UNPARSED, SG_RES_FRAGMENT, SG_RES_REFUSED})
        EXPECT_GT(classes[res], frames / 100) << "class " << res;
}

// The same corpus (addresses and ports reused, so connections are opened, continued and
// reset) from a VM in tier steered with a proxy per family and 64 entries per owner:
// the program and the reference model (tests/lib/steer_model.cpp) agree on every
// frame's action and bytes (rewrites with their incremental checksums), and on the
// connection table's sg_global results.
TEST(Differential, SteeredBpfAgreesWithModel)
{
    uint64_t seed = env_u64("SG_DIFF_SEED", kDefaultSeed) ^ 0x57ee7ed;
    const char* long_run = std::getenv("SMTPGOV_LONG");
    bool is_long = long_run && std::string(long_run) == "1";
    uint64_t frames = env_u64("SG_DIFF_FRAMES", is_long ? kLongFrames : kDefaultFrames);
    std::printf("differential (steered): seed 0x%llx, %llu frames\n", (unsigned long long)seed,
                (unsigned long long)frames);
    RecordProperty("seed", std::to_string(seed));

    constexpr uint32_t kPerVm = 64;
    constexpr uint16_t kProxyPort = 2525;
    int ifx = test_iface("sgd0");
    TestDatapath dp;
    dp.iface(ifx, SG_IFACE_HAS_VM, kSlot);
    dp.vm(kSlot, policy(SG_TIER_STEERED, 4000000000u, 4000000000u));
    sg_runtime rt{};
    rt.conn_per_vm = kPerVm;
    rt.flags = SG_RT_PROXY_V4 | SG_RT_PROXY_V6;
    Bytes p4 = addr("192.0.2.10"), p6 = addr("2001:db8:aaaa::10");
    std::memcpy(rt.proxy_v4, p4.data(), 4);
    std::memcpy(rt.proxy_v6, p6.data(), 16);
    rt.proxy_v4_port = rt.proxy_v6_port = htobe16(kProxyPort);
    dp.runtime(rt);
    sgref::SteerModel model(p4, p6, kProxyPort, kPerVm);

    Corpus corpus(seed, true);
    Global chunk_start = dp.global(), want{};
    std::array<uint64_t, SG_RES_MAX> seen{};
    uint64_t mismatches = 0;
    for (uint64_t i = 0; i < frames; i++) {
        Bytes f = corpus.next();
        sgref::Classification c = sgref::classify(f, kPorts);
        sgref::SteerModel::Outcome o = model.frame(f, c);
        XdpRun r = dp.xdp(f, ifx);
        ASSERT_NE(r.action, uint32_t(XDP_ABORTED)) << "frame " << i;
        if ((r.action != o.action || r.out != o.out) && ++mismatches <= 5) {
            std::string hex;
            for (uint8_t b : f)
                hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
            ADD_FAILURE() << "frame " << i << ": bpf action " << r.action << ", model " << o.action << " (class "
                          << c.result << (r.out != o.out ? ", bytes differ" : "") << ")\n" << hex;
        }
        want[c.result]++;
        for (auto& [res, n] : o.results) {
            want[res] += n;
            seen[res] += n;
        }
        if ((i + 1) % kChunk == 0 || i + 1 == frames) {
            Global now = dp.global();
            ASSERT_EQ(delta(now, chunk_start), want)
                << "chunk ending at frame " << i << ": bpf " << describe(delta(now, chunk_start)) << ", model "
                << describe(want);
            chunk_start = now;
            want = Global{};
        }
    }
    EXPECT_EQ(mismatches, 0u);
    std::printf("differential (steered): table results %s\n", describe(seen).c_str());
    // the corpus must reach every path of the table, or the agreement proves little
    for (int res : {SG_RES_CONN_NEW, SG_RES_CONN_EVICTED, SG_RES_STEER_LOST, SG_RES_STEER_FRAG})
        EXPECT_GT(seen[res], frames / 1000) << "result " << res;
}

}  // namespace
}  // namespace sgt
