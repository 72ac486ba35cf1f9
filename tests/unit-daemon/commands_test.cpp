// Every control command's dispatch, including bad arguments: each refusal names what is
// wrong and carries the kind smtpgovctl maps to its exit code.
#include "fixture.h"
#include "svc/commands.h"

namespace sgt {
namespace {

class CommandsTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        start(policy({vm("vm-a", {{"tenant", "acme"}})}));
    }
    // kind and message of a refusal
    std::pair<std::string, std::string> refused(const json& req) {
        svc::Reply r = raw(req);
        return {refusal(r), r.body.value("error", std::string())};
    }
};

TEST_F(CommandsTest, RequestsWithoutACommandAreUsageErrors) {
    EXPECT_EQ(refused(json::array()).first, "usage");
    const auto no_cmd = refused({{"id", "vm-a"}});
    EXPECT_EQ(no_cmd.first, "usage");
    EXPECT_EQ(no_cmd.second, "request needs a \"cmd\"");
    auto [kind, msg] = refused({{"cmd", "vm.delete"}});
    EXPECT_EQ(kind, "usage");
    EXPECT_NE(msg.find("unknown command \"vm.delete\""), std::string::npos);
    EXPECT_NE(msg.find("vm.set_tier(id, tier, for_s?)"), std::string::npos) << "lists the commands: " << msg;
}

TEST_F(CommandsTest, PolicyCommandsNeedAPolicyObject) {
    EXPECT_EQ(refused({{"cmd", "policy.apply"}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "policy.validate"}, {"policy", "x"}}).first, "usage");
}

TEST_F(CommandsTest, InvalidPolicyIsRefusedWithEveryProblemAndTheOldOneStays) {
    json bad = policy({vm("vm-x", {{"rate", -1}}), vm("vm-x")});
    svc::Reply r = raw({{"cmd", "policy.apply"}, {"policy", bad}});
    EXPECT_EQ(refusal(r), "validation");
    EXPECT_GE(r.body["problems"].size(), 2u) << r.body.dump();
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"][0]["id"], "vm-a");
    EXPECT_EQ(refusal(raw({{"cmd", "policy.validate"}, {"policy", bad}})), "validation");
    EXPECT_EQ(call({{"cmd", "policy.validate"}, {"policy", policy({vm("vm-y")})}}), json({{"problems", json::array()}}));
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"][0]["id"], "vm-a");  // validate applies nothing
}

TEST_F(CommandsTest, VmCommandsNeedAnIdAndAKnownVm) {
    for (const char* cmd : {"vm.show", "vm.set_tier", "vm.clear", "report"}) {
        json req = {{"cmd", cmd}, {"tier", "ok"}, {"kind", "spam"}};
        EXPECT_EQ(refused(req).first, "usage") << cmd;
        req["id"] = "vm-nope";
        EXPECT_EQ(refused(req).first, "not_found") << cmd;
    }
}

TEST_F(CommandsTest, SetTierChecksTierAndDuration) {
    EXPECT_EQ(refused({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "jail"}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}, {"for_s", 0}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}, {"for_s", "1h"}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}, {"for_s", 1e300}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}, {"for_s", svc::cmd::kMaxPinSeconds + 1}}).first,
              "usage");
    EXPECT_TRUE(heard.empty());  // nothing was pinned by a refused request
    json v = call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}, {"for_s", 30}});
    EXPECT_EQ(v["pin"]["tier"], "blocked");
    EXPECT_EQ(v["pin"]["until_unix"], clock.now_ms() / 1000 + 30);
}

TEST_F(CommandsTest, ReportChecksKindAndCount) {
    EXPECT_EQ(refused({{"cmd", "report"}, {"id", "vm-a"}, {"kind", "phish"}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "report"}, {"id", "vm-a"}, {"kind", "spam"}, {"count", 0}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "report"}, {"id", "vm-a"}, {"kind", "spam"}, {"count", -3}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "report"}, {"id", "vm-a"}, {"kind", "spam"}, {"count", "many"}}).first, "usage");
    EXPECT_EQ(call({{"cmd", "report"}, {"id", "vm-a"}, {"kind", "complaint"}})["score"], 200);
}

TEST_F(CommandsTest, EventsChecksLimitAndFollow) {
    EXPECT_EQ(refused({{"cmd", "events"}, {"limit", -1}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "events"}, {"follow", "yes"}}).first, "usage");
    call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}});
    EXPECT_EQ(call({{"cmd", "events"}, {"limit", 1}}).size(), 1u);
    EXPECT_EQ(call({{"cmd", "events"}}).size(), 2u);  // tier change and ticket
    svc::Reply f = raw({{"cmd", "events"}, {"follow", true}});
    EXPECT_TRUE(f.stream);
}

TEST_F(CommandsTest, VmShowCarriesTheVmsTickets) {
    call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}});
    json v = call({{"cmd", "vm.show"}, {"id", "vm-a"}});
    ASSERT_EQ(v["tickets"].size(), 2u);
    EXPECT_EQ(v["tickets"][1]["type"], "ticket");
    for (const char* k : {"id", "tenant", "tier", "score", "rate", "syn", "spoofed", "limits", "replies", "pin"})
        EXPECT_TRUE(v.contains(k)) << k;
}

TEST_F(CommandsTest, VmListRefusesAnUnknownTier) {
    EXPECT_EQ(refused({{"cmd", "vm.list"}, {"tier", "jail"}}).first, "usage");
}

TEST_F(CommandsTest, FlowOriginalDstChecksTheAddress) {
    EXPECT_EQ(refused({{"cmd", "flow.original_dst"}, {"addr", "10.0.0.1"}}).first, "usage");
    EXPECT_EQ(refused({{"cmd", "flow.original_dst"}, {"addr", "[2001:db8::1]:2525"}}).first, "not_found");
}

TEST_F(CommandsTest, StatusDescribesDaemonMapsAndDatapath) {
    json s = call({{"cmd", "status"}});
    for (const char* k : {"version", "uptime_s", "xdp_mode", "interfaces", "vms", "tiers", "sweep", "datapath", "maps",
                          "events_lost", "smtp_ports"})
        EXPECT_TRUE(s.contains(k)) << k;
    EXPECT_EQ(s["maps"]["sg_vm_policy"]["max"], maps.max_vms());
    EXPECT_EQ(s["datapath"].size(), static_cast<size_t>(SG_RES_MAX));
    // the daemon's own memory (the soak judges heap_in_use_bytes): this process's, nonzero
    const json& m = s["memory"];
    EXPECT_GT(m["rss_bytes"].get<uint64_t>(), 1'000'000u);
    EXPECT_GT(m["heap_in_use_bytes"].get<uint64_t>(), 0u);
    EXPECT_LT(m["heap_in_use_bytes"].get<uint64_t>(), m["rss_bytes"].get<uint64_t>() * 4);
    EXPECT_TRUE(m["heap_free_bytes"].is_number_unsigned());
}

}  // namespace
}  // namespace sgt
