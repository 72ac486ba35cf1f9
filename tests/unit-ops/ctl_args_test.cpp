// smtpgovctl argument parsing: the spec table, Boost.Program_options, usage errors.
#include <gtest/gtest.h>

#include <set>

#include "args.h"
#include "commands.h"
#include "spec.h"
#include "svc/commands.h"

namespace smtpgov::ctl {
namespace {

Invocation parse(std::vector<std::string> argv) { return parse_args(argv); }

TEST(CtlArgs, CommandWordsArgsAndOptions) {
    Invocation inv = parse({"vm", "set-tier", "vm-101", "blocked", "--for", "60"});
    ASSERT_NE(inv.command, nullptr);
    EXPECT_EQ(inv.command->name(), "vm set-tier");
    EXPECT_EQ(inv.arg("ID"), "vm-101");
    EXPECT_EQ(inv.arg("TIER"), "blocked");
    EXPECT_EQ(inv.seconds_opt("for"), 60.0);
    EXPECT_EQ(inv.socket, kDefaultSocket);
    EXPECT_FALSE(inv.json);
}

TEST(CtlArgs, GlobalOptionsAnywhere) {
    Invocation a = parse({"--socket", "/tmp/s.sock", "--json", "vm", "list", "--tier", "steered"});
    EXPECT_EQ(a.socket, "/tmp/s.sock");
    EXPECT_TRUE(a.json);
    EXPECT_EQ(a.opt("tier"), "steered");
    Invocation b = parse({"vm", "list", "--tenant=acme", "--json", "--socket=/x.sock"});
    EXPECT_EQ(b.socket, "/x.sock");
    EXPECT_TRUE(b.json);
    EXPECT_EQ(b.opt("tenant"), "acme");
    EXPECT_FALSE(b.opt("tier").has_value());
}

TEST(CtlArgs, DefaultsFromSpec) {
    Invocation e = parse({"events"});
    EXPECT_EQ(e.uint_opt("limit"), 100u);
    EXPECT_FALSE(e.flag("follow"));
    Invocation f = parse({"events", "--follow", "--limit", "5"});
    EXPECT_TRUE(f.flag("follow"));
    EXPECT_EQ(f.uint_opt("limit"), 5u);
    Invocation r = parse({"report", "spam", "vm-1"});
    EXPECT_EQ(r.uint_opt("count"), 1u);
    EXPECT_EQ(parse({"top"}).seconds_opt("interval"), 2.0);
    EXPECT_FALSE(parse({"vm", "set-tier", "a", "ok"}).seconds_opt("for").has_value());
}

TEST(CtlArgs, HelpNeedsNoArguments) {
    Invocation h = parse({"vm", "show", "--help"});
    EXPECT_TRUE(h.help);
    EXPECT_EQ(h.command->name(), "vm show");
    Invocation g = parse({"vm", "--help"});
    EXPECT_TRUE(g.help);
    EXPECT_EQ(g.command, nullptr);
    EXPECT_EQ(g.words, std::vector<std::string>{"vm"});
    EXPECT_TRUE(parse({"--help"}).help);
}

TEST(CtlArgs, UsageErrors) {
    const std::vector<std::vector<std::string>> bad{
        {},
        {"vm"},
        {"frobnicate"},
        {"vm", "explode"},
        {"vm", "show"},
        {"vm", "show", "a", "b"},
        {"vm", "set-tier", "a", "purple"},
        {"vm", "set-tier", "a", "ok", "--for", "soon"},
        {"vm", "set-tier", "a", "ok", "--for", "-5"},
        {"vm", "set-tier", "a", "ok", "--for", "1e300"},
        {"vm", "set-tier", "a", "ok", "--for", "315360001"},
        {"top", "--interval", "1e300"},
        {"vm", "list", "--tier"},
        {"vm", "list", "--bogus"},
        {"vm", "list", "--ten", "acme"},  // no abbreviations
        {"events", "--limit", "-1"},
        {"events", "--limit", "1e3"},
        {"report", "ham", "vm-1"},
        {"report", "spam", "vm-1", "--count", "x"},
        {"completion", "zsh"},
        {"--socket", "", "status"},
        {"status", "--socket"},
    };
    for (const auto& argv : bad) {
        std::string joined;
        for (const auto& a : argv) joined += a + " ";
        EXPECT_THROW(parse(argv), UsageError) << joined;
    }
}

TEST(CtlArgs, UsageErrorMessagesNameTheProblem) {
    try {
        parse({"vm", "set-tier", "a", "purple"});
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_STREQ(e.what(), "vm set-tier: TIER: invalid value 'purple' (expected one of: ok, throttled, steered, blocked)");
    }
    try {
        parse({"vm", "explode"});
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_STREQ(e.what(), "unknown command 'vm explode' (expected one of: list, show, set-tier, clear)");
    }
}

TEST(CtlArgs, NumberParsers) {
    EXPECT_EQ(parse_uint("0", "x"), 0u);
    EXPECT_EQ(parse_uint("18446744073709551", "x"), 18446744073709551u);
    EXPECT_THROW(parse_uint("", "x"), UsageError);
    EXPECT_THROW(parse_uint("+1", "x"), UsageError);
    EXPECT_DOUBLE_EQ(parse_seconds("0.5", "x"), 0.5);
    EXPECT_THROW(parse_seconds("inf", "x"), UsageError);
    EXPECT_THROW(parse_seconds("nan", "x"), UsageError);
    EXPECT_THROW(parse_seconds(".5s", "x"), UsageError);
    EXPECT_DOUBLE_EQ(parse_seconds("315360000", "x"), 315360000.0);  // 10 years, the bound
    EXPECT_THROW(parse_seconds("315360000.001", "x"), UsageError);
    EXPECT_THROW(parse_seconds("1e300", "x"), UsageError);
    EXPECT_THROW(parse_seconds("1e309", "x"), UsageError);  // ERANGE
}

TEST(CtlSpec, EveryCommandHasAHandlerAndTheContractCommandsExist) {
    for (const auto& c : commands()) EXPECT_TRUE(has_handler(c.name())) << c.name();
    for (const char* name : {"status", "policy validate", "policy apply", "policy get", "vm list", "vm show",
                             "vm set-tier", "vm clear", "events", "report", "flow original-dst", "top"}) {
        bool found = false;
        for (const auto& c : commands()) found |= c.name() == name;
        EXPECT_TRUE(found) << name;
    }
}

TEST(CtlRequest, BuildsControlSocketRequests) {
    using nlohmann::json;
    EXPECT_EQ(build_request(parse({"status"})), (json{{"cmd", "status"}}));
    EXPECT_EQ(build_request(parse({"vm", "list", "--tier", "blocked", "--tenant", "acme"})),
              (json{{"cmd", "vm.list"}, {"tier", "blocked"}, {"tenant", "acme"}}));
    EXPECT_EQ(build_request(parse({"vm", "show", "vm-1"})), (json{{"cmd", "vm.show"}, {"id", "vm-1"}}));
    EXPECT_EQ(build_request(parse({"vm", "set-tier", "vm-1", "steered", "--for", "90"})),
              (json{{"cmd", "vm.set_tier"}, {"id", "vm-1"}, {"tier", "steered"}, {"for_s", 90.0}}));
    EXPECT_EQ(build_request(parse({"vm", "set-tier", "vm-1", "ok"})),
              (json{{"cmd", "vm.set_tier"}, {"id", "vm-1"}, {"tier", "ok"}}));
    EXPECT_EQ(build_request(parse({"vm", "clear", "vm-1"})), (json{{"cmd", "vm.clear"}, {"id", "vm-1"}}));
    EXPECT_EQ(build_request(parse({"events", "--follow", "--limit", "3"})),
              (json{{"cmd", "events"}, {"limit", 3}, {"follow", true}}));
    EXPECT_EQ(build_request(parse({"report", "complaint", "vm-1", "--count", "4"})),
              (json{{"cmd", "report"}, {"kind", "complaint"}, {"id", "vm-1"}, {"count", 4}}));
    EXPECT_EQ(build_request(parse({"flow", "original-dst", "[2001:db8::1]:40000"})),
              (json{{"cmd", "flow.original_dst"}, {"addr", "[2001:db8::1]:40000"}}));
    EXPECT_EQ(build_request(parse({"policy", "get"})), (json{{"cmd", "policy.get"}}));
    EXPECT_EQ(build_request(parse({"ip", "check", "203.0.113.7"})), (json{{"cmd", "ip.check"}, {"addr", "203.0.113.7"}}));
    EXPECT_EQ(build_request(parse({"ip", "show", "2001:db8::/64"})), (json{{"cmd", "ip.show"}, {"addr", "2001:db8::/64"}}));
    // "report" is a command and the start of "report arf"
    EXPECT_EQ(parse({"report", "arf", "-"}).command->name(), "report arf");
    EXPECT_EQ(parse({"report", "arf", "-"}).arg("FILE"), "-");
    EXPECT_EQ(parse({"report", "spam", "vm-1"}).command->name(), "report");
}

// The wire names come from svc/commands.h, the list smtpgovd dispatches on: every
// request the CLI sends names one of them, and every one is sent by some command.
TEST(CtlRequest, WireNamesAreTheSharedCommandList) {
    namespace cmd = svc::cmd;
    const std::set<std::string> shared{
        std::string(cmd::kStatus),    std::string(cmd::kPolicyValidate), std::string(cmd::kPolicyApply),
        std::string(cmd::kPolicyGet), std::string(cmd::kVmList),         std::string(cmd::kVmShow),
        std::string(cmd::kVmSetTier), std::string(cmd::kVmClear),        std::string(cmd::kEvents),
        std::string(cmd::kReport),    std::string(cmd::kFlowOriginalDst),
        std::string(cmd::kReportArf), std::string(cmd::kIpShow),         std::string(cmd::kIpCheck)};
    std::set<std::string> sent;
    for (const auto& c : commands()) {
        std::vector<std::string> argv = c.path;
        for (const auto& a : c.args) argv.push_back(a.choices.empty() ? "x" : a.choices.front());
        Invocation inv = parse(argv);
        if (!c.needs_daemon && c.name() != "policy validate") {
            EXPECT_THROW(build_request(inv), UsageError) << c.name();
            continue;
        }
        std::string wire = build_request(inv).at("cmd").get<std::string>();
        EXPECT_TRUE(shared.count(wire)) << c.name() << " sends " << wire;
        sent.insert(wire);
    }
    EXPECT_EQ(sent, shared);
}

}  // namespace
}  // namespace smtpgov::ctl
