// State files: durable, failures reported and retried, damage never stops the controller,
// one controller per state dir.
#include <filesystem>
#include <fstream>

#include "fixture.h"

namespace sgt {
namespace {

namespace fs = std::filesystem;

class PersistenceTest : public ControllerTest {
protected:
    void SetUp() override {
        ControllerTest::SetUp();
        host.links = {{"vnet1", 11}};
    }
    json one_vm(const char* id = "vm-a") { return policy({vm(id, {{"interface", "vnet1"}})}); }
    void garbage(const std::string& name) { std::ofstream(dir + "/" + name) << "{\"version\": 1, \"vms\": [tru"; }
};

TEST_F(PersistenceTest, DamagedSlotsAndReputationAreMovedAsideNotFatal) {
    start(one_vm());
    call({{"cmd", "report"}, {"kind", "complaint"}, {"id", "vm-a"}, {"count", 11}});
    const uint32_t s = slot("vm-a");
    ctl.reset();
    garbage("slots.json");
    garbage("reputation.json");
    restart();
    EXPECT_TRUE(fs::exists(dir + "/slots.json.corrupt"));
    EXPECT_TRUE(fs::exists(dir + "/reputation.json.corrupt"));
    EXPECT_EQ(slot("vm-a"), s);
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "vm-a"}})["tier"], "blocked");  // from the pinned maps
}

TEST_F(PersistenceTest, ADamagedPolicyFallsBackToThePolicyFile) {
    start(one_vm());
    ctl.reset();
    garbage("policy.json");
    restart();
    EXPECT_TRUE(fs::exists(dir + "/policy.json.corrupt"));
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"][0]["id"], "vm-a");
}

TEST_F(PersistenceTest, ADamagedPolicyWithoutAPolicyFileIsAClearStartError) {
    start(one_vm());
    ctl.reset();
    garbage("policy.json");
    fs::remove(dir + "/policy-file.json");
    ControllerOptions o;
    o.state_dir = dir;
    o.policy_file = dir + "/policy-file.json";
    o.max_vms = maps.max_vms();
    o.policy_file.clear();
    auto c = Controller::load(o, clock);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("kernel keeps enforcing"), std::string::npos) << c.error().message;
    EXPECT_TRUE(fs::exists(dir + "/policy.json"));  // left for the operator to restore
}

TEST_F(PersistenceTest, AFailedPolicyWriteChangesNothing) {
    start(one_vm());
    const Contents before = maps.contents();
    fs::create_directory(dir + "/policy.json.tmp");  // the write fails, even for root
    json r = apply(one_vm("vm-new"));
    EXPECT_EQ(r["kind"], "runtime");
    EXPECT_NE(r["error"].get<std::string>().find("nothing changed"), std::string::npos) << r.dump();
    EXPECT_EQ(maps.contents(), before);
    EXPECT_EQ(call({{"cmd", "policy.get"}})["vms"][0]["id"], "vm-a");
    fs::remove(dir + "/policy.json.tmp");
    EXPECT_TRUE(apply(one_vm("vm-new"))["ok"]);
    EXPECT_FALSE(fs::exists(dir + "/slots.json.tmp"));  // no temporary file left behind
}

TEST_F(PersistenceTest, AFailedReputationWriteIsReportedAndRetried) {
    start(one_vm());
    fs::create_directory(dir + "/reputation.json.tmp");
    json r = raw({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}}).body;
    EXPECT_EQ(r["kind"], "runtime");
    EXPECT_NE(r["error"].get<std::string>().find("not saved"), std::string::npos) << r.dump();
    EXPECT_EQ(vm_entry("vm-a").tier, SG_TIER_BLOCKED);  // in force all the same
    fs::remove(dir + "/reputation.json.tmp");
    clock.advance_s(2);
    sweep();
    std::ifstream in(dir + "/reputation.json");
    json saved = json::parse(in);
    EXPECT_EQ(saved["vms"]["vm-a"]["pin"]["tier"], "blocked") << saved.dump();
}

TEST_F(PersistenceTest, OneControllerPerStateDir) {
    start(one_vm());
    ControllerOptions o;
    o.state_dir = dir;
    o.max_vms = maps.max_vms();
    auto second = Controller::load(o, clock);
    ASSERT_FALSE(second);
    EXPECT_NE(second.error().message.find("another smtpgovd"), std::string::npos) << second.error().message;
}

}  // namespace
}  // namespace sgt

namespace sgt {
namespace {

// Durations run on the boot clock: someone setting the date a day ahead neither expires
// a pin nor decays a score; the file still says when, in Unix time.
TEST_F(PersistenceTest, AWallClockStepNeitherExpiresPinsNorDecaysScores) {
    start(one_vm());
    call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "blocked"}, {"for_s", 3600}});
    const int64_t until = call({{"cmd", "vm.show"}, {"id", "vm-a"}})["pin"]["until_unix"];
    clock.step_wall_ms(86'400'000);
    sweep();
    json v = call({{"cmd", "vm.show"}, {"id", "vm-a"}});
    EXPECT_EQ(v["tier"], "blocked");
    EXPECT_EQ(v["pin"]["until_unix"], until + 86'400);  // shown on the new wall clock
    clock.advance_s(3601);
    sweep();
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "vm-a"}})["tier"], "ok");
}

TEST_F(PersistenceTest, PersistedTimesAreUnixTimeAcrossABoot) {
    start(one_vm());
    call({{"cmd", "vm.set_tier"}, {"id", "vm-a"}, {"tier", "throttled"}, {"for_s", 600}});
    const int64_t until = call({{"cmd", "vm.show"}, {"id", "vm-a"}})["pin"]["until_unix"];
    ctl.reset();
    // a reboot: the boot clock starts over, the wall clock goes on (5 minutes later)
    clock.set_ms(1'000);
    clock.step_wall_ms(1'700'000'000'000 - 1'000 + 300'000);
    restart();
    json v = call({{"cmd", "vm.show"}, {"id", "vm-a"}});
    EXPECT_EQ(v["tier"], "throttled");
    EXPECT_NEAR(v["pin"]["until_unix"].get<double>(), until, 1);
    clock.advance_s(301);  // 600 s after it was set
    sweep();
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "vm-a"}})["tier"], "ok");
}

}  // namespace
}  // namespace sgt
