// smtpgov_kern against the real kernel: load, pins and adoption, attach to a veth in a
// private network namespace, atomic upgrade, batched reads, ring buffer, netlink,
// removal. Runs as root (ctest RESOURCE_LOCK bpffs).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "kern/attacher.h"
#include "kern/datapath.h"
#include "kern/event_ring.h"
#include "kern/link_watcher.h"
#include "kern/map_io.h"

using namespace smtpgov;
using namespace smtpgov::kern;

namespace {

std::string test_root() { return "/sys/fs/bpf/smtpgov-kern-test-" + std::to_string(::getpid()); }

bool exists(const std::string& p) { return std::filesystem::exists(p); }

void sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

class KernTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        // Everything below happens in a namespace of our own: no host interface is touched.
        ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
        ASSERT_EQ(std::system("ip link set lo up"), 0);
    }
    void SetUp() override {
        opts_.bpffs = test_root();
        ASSERT_TRUE(prepare_bpffs(PinLayout(opts_.bpffs)).ok());
        sh("ip link add sgk0 type veth peer name sgk1 && ip link set sgk0 up && ip link set sgk1 up");
    }
    void TearDown() override {
        (void)!std::system("ip link del sgk0 2>/dev/null");  // gone already is fine
        ASSERT_TRUE(Attacher::remove_everything(PinLayout(opts_.bpffs)).ok());
        EXPECT_FALSE(exists(opts_.bpffs));
    }
    Datapath load() {
        auto dp = Datapath::load(opts_);
        EXPECT_TRUE(dp.ok()) << (dp.ok() ? "" : dp.error().message);
        return std::move(dp.value());
    }
    DatapathOptions opts_;
};

TEST_F(KernTest, NewMapsArePinnedOnlyOnCommitAndAdoptedOnReload) {
    {
        Datapath dp = load();
        EXPECT_FALSE(dp.adopted());
        EXPECT_FALSE(exists(dp.pins().map("sg_vm_policy")));
        sg_vm_policy p{.rate = 7, .burst = 9, .tier = SG_TIER_THROTTLED, .over_action = 0, .block_action = 1,
                       .flags = SG_VMF_ACTIVE, .v4_addr = {}};
        uint32_t slot = 3;
        ASSERT_TRUE(map_update(dp, MapId::VmPolicy, &slot, &p).ok());
        ASSERT_TRUE(dp.commit_pins().ok());
        for (const auto& m : kMaps) EXPECT_TRUE(exists(dp.pins().map(m.name))) << m.name;
    }
    Datapath again = load();
    EXPECT_TRUE(again.adopted());
    sg_vm_policy p{};
    uint32_t slot = 3;
    auto found = map_lookup(again, MapId::VmPolicy, &slot, &p);
    ASSERT_TRUE(found.ok() && *found);
    EXPECT_EQ(p.rate, 7u);
    EXPECT_EQ(p.tier, SG_TIER_THROTTLED);
}

TEST_F(KernTest, PinnedMapOfAnotherSizeIsRefusedWithAReason) {
    {
        Datapath dp = load();
        ASSERT_TRUE(dp.commit_pins().ok());
    }
    opts_.max_vms = 1024;
    auto dp = Datapath::load(opts_);
    ASSERT_FALSE(dp.ok());
    EXPECT_NE(dp.error().message.find("max_entries"), std::string::npos) << dp.error().message;
    EXPECT_NE(dp.error().message.find("--remove"), std::string::npos);
}

// A build that adds a datapath result grows sg_global: the old-shape pin is replaced at
// commit (totals restart), so an upgrade over live pins keeps working.
TEST_F(KernTest, AnOlderShapeOfTheGlobalCountersIsReplacedOnCommit) {
    {
        Datapath dp = load();
        ASSERT_TRUE(dp.commit_pins().ok());
    }
    const std::string path = PinLayout(opts_.bpffs).map("sg_global");
    ASSERT_EQ(::unlink(path.c_str()), 0);
    int old = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "sg_global", 4, 8, SG_RES_MAX - 1, nullptr);
    ASSERT_GE(old, 0);
    ASSERT_EQ(bpf_obj_pin(old, path.c_str()), 0);
    ::close(old);
    Datapath dp = load();
    EXPECT_FALSE(dp.adopted());
    ASSERT_TRUE(dp.commit_pins().ok());
    int fd = bpf_obj_get(path.c_str());
    ASSERT_GE(fd, 0);
    bpf_map_info info{};
    __u32 len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    EXPECT_EQ(info.max_entries, static_cast<__u32>(SG_RES_MAX));
    ::close(fd);
}

TEST_F(KernTest, AttachPinsLinksAndUpgradeSwapsProgramsWithoutDetaching) {
    Datapath dp = load();
    Attacher at(XdpMode::Auto);
    int ifindex = static_cast<int>(if_nametoindex("sgk0"));
    auto s = at.attach(dp, "sgk0", ifindex);
    ASSERT_TRUE(s.ok()) << s.error().message;
    ASSERT_TRUE(dp.commit_pins().ok());
    auto before = at.interfaces().at(0);
    EXPECT_TRUE(before.attached);
    EXPECT_EQ(before.xdp_via, "link");  // no libxdp dispatcher on this kernel config
    EXPECT_TRUE(exists(dp.pins().xdp_link("sgk0")));
    EXPECT_EQ(before.tc_via, "tcx");  // kernel 6.6+
    EXPECT_TRUE(exists(dp.pins().tc_link("sgk0")));
    EXPECT_EQ(before.xdp_prog_id, dp.xdp_prog_id());

    auto next = dp.reload({25, 2525});
    ASSERT_TRUE(next.ok()) << next.error().message;
    ASSERT_TRUE(at.upgrade(dp, *next).ok());
    auto after = at.interfaces().at(0);
    EXPECT_EQ(after.xdp_link_id, before.xdp_link_id);
    EXPECT_EQ(after.tc_link_id, before.tc_link_id);
    EXPECT_NE(after.xdp_prog_id, before.xdp_prog_id);
    EXPECT_EQ(after.xdp_prog_id, next->xdp_prog_id());
    EXPECT_NE(after.tc_prog_id, before.tc_prog_id);
}

TEST_F(KernTest, RestartAdoptsPinnedLinks) {
    uint32_t link_id = 0;
    int ifindex = static_cast<int>(if_nametoindex("sgk0"));
    {
        Datapath dp = load();
        Attacher at(XdpMode::Generic);
        ASSERT_TRUE(at.attach(dp, "sgk0", ifindex).ok());
        ASSERT_TRUE(dp.commit_pins().ok());
        link_id = at.interfaces().at(0).xdp_link_id;
        EXPECT_EQ(at.interfaces().at(0).mode, "generic");
    }  // the process "dies": fds close, pins keep links and maps
    Datapath dp = load();
    Attacher at(XdpMode::Native);
    ASSERT_TRUE(at.attach(dp, "sgk0", ifindex).ok());
    auto st = at.interfaces().at(0);
    EXPECT_TRUE(st.adopted);
    EXPECT_EQ(st.xdp_link_id, link_id);
    EXPECT_EQ(st.mode, "generic");
    EXPECT_EQ(st.xdp_prog_id, dp.xdp_prog_id());
}

TEST_F(KernTest, VanishedInterfaceLeavesNoUsableLinkAndIsPruned) {
    int ifindex = static_cast<int>(if_nametoindex("sgk0"));
    {
        Datapath dp = load();
        Attacher at(XdpMode::Auto);
        ASSERT_TRUE(at.attach(dp, "sgk0", ifindex).ok());
        ASSERT_TRUE(dp.commit_pins().ok());
    }
    sh("ip link del sgk0");
    Attacher::prune_defunct_links(PinLayout(opts_.bpffs));
    EXPECT_FALSE(exists(PinLayout(opts_.bpffs).xdp_link("sgk0")));
    EXPECT_FALSE(exists(PinLayout(opts_.bpffs).tc_link("sgk0")));
}

TEST_F(KernTest, ClsactFallbackAttachesAndIsAdoptedAndRemoved) {
    Datapath dp = load();
    Attacher at(XdpMode::Auto, /*allow_tcx=*/false);
    int ifindex = static_cast<int>(if_nametoindex("sgk0"));
    ASSERT_TRUE(at.attach(dp, "sgk0", ifindex).ok());
    EXPECT_EQ(at.interfaces().at(0).tc_via, "clsact");
    EXPECT_EQ(at.interfaces().at(0).tc_prog_id, dp.tc_prog_id());
    auto next = dp.reload({25});
    ASSERT_TRUE(next.ok());
    ASSERT_TRUE(at.upgrade(dp, *next).ok());
    EXPECT_EQ(at.interfaces().at(0).tc_prog_id, next->tc_prog_id());
    ASSERT_TRUE(Attacher::remove_everything(dp.pins()).ok());
    EXPECT_EQ(std::system("tc filter show dev sgk0 egress | grep -q smtpgov"), 256);
}

TEST_F(KernTest, BatchedReadsSumPerCpuCountersAndListAutoEntries) {
    Datapath dp = load();
    std::vector<sg_vm_stats> per_cpu(possible_cpus());
    for (auto& s : per_cpu) {
        s = sg_vm_stats{};
        s.syn[SG_VERDICT_PASS] = 2;
        s.syn[SG_VERDICT_THROTTLE] = 5;
        s.spoofed = 1;
    }
    uint32_t slot = 4097;  // past the first batch chunk
    ASSERT_TRUE(map_update(dp, MapId::VmStats, &slot, per_cpu.data()).ok());
    for (int i = 0; i < 3; ++i) {
        sg_auto_key k{};
        k.ifindex = 10 + i;
        sg_auto_vm v{};
        v.stats.syn[SG_VERDICT_PASS] = 100 + i;
        ASSERT_TRUE(map_update(dp, MapId::Auto, &k, &v).ok());
    }
    MapReader reader;
    std::vector<sg_vm_stats> all;
    ASSERT_TRUE(reader.vm_stats(dp, 5000, all).ok());
    ASSERT_EQ(all.size(), 5000u);
    EXPECT_EQ(all[slot].syn[SG_VERDICT_PASS], 2u * possible_cpus());
    EXPECT_EQ(all[slot].syn[SG_VERDICT_THROTTLE], 5u * possible_cpus());
    EXPECT_EQ(all[0].syn[SG_VERDICT_PASS], 0u);
    auto one = reader.vm_stats_one(dp, slot);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one->spoofed, static_cast<uint64_t>(possible_cpus()));
    std::vector<std::pair<sg_auto_key, sg_auto_vm>> autos;
    ASSERT_TRUE(reader.auto_entries(dp, autos).ok());
    EXPECT_EQ(autos.size(), 3u);
    ASSERT_TRUE(reset_slot(dp, slot).ok());
    ASSERT_TRUE(reader.vm_stats(dp, 5000, all).ok());
    EXPECT_EQ(all[slot].syn[SG_VERDICT_THROTTLE], 0u);
    auto keys = map_keys<sg_auto_key>(dp, MapId::Auto);
    ASSERT_TRUE(keys.ok());
    EXPECT_EQ(keys->size(), 3u);
}

// A SYN to port 25 from an unregistered source with default limits {0, 0}: over the
// limit at once, so the program sends an SG_EV_OVER_LIMIT event.
TEST_F(KernTest, OverLimitSynReachesTheRingBuffer) {
    Datapath dp = load();
    int events = 0;
    sg_event last{};
    auto ring = EventRing::open(dp, [&](const sg_event& ev) {
        ++events;
        last = ev;
    });
    ASSERT_TRUE(ring.ok()) << ring.error().message;
    unsigned char frame[sizeof(ethhdr) + sizeof(iphdr) + sizeof(tcphdr)] = {};
    auto* eth = reinterpret_cast<ethhdr*>(frame);
    eth->h_proto = htons(ETH_P_IP);
    auto* ip = reinterpret_cast<iphdr*>(frame + sizeof(ethhdr));
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = IPPROTO_TCP;
    ip->tot_len = htons(sizeof(iphdr) + sizeof(tcphdr));
    ip->saddr = htonl(0xcb007107);
    ip->daddr = htonl(0xc6336401);
    auto* tcp = reinterpret_cast<tcphdr*>(frame + sizeof(ethhdr) + sizeof(iphdr));
    tcp->source = htons(40000);
    tcp->dest = htons(25);
    tcp->doff = 5;
    tcp->syn = 1;
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = frame, .data_size_in = sizeof(frame), .repeat = 1);
    ASSERT_EQ(bpf_prog_test_run_opts(dp.xdp_prog_fd(), &run), 0) << std::strerror(errno);
    EXPECT_EQ(run.retval, 1u /* XDP_DROP */);
    auto n = ring->consume();
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(events, 1);
    EXPECT_EQ(last.type, static_cast<uint32_t>(SG_EV_OVER_LIMIT));
    EXPECT_EQ(last.slot, SG_SLOT_NONE);
}

TEST_F(KernTest, LinkWatcherSeesInterfacesComeAndGo) {
    auto w = LinkWatcher::open();
    ASSERT_TRUE(w.ok());
    sh("ip link add sgk-new type veth peer name sgk-new-p");
    sh("ip link del sgk-new");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto batch = w->read();
    ASSERT_TRUE(batch.ok());
    bool added = false, removed = false;
    for (const auto& ev : batch->events) {
        if (ev.name != "sgk-new") continue;
        added |= ev.kind == LinkEvent::Kind::Added;
        removed |= ev.kind == LinkEvent::Kind::Removed;
    }
    EXPECT_TRUE(added);
    EXPECT_TRUE(removed);
    EXPECT_TRUE(iface_matches({"vnet*", "sgk-*"}, "sgk-new"));
    EXPECT_FALSE(iface_matches({"vnet*"}, "eth0"));
}

}  // namespace
