#include "test_datapath.h"

#include <bpf/bpf.h>

#include <cstring>
#include <stdexcept>
#include <utility>

#include "core/tier.h"
#include "kern/event_ring.h"
#include "kern/map_io.h"

namespace sgt {

using smtpgov::kern::MapId;
namespace kern = smtpgov::kern;

namespace {

template <typename T>
T must(smtpgov::Result<T> r)
{
    if (!r)
        throw std::runtime_error(r.error().message);
    return std::move(r).value();
}

kern::Datapath load_private(const std::vector<uint16_t>& ports, uint32_t bench_stop, bool prealloc_conn)
{
    kern::DatapathOptions opts;
    opts.bpffs.clear();  // unpinned: nothing shared with a daemon or another test
    opts.smtp_ports = ports;
    opts.bench_stop = bench_stop;
    opts.bench_prealloc_conn = prealloc_conn;
    return must(kern::Datapath::load(opts));
}

}  // namespace

sg_vm_policy policy(uint8_t tier, uint32_t rate, uint32_t burst, uint8_t over, uint8_t block, uint8_t flags)
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

sg_auto_key auto_key(int ifindex, uint8_t family, const std::string& address)
{
    sg_auto_key k{};
    k.ifindex = uint32_t(ifindex);
    k.family = family;
    if (!address.empty()) {
        Bytes a = addr(address);
        std::memcpy(k.addr, a.data(), family == 6 ? 8 : 4);  // IPv6 sources group per /64
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

Global classes_only(Global g)
{
    for (size_t i = SG_RES_CONN_NEW; i < g.size(); i++)
        g[i] = 0;
    return g;
}

std::string describe(const Global& g)
{
    std::string s;
    for (size_t i = 0; i < g.size(); i++)
        if (g[i]) {
            std::string name(smtpgov::kResultNames[i]);
            s += (s.empty() ? "" : " ") + (name.empty() ? "result" + std::to_string(i) : name) + "=" +
                 std::to_string(g[i]);
        }
    return s.empty() ? "none" : s;
}

TestDatapath::TestDatapath(const std::vector<uint16_t>& ports, uint32_t bench_stop, bool prealloc_conn)
    : dp_(load_private(ports, bench_stop, prealloc_conn))
{
}

XdpRun TestDatapath::xdp(const Bytes& frame, int ifindex, uint32_t repeat) const
{
    return run_xdp(dp_.xdp_prog_fd(), frame, ifindex, repeat);
}

int TestDatapath::tc(const Bytes& frame, int ifindex) const { return run_tc(dp_.tc_prog_fd(), frame, ifindex); }

TcRun TestDatapath::tc_run(const Bytes& frame, int ifindex, uint32_t repeat) const
{
    return run_tc_frame(dp_.tc_prog_fd(), frame, ifindex, repeat);
}

void TestDatapath::update(MapId id, const void* key, const void* value) const
{
    must(kern::map_update(dp_, id, key, value));
}

bool TestDatapath::lookup(MapId id, const void* key, void* value) const
{
    return must(kern::map_lookup(dp_, id, key, value));
}

void TestDatapath::iface(int ifindex, uint32_t flags, uint32_t slot) const
{
    sg_iface v{slot, flags};
    uint32_t k = uint32_t(ifindex);
    update(MapId::Ifaces, &k, &v);
}

void TestDatapath::vm(uint32_t slot, const sg_vm_policy& pol) const { update(MapId::VmPolicy, &slot, &pol); }
void TestDatapath::defaults(uint32_t idx, const sg_vm_policy& pol) const { update(MapId::Defaults, &idx, &pol); }

void TestDatapath::auto_policy(const sg_auto_key& key, const sg_vm_policy& pol) const
{
    update(MapId::AutoPolicy, &key, &pol);
}

void TestDatapath::route(const std::string& prefix, uint32_t len, uint32_t slot) const
{
    Bytes a = addr(prefix);
    if (a.size() == 4) {
        sg_lpm_v4 k{len, {}};
        std::memcpy(k.addr, a.data(), 4);
        update(MapId::VmV4, &k, &slot);
    } else {
        sg_lpm_v6 k{len, {}};
        std::memcpy(k.addr, a.data(), 16);
        update(MapId::VmV6, &k, &slot);
    }
}

void TestDatapath::reset_slot(uint32_t slot) const { must(kern::reset_slot(dp_, slot)); }

void TestDatapath::runtime(const sg_runtime& rt) const
{
    uint32_t zero = 0;
    update(MapId::Runtime, &zero, &rt);
}

Global TestDatapath::global() const { return must(kern::MapReader().global(dp_)); }

sg_vm_stats TestDatapath::stats(uint32_t slot) const { return must(kern::MapReader().vm_stats_one(dp_, slot)); }

std::vector<sg_vm_stats> TestDatapath::stats_per_cpu(uint32_t slot) const
{
    static_assert(sizeof(sg_vm_stats) % 8 == 0, "per-CPU values are 8-byte aligned");
    std::vector<sg_vm_stats> per(static_cast<size_t>(kern::possible_cpus()));
    lookup(MapId::VmStats, &slot, per.data());
    return per;
}

std::vector<sg_event> TestDatapath::drain_events() const
{
    std::vector<sg_event> out;
    auto ring = must(kern::EventRing::open(dp_, [&out](const sg_event& ev) { out.push_back(ev); }));
    must(ring.consume());
    return out;
}

sg_bucket TestDatapath::bucket(uint32_t slot) const
{
    sg_bucket b{};
    lookup(MapId::VmBucket, &slot, &b);
    return b;
}

std::optional<sg_auto_vm> TestDatapath::auto_vm(const sg_auto_key& key) const
{
    sg_auto_vm v{};
    if (!lookup(MapId::Auto, &key, &v))
        return std::nullopt;
    return v;
}

size_t TestDatapath::auto_count() const { return must(kern::map_keys<sg_auto_key>(dp_, MapId::Auto)).size(); }

namespace {

template <typename K>
std::vector<K> all_keys(int fd)
{
    std::vector<K> keys;
    K key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        keys.push_back(next);
        key = next;
        prev = &key;
    }
    return keys;
}

}  // namespace

std::optional<sg_conn> TestDatapath::conn(const sg_conn_key& key) const
{
    sg_conn c{};
    if (!lookup(MapId::Conn, &key, &c))
        return std::nullopt;
    return c;
}

std::vector<std::pair<sg_conn_key, sg_conn>> TestDatapath::conns() const
{
    std::vector<std::pair<sg_conn_key, sg_conn>> out;
    for (const sg_conn_key& k : all_keys<sg_conn_key>(dp_.map_fd(MapId::Conn)))
        if (auto c = conn(k))
            out.emplace_back(k, *c);
    return out;
}

std::optional<sg_conn_key> TestDatapath::nat(const sg_conn_nat_key& key) const
{
    sg_conn_key k{};
    if (!lookup(MapId::ConnNat, &key, &k))
        return std::nullopt;
    return k;
}

size_t TestDatapath::nat_count() const { return all_keys<sg_conn_nat_key>(dp_.map_fd(MapId::ConnNat)).size(); }
size_t TestDatapath::ring_count() const { return all_keys<sg_conn_ring_key>(dp_.map_fd(MapId::ConnRing)).size(); }

}  // namespace sgt
