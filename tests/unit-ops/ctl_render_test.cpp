// smtpgovctl rendering and command handlers against a fake daemon.
#include <gtest/gtest.h>

#include <cerrno>
#include <deque>
#include <fstream>
#include <sstream>

#include "docs.h"
#include "fake_daemon.h"
#include "render.h"

namespace smtpgov::ctl {
namespace {

using nlohmann::json;

json vm_object(const std::string& id, double rate, const std::string& tier = "ok") {
    return {{"id", id},       {"tenant", "acme"}, {"auto", false},  {"slot", 1},
            {"interface", "vnet3"}, {"addresses", {"203.0.113.7"}}, {"tier", tier}, {"pin", nullptr},
            {"score", 12.5},  {"rate", rate},     {"limits", {{"rate", 10}, {"burst", 20}}},
            {"syn", {{"pass", 100}, {"throttle", 20}, {"steer", 0}, {"block", 3}}},
            {"spoofed", 7},   {"rst_sent", 3},
            {"replies", {{"synack", 90}, {"rst", 1}, {"2xx", 80}, {"4xx", 2}, {"5xx", 5}}}};
}

using testing::FakeDaemon;
using testing::CtlRun;
using testing::run_cmd;

TEST(CtlRender, TableAlignsColumns) {
    Table t({"ID", "RATE"}, {Align::Left, Align::Right});
    t.add({"vm-1", "3.5"});
    t.add({"a-much-longer-id", "120.0"});
    EXPECT_EQ(t.str(),
              "ID                 RATE\n"
              "vm-1                3.5\n"
              "a-much-longer-id  120.0\n");
}

TEST(CtlRender, Helpers) {
    EXPECT_EQ(fixed(2.345, 1), "2.3");
    EXPECT_EQ(utc_time(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(duration(59), "59s");
    EXPECT_EQ(duration(3725), "1h2m");
    EXPECT_EQ(duration(90061), "1d1h");
    EXPECT_EQ(render_pin(nullptr), "-");
    EXPECT_EQ(render_pin(json{{"tier", "blocked"}, {"until_unix", 60}}), "blocked until 1970-01-01T00:01:00Z");
    EXPECT_EQ(render_pin(json{{"tier", "steered"}}), "steered until cleared");
    EXPECT_EQ(render_problems(json::array({{{"path", "/vms/0/rate"}, {"reason", "must be >= 0"}},
                                           {{"path", ""}, {"reason", "bad JSON"}}})),
              (std::vector<std::string>{"/vms/0/rate: must be >= 0", "/: bad JSON"}));
}

TEST(CtlRender, VmListIsSortedByRateAndJsonIsAnArray) {
    FakeDaemon d;
    json list = json::array({vm_object("slow", 1), vm_object("fast", 50, "throttled"), vm_object("mid", 5)});
    d.answers = {{{"ok", true}, {"result", list}}, {{"ok", true}, {"result", list}}};
    CtlRun human = run_cmd(d, {"vm", "list"});
    EXPECT_EQ(human.code, 0);
    EXPECT_LT(human.out.find("fast"), human.out.find("mid"));
    EXPECT_LT(human.out.find("mid"), human.out.find("slow"));
    EXPECT_NE(human.out.find("THROTTLE"), std::string::npos);
    CtlRun js = run_cmd(d, {"vm", "list", "--json"});
    json parsed = json::parse(js.out);
    ASSERT_TRUE(parsed.is_array());
    ASSERT_EQ(parsed.size(), 3u);
    EXPECT_EQ(parsed[0]["id"], "fast");
    for (const char* k : {"id", "tenant", "tier", "score", "rate", "syn", "spoofed"}) EXPECT_TRUE(parsed[0].contains(k)) << k;
}

TEST(CtlRender, VmShowHumanAndJson) {
    FakeDaemon d;
    json vm = vm_object("vm-101", 7.25, "steered");
    vm["pin"] = {{"tier", "steered"}};
    vm["tickets"] = json::array({{{"time", "2026-11-23T05:00:00Z"}, {"type", "ticket"}, {"from", "throttled"},
                                  {"to", "steered"}, {"score", 401.0}, {"reason", "over_limit"}}});
    d.answers = {{{"ok", true}, {"result", vm}}, {{"ok", true}, {"result", vm}}};
    CtlRun human = run_cmd(d, {"vm", "show", "vm-101"});
    EXPECT_EQ(human.code, 0);
    for (const char* s : {"vm-101", "steered until cleared", "7.2 SYN/s", "12.50", "throttle", "5xx", "over_limit",
                          "10/s, burst 20"})
        EXPECT_NE(human.out.find(s), std::string::npos) << s << "\n" << human.out;
    CtlRun js = run_cmd(d, {"--json", "vm", "show", "vm-101"});
    EXPECT_EQ(json::parse(js.out), vm);
}

// Steering in vm show: the tier the datapath enforces when it is not the VM's, and its
// connections.
TEST(CtlRender, VmShowEnforcedTierAndConnections) {
    FakeDaemon d;
    json vm = vm_object("vm-101", 1, "steered");
    vm["enforced"] = "blocked";
    vm["connections"] = {{"tracked", 12}, {"evicted", 3}};
    d.answers = {{{"ok", true}, {"result", vm}}};
    CtlRun human = run_cmd(d, {"vm", "show", "vm-101"});
    EXPECT_NE(human.out.find("steered (enforced: blocked, no proxy takes its connections)"), std::string::npos)
        << human.out;
    EXPECT_NE(human.out.find("12 tracked, 3 evicted"), std::string::npos) << human.out;
}

TEST(CtlRender, DaemonErrorsMapToExitCodes) {
    FakeDaemon d;
    d.answers = {{{"ok", false}, {"error", "no VM vm-9"}, {"kind", "not_found"}}};
    CtlRun nf = run_cmd(d, {"vm", "show", "vm-9"});
    EXPECT_EQ(nf.code, kExitRuntime);
    EXPECT_EQ(nf.err, "smtpgovctl: no VM vm-9\n");

    d.answers = {{{"ok", false},
                  {"error", "invalid policy: 1 problem"},
                  {"kind", "validation"},
                  {"problems", {{{"path", "/vms/0/rate"}, {"reason", "must be >= 0"}}}}}};
    std::string file = ::testing::TempDir() + "/p.json";
    { std::ofstream(file) << R"({"vms":[{"id":"a","interface":"x","rate":-1}]})"; }
    CtlRun inv = run_cmd(d, {"policy", "apply", file});
    EXPECT_EQ(inv.code, kExitUsage);
    EXPECT_EQ(inv.err, "smtpgovctl: invalid policy: 1 problem\n/vms/0/rate: must be >= 0\n");
    EXPECT_EQ(d.requests.back()["policy"]["vms"][0]["rate"], -1);

    CtlRun down = run_cmd(d, {"status"});  // no answer queued: unreachable
    EXPECT_EQ(down.code, kExitRuntime);
    EXPECT_NE(down.err.find("cannot reach smtpgovd"), std::string::npos);
    EXPECT_EQ(exit_code_for_kind("usage"), 2);
    EXPECT_EQ(exit_code_for_kind("runtime"), 1);
}

TEST(CtlRender, PolicyApplyPrintsWhatChanged) {
    FakeDaemon d;
    json diff{{"added", {"vm-3"}},
              {"removed", {"vm-1"}},
              {"changed", {{{"id", "vm-2"}, {"fields", {"rate", "burst"}}}}},
              {"ports_changed", true}};
    d.answers = {{{"ok", true}, {"result", diff}},
                 {{"ok", true},
                  {"result", {{"added", json::array()}, {"removed", json::array()}, {"changed", json::array()},
                              {"ports_changed", false}}}}};
    std::string file = ::testing::TempDir() + "/p2.json";
    { std::ofstream(file) << R"({"vms":[]})"; }
    CtlRun r = run_cmd(d, {"policy", "apply", file});
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.out,
              "policy applied:\n  added    vm-3\n  removed  vm-1\n  changed  vm-2 (rate, burst)\n"
              "  smtp ports changed (datapath program upgraded)\n");
    EXPECT_EQ(run_cmd(d, {"policy", "apply", file}).out, "policy applied: no changes\n");

    std::string bad = ::testing::TempDir() + "/p3.json";
    { std::ofstream(bad) << R"({"vms":[)"; }
    size_t before = d.requests.size();
    CtlRun syntax = run_cmd(d, {"policy", "apply", bad});
    EXPECT_EQ(syntax.code, kExitUsage);
    EXPECT_EQ(d.requests.size(), before);  // never sent
}

TEST(CtlRender, StatusEventsFlowAndTop) {
    FakeDaemon d;
    json st{{"version", "0.1.0"}, {"uptime_s", 3700}, {"xdp_mode", "native"},
            {"interfaces", {{{"name", "vnet3"}, {"ifindex", 7}, {"mode", "native"}, {"attached", true}}}},
            {"vms", 2}, {"tiers", {{"ok", 1}, {"throttled", 1}, {"steered", 0}, {"blocked", 0}}},
            {"sweep", {{"interval_ms", 500}, {"last_ms", 2}}}, {"datapath", {{"smtp_syn", 10}}},
            {"maps", {{"sg_auto", {{"used", 10}, {"max", 8192}}}}}, {"events_lost", 0},
            {"memory", {{"rss_bytes", 48'200'000}, {"heap_in_use_bytes", 9'900'000}, {"heap_free_bytes", 1}}}};
    d.answers = {{{"ok", true}, {"result", st}}};
    CtlRun s = run_cmd(d, {"status"});
    for (const char* x : {"1h1m", "vnet3", "ok 1, throttled 1", "sg_auto", "0.1%", "smtp_syn",
                          "rss 48.2 MB, heap in use 9.9 MB"})
        EXPECT_NE(s.out.find(x), std::string::npos) << x << "\n" << s.out;

    json ev{{"ts_ms", 1}, {"type", "tier_change"}, {"vm", "vm-1"}};
    d.answers = {{{"ok", true}, {"result", {ev, ev}}}};
    EXPECT_EQ(run_cmd(d, {"events", "--limit", "2"}).out, ev.dump() + "\n" + ev.dump() + "\n");
    d.stream_lines = {ev};
    CtlRun f = run_cmd(d, {"events", "--follow"});
    EXPECT_EQ(f.code, 0);
    EXPECT_EQ(f.out, ev.dump() + "\n");
    EXPECT_EQ(d.requests.back()["follow"], true);

    d.answers = {{{"ok", true}, {"result", {{"original", "198.51.100.1:25"}}}},
                 {{"ok", false}, {"error", "no steered flow from 10.0.0.1:1"}, {"kind", "not_found"}}};
    EXPECT_EQ(run_cmd(d, {"flow", "original-dst", "10.0.0.2:4000"}).out, "198.51.100.1:25\n");
    EXPECT_EQ(run_cmd(d, {"flow", "original-dst", "10.0.0.1:1"}).code, kExitRuntime);

    json list = json::array({vm_object("a", 1), vm_object("b", 9, "blocked")});
    d.answers = {{{"ok", true}, {"result", list}}, {{"ok", true}, {"result", list}}};
    CtlRun top = run_cmd(d, {"top", "--iterations", "2", "--interval", "0.1"});
    EXPECT_EQ(top.code, 0);
    size_t frames = 0;
    for (size_t p = top.out.find("smtpgov top"); p != std::string::npos; p = top.out.find("smtpgov top", p + 1))
        ++frames;
    EXPECT_EQ(frames, 2u);
    EXPECT_LT(top.out.find("b  "), top.out.find("a  "));
    EXPECT_NE(top.out.find("ok 1, throttled 0, steered 0, blocked 1"), std::string::npos);
}

TEST(CtlDocs, ManAndCompletionCoverEveryCommandAndOption) {
    std::string man = man_page();
    std::string comp = bash_completion();
    EXPECT_EQ(man.rfind(".TH SMTPGOVCTL 8", 0), 0u);
    EXPECT_NE(comp.find("complete -F _smtpgovctl smtpgovctl"), std::string::npos);
    for (const auto& c : commands()) {
        EXPECT_NE(command_help(c).find(c.usage()), std::string::npos);
        auto roff = [](const std::string& w) {
            std::string roffed;
            for (char ch : w) roffed += ch == '-' ? std::string("\\-") : std::string(1, ch);
            return roffed;
        };
        for (const auto& w : c.path) {
            EXPECT_NE(man.find(roff(w)), std::string::npos) << w;
            EXPECT_NE(comp.find(w), std::string::npos) << w;
        }
        for (const auto& o : c.options) {
            EXPECT_NE(comp.find("--" + o.name), std::string::npos) << o.name;
            EXPECT_NE(man.find(roff("--" + o.name)), std::string::npos) << o.name;
            for (const auto& ch : o.choices) EXPECT_NE(comp.find(ch), std::string::npos) << ch;
        }
    }
    EXPECT_NE(general_help({"vm"}).find("vm set-tier ID TIER [--for SECONDS]"), std::string::npos);
    EXPECT_EQ(general_help({"vm"}).find("policy apply"), std::string::npos);
}

}  // namespace
}  // namespace smtpgov::ctl
