// The connection table's controller side (daemon/conn_table.h): idle entries deleted
// with their ring and NAT entries, bounded work per sweep, per-owner counts, slots
// given to new VMs purged; and what reads it: flow.original_dst and the policy service.
#include <arpa/inet.h>

#include "core/clock.h"
#include "daemon/conn_table.h"
#include "fixture.h"

namespace sgt {
namespace {

constexpr uint64_t kS = 1'000'000'000;

// A connection of `slot` from VM_ADDR:vm_port to DST:25; steered ones go to 192.0.2.10:25.
struct Conn {
    sg_conn_key key{};
    sg_conn val{};
};

Conn conn(uint32_t slot, const char* vm_addr, uint16_t vm_port, const char* dst, bool steered = false,
          uint64_t last_ns = 0) {
    Conn c;
    const bool v6 = std::string(vm_addr).find(':') != std::string::npos;
    c.key.ifindex = 7;
    c.key.family = v6 ? 6 : 4;
    c.key.vm_port = htons(vm_port);
    c.key.dst_port = htons(25);
    inet_pton(v6 ? AF_INET6 : AF_INET, vm_addr, c.key.vm_addr);
    inet_pton(v6 ? AF_INET6 : AF_INET, dst, c.key.dst_addr);
    c.val.slot = slot;
    c.val.ring_idx = vm_port % 64;
    c.val.state = SG_CONN_ESTABLISHED;
    c.val.created_ns = last_ns;
    c.val.last_ns = last_ns;
    if (steered) {
        c.val.flags = SG_CONNF_STEERED;
        c.val.proxy_port = htons(25);
        inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? "2001:db8::10" : "192.0.2.10", c.val.proxy_addr);
    }
    return c;
}

Endpoint ep(const char* s) { return Endpoint::parse(s).value(); }

sg_conn_ring_key ring_key(const Conn& c) {
    sg_conn_ring_key k{};
    k.slot = c.val.slot;
    k.idx = c.val.ring_idx;
    k.owner_key = c.val.owner_key;
    return k;
}

// As the datapath writes a new connection: the entry, its ring slot, its NAT entry.
void put(MemoryMaps& m, const Conn& c) {
    ASSERT_TRUE(m.update(MapId::Conn, &c.key, &c.val));
    sg_conn_ring_key rk = ring_key(c);
    ASSERT_TRUE(m.update(MapId::ConnRing, &rk, &c.key));
    if (c.val.flags & SG_CONNF_STEERED) {
        sg_conn_nat_key nk{};
        nk.family = c.key.family;
        nk.vm_port = c.key.vm_port;
        std::memcpy(nk.vm_addr, c.key.vm_addr, 16);
        ASSERT_TRUE(m.update(MapId::ConnNat, &nk, &c.key));
    }
}

TEST(ConnExpiry, ByState) {
    sg_conn c{};
    c.last_ns = 100 * kS;
    c.state = SG_CONN_SYN_SENT;
    EXPECT_FALSE(conn_expired(c, 130 * kS));
    EXPECT_TRUE(conn_expired(c, 131 * kS));
    c.state = SG_CONN_ESTABLISHED;
    EXPECT_FALSE(conn_expired(c, 700 * kS));
    EXPECT_TRUE(conn_expired(c, 701 * kS));
    c.flags = SG_CONNF_FIN_VM;  // half closed: still the long timeout
    EXPECT_FALSE(conn_expired(c, 700 * kS));
    c.flags = SG_CONNF_FIN_VM | SG_CONNF_FIN_REMOTE;
    EXPECT_TRUE(conn_expired(c, 131 * kS));
    EXPECT_FALSE(conn_expired(c, 50 * kS)) << "a packet newer than our clock reading";
}

TEST(ConnTableTest, DeletesIdleEntriesWithTheirRingAndNat) {
    MemoryMaps m;
    const uint64_t now = 10'000 * kS;
    Conn idle = conn(1, "198.18.1.2", 40001, "203.0.113.25", true, now - 601 * kS);
    Conn fresh = conn(1, "198.18.1.2", 40002, "203.0.113.25", true, now - 5 * kS);
    Conn moved = conn(2, "198.18.2.2", 40003, "203.0.113.25", true, now - 601 * kS);
    for (const Conn* c : {&idle, &fresh, &moved}) put(m, *c);
    // the ring slot and the NAT entry of `moved` were taken by newer connections meanwhile
    Conn newer = conn(2, "198.18.2.2", 40003 + 64, "198.51.100.25", false, now);
    sg_conn_ring_key rk = ring_key(moved);
    ASSERT_TRUE(m.update(MapId::ConnRing, &rk, &newer.key));
    ConnTable t(m);
    auto r = t.step(now);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 2u);
    EXPECT_FALSE(m.get<sg_conn>(MapId::Conn, idle.key));
    EXPECT_FALSE(m.get<sg_conn_key>(MapId::ConnRing, ring_key(idle)));
    EXPECT_EQ(m.count(MapId::ConnNat), 1u) << "the idle steered entries' NAT entries went, the fresh one's stays";
    EXPECT_TRUE(m.get<sg_conn>(MapId::Conn, fresh.key));
    EXPECT_TRUE(m.get<sg_conn_key>(MapId::ConnRing, rk)) << "a ring slot naming another connection stays";
    EXPECT_EQ(t.counts().tracked, 1u);
    EXPECT_EQ(t.counts().steered, 1u);
    EXPECT_EQ(t.live(1), 1u);
    EXPECT_EQ(t.live(2), 0u);
    EXPECT_EQ(t.deleted(), 2u);
}

// 40,000 entries: each step reads at most kBatch; the counts are those of the last
// whole pass, published when it ends.
TEST(ConnTableTest, BoundedStepsAndWholePassCounts) {
    MemoryMaps m;
    const uint64_t now = 10'000 * kS;
    for (uint32_t i = 0; i < 40'000; ++i) {
        char addr[32];
        std::snprintf(addr, sizeof addr, "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
        Conn c = conn(i % 3, addr, static_cast<uint16_t>(1024 + i % 60000), "203.0.113.25", i % 4 == 0, now);
        ASSERT_TRUE(m.update(MapId::Conn, &c.key, &c.val));
    }
    ConnTable t(m);
    ASSERT_TRUE(t.step(now));
    EXPECT_EQ(m.conn_batches, 1u);
    EXPECT_FALSE(t.complete());
    EXPECT_EQ(t.counts().tracked, 0u) << "nothing published before a whole pass";
    ASSERT_TRUE(t.step(now));
    ASSERT_TRUE(t.step(now));
    EXPECT_TRUE(t.complete());
    EXPECT_EQ(t.counts().tracked, 40'000u);
    EXPECT_EQ(t.counts().steered, 10'000u);
    EXPECT_EQ(t.live(0) + t.live(1) + t.live(2), 40'000u);
    // entries gone by the next pass leave its counts
    t.purge_slots({0}, now + 1);
    for (int i = 0; i < 20 && t.passes() < 2; ++i) ASSERT_TRUE(t.step(now));
    EXPECT_EQ(t.passes(), 2u);
    EXPECT_EQ(t.live(0), 0u);
    EXPECT_EQ(t.counts().tracked, t.live(1) + t.live(2));
}

// A batch full of idle entries is deleted over several steps, kMaxDeletes at a time,
// before the next batch is read; the pass's counts are right in the end.
TEST(ConnTableTest, DeletionsPerStepAreCapped) {
    MemoryMaps m;
    const uint64_t now = 10'000 * kS;
    for (uint32_t i = 0; i < 10'000; ++i) {
        char addr[32];
        std::snprintf(addr, sizeof addr, "10.1.%u.%u", i >> 8, i & 255);
        Conn c = conn(1, addr, 40000, "203.0.113.25", false, i % 2 ? now : now - 700 * kS);
        ASSERT_TRUE(m.update(MapId::Conn, &c.key, &c.val));
    }
    ConnTable t(m, UINT64_MAX);  // the count cap alone (a loaded machine must not make the time cap bite)
    auto r = t.step(now);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, ConnTable::kMaxDeletes);
    EXPECT_FALSE(t.complete());
    ASSERT_TRUE(t.step(now));
    EXPECT_EQ(m.conn_batches, 1u) << "the rest of the batch before the next read";
    while (!t.complete()) ASSERT_TRUE(t.step(now));
    EXPECT_EQ(t.deleted(), 5'000u);
    EXPECT_EQ(t.counts().tracked, 5'000u);
    EXPECT_EQ(m.count(MapId::Conn), 5'000u);
}

// The time cap: checked every 256 deletions, so a budget already spent stops a step at 255.
TEST(ConnTableTest, DeletionsStopWhenTheStepBudgetIsSpent) {
    MemoryMaps m;
    const uint64_t now = 10'000 * kS;
    for (uint32_t i = 0; i < 1'000; ++i) {
        char addr[32];
        std::snprintf(addr, sizeof addr, "10.2.%u.%u", i >> 8, i & 255);
        Conn c = conn(1, addr, 40000, "203.0.113.25", false, now - 700 * kS);
        ASSERT_TRUE(m.update(MapId::Conn, &c.key, &c.val));
    }
    ConnTable t(m, 0);
    auto r = t.step(now);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 255u);
    while (!t.complete()) ASSERT_TRUE(t.step(now));
    EXPECT_EQ(m.count(MapId::Conn), 0u) << "the rest goes in later steps";
}

// Slots given to new VMs: the old owner's entries go, the new owner's stay.
TEST(ConnTableTest, PurgedSlotsKeepNewEntries) {
    MemoryMaps m;
    Conn old_owner = conn(3, "198.18.1.2", 40001, "203.0.113.25", false, 500 * kS);
    Conn new_owner = conn(3, "198.18.9.2", 40001, "203.0.113.25", false, 1500 * kS);
    put(m, old_owner);
    put(m, new_owner);
    ConnTable t(m);
    t.purge_slots({3}, 1000 * kS);
    ASSERT_TRUE(t.step(1600 * kS));
    EXPECT_FALSE(m.get<sg_conn>(MapId::Conn, old_owner.key));
    EXPECT_TRUE(m.get<sg_conn>(MapId::Conn, new_owner.key));
    EXPECT_EQ(t.live(3), 1u);
}

TEST(ConnTableTest, SteeredFlowByClient) {
    MemoryMaps m;
    const uint64_t now = 10'000 * kS;
    Conn s4 = conn(1, "198.18.1.2", 40001, "203.0.113.25", true, now);
    Conn s6 = conn(1, "fd00:5e:0:1::2", 40001, "2001:db8:f0::25", true, now);
    Conn direct = conn(1, "198.18.1.2", 40002, "203.0.113.26", false, now);
    for (const Conn* c : {&s4, &s6, &direct}) put(m, *c);
    ConnTable t(m);
    auto f = t.steered_flow(ep("198.18.1.2:40001"), now);
    ASSERT_TRUE(f && *f);
    EXPECT_EQ(original_dst((*f)->key).to_string(), "203.0.113.25:25");
    f = t.steered_flow(ep("[fd00:5e:0:1::2]:40001"), now);
    ASSERT_TRUE(f && *f);
    EXPECT_EQ(original_dst((*f)->key).to_string(), "[2001:db8:f0::25]:25");
    EXPECT_FALSE(t.steered_flow(ep("198.18.1.2:40002"), now).value()) << "not steered";
    EXPECT_FALSE(t.steered_flow(ep("198.18.1.2:40003"), now).value()) << "no such connection";
    EXPECT_FALSE(t.steered_flow(ep("198.18.1.2:40001"), now + 700 * kS).value()) << "expired";
    ASSERT_TRUE(m.remove(MapId::Conn, &s4.key));  // the NAT entry outlived its connection
    EXPECT_FALSE(t.steered_flow(ep("198.18.1.2:40001"), now).value());
}

TEST(ReportLedgerTest, PerConnectionCap) {
    ReportLedger l;
    Conn a = conn(1, "198.18.1.2", 40001, "203.0.113.25", true);
    for (uint32_t i = 0; i < ReportLedger::kPerConn; ++i) EXPECT_TRUE(l.take(a.key, 1));
    EXPECT_FALSE(l.take(a.key, 1));
    EXPECT_TRUE(l.take(a.key, 2)) << "the same 5-tuple reused later is another connection";
}

// ---- the controller: flow.original_dst, vm show, the policy service --------------------

class FlowTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        start(policy({vm("a", {{"tier", "steered"}}), vm("b")}, {{"proxy", {{"address", "192.0.2.10:25"}}}}));
    }
    Conn steered(uint16_t port, const char* dst = "203.0.113.25", const std::string& id = "a") {
        Conn c = conn(slot(id), id == "a" ? "198.18.1.2" : "198.18.2.2", port, dst, true, mono_ns());
        put(maps, c);
        return c;
    }
    std::string ask(std::vector<std::pair<std::string, std::string>> attrs) {
        svc::policy::Request r;
        r.attrs = std::move(attrs);
        return ctl->policy_answer(r);
    }
    std::string access(const std::string& addr, const std::string& port) {
        return ask({{"request", "smtpd_access_policy"}, {"protocol_state", "RCPT"}, {"client_address", addr},
                    {"client_port", port}, {"recipient", "x@example.net"}});
    }
    std::string report(const std::string& addr, const std::string& port, const std::string& verdict = "spam") {
        return ask({{"request", "smtpgov_report"}, {"client_address", addr}, {"client_port", port}, {"verdict", verdict}});
    }
    double score(const std::string& id) { return call({{"cmd", "vm.show"}, {"id", id}})["score"]; }
};

TEST_F(FlowTest, OriginalDst) {
    steered(40001);
    json r = call({{"cmd", "flow.original_dst"}, {"addr", "198.18.1.2:40001"}});
    EXPECT_EQ(r["original"], "203.0.113.25:25");
    EXPECT_EQ(r["vm"], "a");
    EXPECT_EQ(r["proxy"], "192.0.2.10:25");
    EXPECT_EQ(r["state"], "established");
    EXPECT_EQ(refusal(raw({{"cmd", "flow.original_dst"}, {"addr", "198.18.1.2:40002"}})), "not_found");
    EXPECT_EQ(refusal(raw({{"cmd", "flow.original_dst"}, {"addr", "198.18.1.2"}})), "usage");
}

TEST_F(FlowTest, PolicyServiceFilters) {
    steered(40001);
    Conn c6 = conn(slot("a"), "fd00:5e:0:1::2", 40009, "2001:db8:f0::25", true, mono_ns());
    put(maps, c6);
    EXPECT_EQ(access("198.18.1.2", "40001"), "FILTER smtp:[203.0.113.25]:25");
    EXPECT_EQ(access("fd00:5e:0:1::2", "40009"), "FILTER smtp:[2001:db8:f0::25]:25");
    EXPECT_EQ(access("198.18.1.2", "40002"), "DUNNO");
    EXPECT_EQ(access("198.18.1.2", "nope"), "DUNNO");
    EXPECT_EQ(ask({{"request", "junk"}, {"client_address", "198.18.1.2"}, {"client_port", "40001"}}), "DUNNO");
}

TEST_F(FlowTest, SpamVerdictsRaiseTheOwnersScore) {
    steered(40001);
    const double before = score("a");
    EXPECT_EQ(report("198.18.1.2", "40001"), "OK");
    EXPECT_NEAR(score("a") - before, 50, 0.5);  // the policy's spam_report weight
    EXPECT_EQ(score("b"), 0);
    EXPECT_EQ(report("198.18.1.2", "40001", "ham"), "OK");
    EXPECT_NEAR(score("a") - before, 50, 0.5) << "ham changes nothing";
    // not a live steered connection: refused, nothing changes
    Conn direct = conn(slot("b"), "198.18.2.2", 40005, "203.0.113.25", false, mono_ns());
    put(maps, direct);
    EXPECT_EQ(report("198.18.2.2", "40005").rfind("REJECT no live steered connection", 0), 0u);
    EXPECT_EQ(report("198.18.1.2", "40099").rfind("REJECT", 0), 0u);
    EXPECT_EQ(report("198.18.1.2", "40001", "maybe").rfind("REJECT verdict", 0), 0u);
    EXPECT_EQ(ask({{"request", "smtpgov_report"}, {"client_address", "198.18.1.2"}, {"verdict", "spam"}})
                  .rfind("REJECT client_port missing", 0),
              0u);
    EXPECT_EQ(score("b"), 0);
    // the alias the reference proxy's reporter may use
    EXPECT_EQ(ask({{"request", "smtpgov_verdict"}, {"client_address", "198.18.1.2"}, {"client_port", "40001"},
                   {"verdict", "spam"}, {"action", "reject"}}),
              "OK");
    EXPECT_NEAR(score("a") - before, 100, 0.5);
}

TEST_F(FlowTest, SpamVerdictsPerConnectionAreCapped) {
    steered(40001);
    for (uint32_t i = 0; i < ReportLedger::kPerConn; ++i) ASSERT_EQ(report("198.18.1.2", "40001"), "OK") << i;
    EXPECT_EQ(report("198.18.1.2", "40001").rfind("REJECT at most", 0), 0u);
    steered(40002);
    EXPECT_EQ(report("198.18.1.2", "40002"), "OK");
}

// "b" (unpinned) climbs on verdicts alone: 8 x 50 = 400 steered, 40 x 50 = 2000 blocked.
TEST_F(FlowTest, SpamVerdictsEscalate) {
    for (uint16_t p = 0; p < 40; ++p) {
        steered(static_cast<uint16_t>(41000 + p), "203.0.113.25", "b");
        ASSERT_EQ(report("198.18.2.2", std::to_string(41000 + p)), "OK");
        if (p == 7) {
            EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "b"}})["tier"], "steered");
        }
    }
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "b"}})["tier"], "blocked");
    EXPECT_EQ(vm_entry("b").tier, SG_TIER_BLOCKED);
    ASSERT_FALSE(heard.empty());
    EXPECT_EQ(heard.back().event.to, Tier::Blocked);
    EXPECT_TRUE(heard.back().ticket);
}

// vm show: connections {tracked, evicted}, the tier enforced; status: the table and proxy.
TEST_F(FlowTest, ShowsConnections) {
    steered(40001);
    steered(40002);
    put(maps, conn(slot("b"), "198.18.2.2", 40005, "203.0.113.25", false, mono_ns()));
    sg_bucket b{};
    b.conn_evicted = 7;
    uint32_t sb = slot("b");
    ASSERT_TRUE(maps.update(MapId::VmBucket, &sb, &b));
    sweep();
    json a = call({{"cmd", "vm.show"}, {"id", "a"}});
    EXPECT_EQ(a["connections"], json::parse(R"({"tracked": 2, "evicted": 0})"));
    EXPECT_EQ(a["enforced"], "steered");
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "b"}})["connections"], json::parse(R"({"tracked": 1, "evicted": 7})"));
    json st = call({{"cmd", "status"}});
    EXPECT_EQ(st["connections"]["tracked"], 3);
    EXPECT_EQ(st["connections"]["steered"], 2);
    EXPECT_EQ(st["maps"]["sg_conn"]["used"], 3);
    EXPECT_EQ(st["proxy"]["families"][0]["address"], "192.0.2.10:25");
    EXPECT_EQ(st["proxy"]["steering"], true);
    ctl->proxy_health(ep("192.0.2.10:25"), false, "refused");
    a = call({{"cmd", "vm.show"}, {"id", "a"}});
    EXPECT_EQ(a["tier"], "steered");
    EXPECT_EQ(a["enforced"], "throttled");
    EXPECT_EQ(call({{"cmd", "status"}})["proxy"]["families"][0]["up"], false);
}

// A slot given to a new VM: the old VM's connections are not the new one's.
TEST_F(FlowTest, NewVmOnAnOldSlotDoesNotInheritConnections) {
    const uint32_t sb = slot("b");
    Conn old_conn = conn(sb, "198.18.2.2", 40005, "203.0.113.25", false, mono_ns());
    old_conn.val.created_ns = 0;
    put(maps, old_conn);
    apply(policy({vm("a", {{"tier", "steered"}}), vm("c")}, {{"proxy", {{"address", "192.0.2.10:25"}}}}));
    ASSERT_EQ(slot("c"), sb);
    sweep();
    EXPECT_FALSE(maps.get<sg_conn>(MapId::Conn, old_conn.key));
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "c"}})["connections"]["tracked"], 0);
}

}  // namespace
}  // namespace sgt
