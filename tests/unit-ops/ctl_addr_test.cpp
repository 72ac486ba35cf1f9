// smtpgovctl report arf, ip show, ip check against a fake daemon: what is sent, what
// is printed, and the exit codes of the contract (0, 1, 2, 3).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "addresses.h"
#include "fake_daemon.h"

namespace smtpgov::ctl {
namespace {

using nlohmann::json;

using testing::FakeDaemon;
using testing::CtlRun;
using testing::run_cmd;

std::string corpus(const char* name) { return std::string(SMTPGOV_SOURCE_DIR) + "/tests/data/arf/" + name; }

json ok(json result) { return {{"ok", true}, {"result", std::move(result)}}; }

TEST(CtlAddr, ReportArfSendsWhatTheReportSays) {
    FakeDaemon d;
    d.answers = {ok({{"vm", "vm-7"}, {"tenant", "acme"}, {"scored", true}, {"score", 12.5}, {"tier", "ok"}})};
    CtlRun r = run_cmd(d, {"report", "arf", corpus("casing.eml")});
    ASSERT_EQ(r.code, kExitOk) << r.err;
    ASSERT_EQ(d.requests.size(), 1u);
    EXPECT_EQ(d.requests[0], (json{{"cmd", "report.arf"}, {"source_ip", "203.0.113.7"}, {"arrival_unix", 1795428900},
                                   {"feedback_type", "abuse"}, {"reporting_mta", "dns; fbl.isp.example"}}));
    EXPECT_EQ(r.out, "203.0.113.7 at 2026-11-23T10:15:00Z (abuse, dns; fbl.isp.example): complaint against vm-7 "
                     "(tenant acme), score 12.50, tier ok\n");

    d.answers = {ok({{"vm", "vm-7"}, {"scored", true}})};
    r = run_cmd(d, {"--json", "report", "arf", corpus("fallback_received.eml")});
    ASSERT_EQ(r.code, kExitOk) << r.err;
    json j = json::parse(r.out);
    EXPECT_EQ(j["report"]["source_from"], "Received");
    EXPECT_EQ(j["report"]["source_ip"], "198.51.100.77");
    EXPECT_EQ(j["attributed"]["vm"], "vm-7");
}

// --reporters: only a report our MTA vouches for reaches the daemon.
TEST(CtlAddr, ReportArfFromAnUntrustedReporterIsNotSent) {
    char tmpl[] = "/tmp/sg-ctl-arf.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl, body = [] {
        std::ifstream in(corpus("rfc5965_example.eml"));
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }();
    auto write = [&](const std::string& name, const std::string& headers) {
        std::ofstream(dir + "/" + name) << headers << body;
        return dir + "/" + name;
    };
    const std::string good = write("good.eml", "Authentication-Results: mx.hoster.example; dkim=pass header.d=fbl.example.com\n");
    const std::string forged = write("forged.eml", "Authentication-Results: mx.hoster.example; dkim=pass header.d=attacker.example\n");
    const std::vector<std::string> trust{"--reporters", "Example.com,aol.com", "--authserv-id", "MX.hoster.example"};
    FakeDaemon d;
    std::vector<std::string> args{"--json", "report", "arf", forged};
    args.insert(args.end(), trust.begin(), trust.end());
    CtlRun r = run_cmd(d, args);
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_NE(r.err.find("(untrusted_reporter)"), std::string::npos) << r.err;
    EXPECT_TRUE(d.requests.empty());

    d.answers = {ok({{"vm", "vm-7"}, {"scored", true}})};
    args[3] = good;
    r = run_cmd(d, args);
    ASSERT_EQ(r.code, kExitOk) << r.err;
    ASSERT_EQ(d.requests.size(), 1u);
    EXPECT_EQ(json::parse(r.out)["report"]["signed_by"], "fbl.example.com");

    r = run_cmd(d, {"report", "arf", good, "--reporters", "example.com"});
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_NE(r.err.find("--reporters and --authserv-id go together"), std::string::npos) << r.err;
    r = run_cmd(d, {"report", "arf", good, "--reporters", "example.com,,aol.com", "--authserv-id", "mx"});
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_NE(r.err.find("--reporters: \"\" is not a domain name"), std::string::npos) << r.err;
    EXPECT_EQ(d.requests.size(), 1u);
    std::filesystem::remove_all(dir);
}

TEST(CtlAddr, ReportArfExitCodes) {
    FakeDaemon d;
    CtlRun r = run_cmd(d, {"report", "arf", corpus("not_arf.eml")});
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_NE(r.err.find("not an ARF report"), std::string::npos) << r.err;
    r = run_cmd(d, {"report", "arf", corpus("no_source.eml")});
    EXPECT_EQ(r.code, kExitUsage);
    r = run_cmd(d, {"report", "arf", "/nonexistent/sga.eml"});
    EXPECT_EQ(r.code, kExitUsage);
    EXPECT_TRUE(d.requests.empty());  // nothing refused reaches the daemon

    d.answers = {{{"ok", false}, {"error", "no VM held 192.0.2.1 at 1110304800 (Unix time)"}, {"kind", "not_found"}}};
    r = run_cmd(d, {"report", "arf", corpus("rfc5965_example.eml")});
    EXPECT_EQ(r.code, kExitRuntime);
    EXPECT_EQ(r.err, "smtpgovctl: no VM held 192.0.2.1 at 1110304800 (Unix time)\n");
    r = run_cmd(d, {"report", "arf", corpus("rfc5965_example.eml")});  // unreachable
    EXPECT_EQ(r.code, kExitRuntime);
}

TEST(CtlAddr, IpCheckExitCodes) {
    FakeDaemon d;
    d.answers = {ok({{"address", "203.0.113.7"}, {"tainted", false}, {"taint_days", 90}}),
                 ok({{"address", "203.0.113.7"}, {"tainted", true}, {"taint_days", 90},
                     {"reasons", {"complaint (abuse) about 203.0.113.7 at 1795428900, held by vm-7"}}}),
                 ok({{"address", "203.0.113.7"}})};
    CtlRun clean = run_cmd(d, {"ip", "check", "203.0.113.7"});
    EXPECT_EQ(clean.code, kExitOk);
    EXPECT_EQ(clean.out, "203.0.113.7: clean (no complaint or DNSBL listing within 90 days)\n");
    EXPECT_EQ(d.requests[0], (json{{"cmd", "ip.check"}, {"addr", "203.0.113.7"}}));
    CtlRun tainted = run_cmd(d, {"ip", "check", "203.0.113.7"});
    EXPECT_EQ(tainted.code, kExitTainted);
    EXPECT_EQ(tainted.out, "203.0.113.7: tainted\n  complaint (abuse) about 203.0.113.7 at 1795428900, held by vm-7\n");
    EXPECT_EQ(run_cmd(d, {"ip", "check", "203.0.113.7"}).code, kExitRuntime);  // an answer without "tainted"
    EXPECT_EQ(run_cmd(d, {"ip", "check", "203.0.113.7"}).code, kExitRuntime);  // no daemon: not clean
    const size_t sent = d.requests.size();
    EXPECT_EQ(run_cmd(d, {"ip", "check", "203.0.113.300"}).code, kExitUsage);
    EXPECT_EQ(d.requests.size(), sent);
}

TEST(CtlAddr, IpShowRendersHolderHistoryAndComplaints) {
    json ip{{"address", "203.0.113.10"}, {"tainted", true}, {"taint_days", 90}, {"reasons", {"r1"}},
            {"holder", {{"prefix", "203.0.113.10"}, {"vm", "b"}, {"tenant", "beta"}, {"from_unix", 1796165456}, {"to_unix", nullptr}}},
            {"history",
             {{{"prefix", "203.0.113.10"}, {"vm", "a"}, {"tenant", "acme"}, {"from_unix", 1778885454}, {"to_unix", 1796165456}},
              {{"prefix", "203.0.113.10"}, {"vm", "b"}, {"tenant", "beta"}, {"from_unix", 1796165456}, {"to_unix", nullptr}}}},
            {"complaints",
             {{{"address", "203.0.113.10"}, {"arrival_unix", 1795301454}, {"vm", "a"}, {"feedback_type", "abuse"},
               {"reporting_mta", "dns; fbl"}}}},
            {"dnsbl", json::array()}};
    std::string out = render_ip_show(ip);
    EXPECT_NE(out.find("holder now: b (tenant beta, 203.0.113.10, since 2026-12-01T"), std::string::npos) << out;
    EXPECT_NE(out.find("203.0.113.10  a   acme    2026-05-15T22:50:54Z  2026-12-01T22:50:56Z\n"), std::string::npos) << out;
    EXPECT_NE(out.find("  now\n"), std::string::npos) << out;
    EXPECT_NE(out.find("abuse  dns; fbl"), std::string::npos) << out;
    EXPECT_NE(out.find("dnsbl listings:\n  none\n"), std::string::npos) << out;
    FakeDaemon d;
    d.answers = {ok(ip)};
    CtlRun r = run_cmd(d, {"--json", "ip", "show", "203.0.113.10"});
    EXPECT_EQ(r.code, kExitOk);
    EXPECT_EQ(json::parse(r.out), ip);
}

}  // namespace
}  // namespace smtpgov::ctl

namespace smtpgov::ctl {
namespace {

TEST(CtlAddr, DnsblListingsRenderAsATable) {
    const json listings{{{"address", "203.0.113.7"}, {"zone", "zen.example"}, {"reason", "spam source"},
                         {"since_unix", 1795301454}, {"holder", "vm:a"}, {"charged", true}, {"listed_now", true}},
                        {{"address", "203.0.113.7"}, {"zone", "old.example"}, {"reason", ""}, {"from_unix", 1795000000},
                         {"to_unix", 1795100000}, {"holder", "vm:b"}, {"charged", false}, {"listed_now", false}},
                        {{"address", "203.0.113.8"}, {"zone", "zen.example"}, {"reason", "x"}, {"since_unix", 1795301454},
                         {"holder", "vm:a"}, {"charged", false}, {"predates_holder", true}}};
    const std::string out = render_dnsbl(listings);
    EXPECT_NE(out.find("zen.example  203.0.113.7  2026-11-21T22:50:54Z  listed now"), std::string::npos) << out;
    EXPECT_NE(out.find("listed now            vm:a    yes"), std::string::npos) << out;
    EXPECT_NE(out.find("spam source"), std::string::npos) << out;
    EXPECT_NE(out.find("old.example"), std::string::npos) << out;
    EXPECT_NE(out.find("no (predates holder)"), std::string::npos) << out;
    EXPECT_EQ(render_dnsbl(json::array()), "  none\n");
    json ip{{"address", "203.0.113.7"}, {"tainted", true}, {"taint_days", 90},
            {"reasons", {"listed now in zen.example: 203.0.113.7 (spam source)"}}, {"dnsbl", listings}};
    EXPECT_NE(render_ip_show(ip).find("dnsbl listings:\nZONE"), std::string::npos) << render_ip_show(ip);
}

}  // namespace
}  // namespace smtpgov::ctl

namespace smtpgov::ctl {
namespace {

// In a fleet every entry names the host that recorded it; a missing fleet history is said.
TEST(CtlAddr, IpShowInAFleetNamesEachEntrysHost) {
    json ip{{"address", "203.0.113.10"}, {"tainted", true}, {"taint_days", 90},
            {"reasons", {"complaint (abuse) about 203.0.113.10 at 1795301454, held by a (recorded by host hv-a)"}},
            {"holder", {{"prefix", "203.0.113.10"}, {"vm", "a"}, {"tenant", "acme"}, {"from_unix", 1778885454},
                        {"to_unix", nullptr}, {"host", "hv-a"}}},
            {"history", {{{"prefix", "203.0.113.10"}, {"vm", "a"}, {"tenant", "acme"}, {"from_unix", 1778885454},
                          {"to_unix", nullptr}, {"host", "hv-a"}}}},
            {"complaints", {{{"address", "203.0.113.10"}, {"arrival_unix", 1795301454}, {"vm", "a"},
                             {"feedback_type", "abuse"}, {"reporting_mta", ""}, {"host", "hv-a"}}}},
            {"dnsbl", {{{"address", "203.0.113.10"}, {"zone", "zen.example"}, {"reason", "x"}, {"since_unix", 1795301454},
                        {"holder", "vm:a"}, {"charged", true}, {"listed_now", true}, {"host", "hv-a"}}}},
            {"fleet", {{"host", "hv-b"}, {"hosts", {"hv-a", "hv-b"}}, {"records_read", 1}, {"refused", json::array()}}}};
    std::string out = render_ip_show(ip);
    EXPECT_NE(out.find("holder now: a (tenant acme, 203.0.113.10, since 2026-05-15T22:50:54Z, host hv-a)"), std::string::npos) << out;
    EXPECT_NE(out.find("PREFIX        VM  TENANT  FROM                  TO   HOST\n"), std::string::npos) << out;
    EXPECT_NE(out.find("now  hv-a\n"), std::string::npos) << out;
    EXPECT_NE(out.find("REPORTED BY  HOST\n"), std::string::npos) << out;
    EXPECT_NE(out.find("REASON  HOST\n"), std::string::npos) << out;
    EXPECT_NE(out.find("(recorded by host hv-a)"), std::string::npos) << out;
    EXPECT_EQ(out.find("fleet history unavailable"), std::string::npos) << out;
    ip["fleet"] = {{"host", "hv-b"}, {"error", "fleet history unavailable: etcd: connection refused"}};
    out = render_ip_show(ip);
    EXPECT_NE(out.find("fleet history unavailable (fleet history unavailable: etcd: connection refused): this host's "
                       "records only\n"), std::string::npos) << out;
    // a single host's answer has no HOST column
    ip.erase("fleet");
    EXPECT_EQ(render_ip_show(ip).find("HOST"), std::string::npos);
}

TEST(CtlAddr, ReportArfHeldOnAnotherHost) {
    FakeDaemon d;
    d.answers = {ok({{"vm", "vm-7"}, {"tenant", "acme"}, {"scored", false}, {"holder_host", "hv-a"}})};
    CtlRun r = run_cmd(d, {"report", "arf", corpus("casing.eml")});
    ASSERT_EQ(r.code, kExitOk) << r.err;
    EXPECT_NE(r.out.find("complaint against vm-7 (tenant acme), recorded here only (the address is tainted "
                         "fleet-wide): it was held on host hv-a"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace smtpgov::ctl
