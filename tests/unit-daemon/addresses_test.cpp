// The Controller's address history and complaint commands (daemon/addresses.cpp):
// history from policy changes, report.arf attribution and its signal, ip.check's window,
// persistence across a restart, and the refusals.
#include <fstream>

#include "fixture.h"

namespace sgt {
namespace {

class AddressTest : public ControllerTest {
protected:
    int64_t wall_s() { return clock.wall_ms() / 1000; }
    json arf(const std::string& addr, int64_t t) {
        return {{"cmd", "report.arf"}, {"source_ip", addr}, {"arrival_unix", t}, {"feedback_type", "abuse"},
                {"reporting_mta", "dns; fbl.example"}};
    }
    static json two(const char* a_addr, const char* b_addr) {
        return policy({vm("a", {{"tenant", "acme"}, {"addresses", {a_addr}}}),
                       vm("b", {{"tenant", "beta"}, {"addresses", {b_addr}}})});
    }
};

TEST_F(AddressTest, ComplaintCountsAgainstTheVmThatHeldTheAddressThen) {
    start(two("203.0.113.10", "198.51.100.0/24"));
    const int64_t t0 = wall_s();
    clock.advance_s(3600);
    ASSERT_TRUE(apply(two("198.51.100.5", "203.0.113.10")).value("ok", false));  // X moves from a to b
    const int64_t t1 = wall_s();
    clock.advance_s(60);

    json r = call(arf("203.0.113.10", t0 + 1800));
    EXPECT_EQ(r["vm"], "a");
    EXPECT_EQ(r["tenant"], "acme");
    EXPECT_EQ(r["scored"], true);
    EXPECT_GT(call({{"cmd", "vm.show"}, {"id", "a"}})["score"].get<double>(), 0);
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "a"}})["complaints"], 1);
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "b"}})["score"].get<double>(), 0);
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "b"}})["complaints"], 0);
    // at the move and after: b; inside b's old /24 before the move: b too (the prefix)
    EXPECT_EQ(call(arf("203.0.113.10", t1))["vm"], "b");
    EXPECT_EQ(call(arf("198.51.100.77", t0 + 10))["vm"], "b");
    // 198.51.100.5 is a's /32 after the move: the longest prefix wins over b's gone /24
    EXPECT_EQ(call(arf("198.51.100.5", t1 + 10))["vm"], "a");
    // nobody: before the history began, or an address never governed
    EXPECT_EQ(refusal(raw(arf("203.0.113.10", t0 - 1))), "not_found");
    EXPECT_EQ(refusal(raw(arf("192.0.2.1", t1))), "not_found");

    json show = call({{"cmd", "ip.show"}, {"addr", "203.0.113.10"}});
    ASSERT_EQ(show["history"].size(), 2u);
    EXPECT_EQ(show["history"][0]["vm"], "a");
    EXPECT_EQ(show["history"][0]["to_unix"], t1);
    EXPECT_EQ(show["holder"]["vm"], "b");
    EXPECT_EQ(show["complaints"].size(), 2u);
    EXPECT_EQ(show["dnsbl"], json::array());
}

TEST_F(AddressTest, TaintWindowIsAddressTaintDaysByArrival) {
    start(two("203.0.113.10", "203.0.113.11"));
    const int64_t t0 = wall_s();
    clock.advance_s(200 * 86400.0);
    EXPECT_EQ(call({{"cmd", "ip.check"}, {"addr", "203.0.113.10"}})["tainted"], false);
    call(arf("203.0.113.10", t0 + 100));  // 200 days ago: outside 90 days
    json c = call({{"cmd", "ip.check"}, {"addr", "203.0.113.10"}});
    EXPECT_EQ(c["tainted"], false);
    EXPECT_EQ(c["taint_days"], 90);
    call(arf("203.0.113.10", wall_s() - 89 * 86400));
    c = call({{"cmd", "ip.check"}, {"addr", "203.0.113.10"}});
    EXPECT_EQ(c["tainted"], true);
    EXPECT_EQ(c["complaints_in_window"], 1);
    EXPECT_EQ(c["reasons"].size(), 1u);
    // a prefix covers the complaints inside it; the neighbour is clean
    EXPECT_EQ(call({{"cmd", "ip.check"}, {"addr", "203.0.113.0/24"}})["tainted"], true);
    EXPECT_EQ(call({{"cmd", "ip.check"}, {"addr", "203.0.113.11"}})["tainted"], false);
}

TEST_F(AddressTest, AVmThatLeftKeepsItsRecordButGetsNoSignal) {
    start(two("203.0.113.10", "203.0.113.11"));
    const int64_t t0 = wall_s();
    clock.advance_s(10);
    ASSERT_TRUE(apply(policy({vm("b", {{"tenant", "beta"}, {"addresses", {"203.0.113.11"}}})})).value("ok", false));
    json r = call(arf("203.0.113.10", t0 + 5));
    EXPECT_EQ(r["vm"], "a");
    EXPECT_EQ(r["scored"], false);
    EXPECT_EQ(call({{"cmd", "ip.show"}, {"addr", "203.0.113.10"}})["holder"], nullptr);
}

TEST_F(AddressTest, HistoryAndComplaintsSurviveARestart) {
    start(two("203.0.113.10", "203.0.113.11"));
    const int64_t t0 = wall_s();
    clock.advance_s(10);
    call(arf("203.0.113.10", t0 + 5));
    restart();
    json show = call({{"cmd", "ip.show"}, {"addr", "203.0.113.10"}});
    EXPECT_EQ(show["holder"]["vm"], "a");
    EXPECT_EQ(show["holder"]["from_unix"], t0);  // same policy: the holding stays open
    EXPECT_EQ(show["complaints"].size(), 1u);
    EXPECT_EQ(call({{"cmd", "vm.show"}, {"id", "a"}})["complaints"], 1);
    // a damaged file is set aside, never a reason not to start
    std::ofstream(dir + "/address_history.json") << R"({"holdings": 7, "complaints": []})";
    restart();
    EXPECT_EQ(call({{"cmd", "ip.show"}, {"addr", "203.0.113.10"}})["complaints"].size(), 0u);
}

TEST_F(AddressTest, BadArgumentsAreUsageErrors) {
    start(two("203.0.113.10", "203.0.113.11"));
    EXPECT_EQ(refusal(raw({{"cmd", "report.arf"}, {"arrival_unix", 1}})), "usage");
    EXPECT_EQ(refusal(raw({{"cmd", "report.arf"}, {"source_ip", "203.0.113.0/24"}, {"arrival_unix", 1}})), "usage");
    EXPECT_EQ(refusal(raw({{"cmd", "report.arf"}, {"source_ip", "203.0.113.10"}, {"arrival_unix", "x"}})), "usage");
    EXPECT_EQ(refusal(raw({{"cmd", "ip.check"}})), "usage");
    EXPECT_EQ(refusal(raw({{"cmd", "ip.show"}, {"addr", "nope"}})), "usage");
}

}  // namespace
}  // namespace sgt
