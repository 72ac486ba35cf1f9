// The built smtpgovctl binary: exit codes of offline commands and of usage errors.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace {

struct Outcome {
    int code;
    std::string out;  // stdout and stderr
};

Outcome ctl(const std::string& args) {
    std::string cmd = std::string(SMTPGOVCTL_BIN) + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return {-1, ""};
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int st = ::pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string write_tmp(const std::string& name, const std::string& body) {
    std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << body;
    return path;
}

TEST(CtlBinary, PolicyValidateValidFiles) {
    Outcome ex = ctl("policy validate " SMTPGOV_SOURCE_DIR "/deploy/config/policy.example.json");
    EXPECT_EQ(ex.code, 0) << ex.out;
    EXPECT_NE(ex.out.find("valid policy (3 VMs)"), std::string::npos) << ex.out;
    Outcome minimal = ctl("policy validate " + write_tmp("min.json", R"({"vms": []})"));
    EXPECT_EQ(minimal.code, 0) << minimal.out;
    Outcome js = ctl("--json policy validate " + write_tmp("min2.json", R"({"vms": []})"));
    EXPECT_EQ(js.code, 0);
    EXPECT_NE(js.out.find(R"("valid":true)"), std::string::npos) << js.out;
}

TEST(CtlBinary, PolicyValidateInvalidFilesExit2WithJsonPaths) {
    Outcome bad = ctl("policy validate " +
                      write_tmp("bad.json", R"({"vms": [{"id": "vm-1", "interface": "vnet3", "rate": -1}],
                                                "defaults": {"over_limit": "explode"}})"));
    EXPECT_EQ(bad.code, 2) << bad.out;
    EXPECT_NE(bad.out.find("invalid policy (2 problems)"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("/vms/0/rate: "), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("/defaults/over_limit: "), std::string::npos) << bad.out;
    EXPECT_EQ(ctl("policy validate " + write_tmp("syntax.json", "{\"vms\": [")).code, 2);
    EXPECT_EQ(ctl("policy validate " + write_tmp("novms.json", "{}")).code, 2);
    EXPECT_EQ(ctl("policy validate /nonexistent/policy.json").code, 2);
}

// A key given twice would silently lose the first ({"vms":[...],"vms":[]} removes every
// VM): refused before anything is sent, for validate and apply alike (no daemon here).
TEST(CtlBinary, DuplicateKeysAndHugeNumbersAreRefusedOffline) {
    std::string twice = write_tmp("twice.json", R"({"vms": [{"id": "a", "interface": "vnet1"}], "vms": []})");
    Outcome v = ctl("policy validate " + twice);
    EXPECT_EQ(v.code, 2) << v.out;
    EXPECT_NE(v.out.find("duplicate key \"vms\" at /"), std::string::npos) << v.out;
    Outcome a = ctl("--socket /nonexistent/ctl.sock policy apply " + twice);
    EXPECT_EQ(a.code, 2) << a.out;
    EXPECT_NE(a.out.find("duplicate key"), std::string::npos) << a.out;
    Outcome huge = ctl("policy validate " + write_tmp("huge.json", R"({"vms": [], "defaults": {"rate": 1e400}})"));
    EXPECT_EQ(huge.code, 2) << huge.out;
}

TEST(CtlBinary, UsageErrorsExit2WithOneLine) {
    for (const char* args : {"", "bogus", "vm", "vm show", "vm set-tier a purple", "events --limit x",
                             "policy validate", "status --nope"}) {
        Outcome o = ctl(args);
        EXPECT_EQ(o.code, 2) << args << ": " << o.out;
        EXPECT_EQ(o.out.rfind("smtpgovctl: ", 0), 0u) << o.out;
        EXPECT_EQ(o.out.find('\n'), o.out.size() - 1) << "not one line: " << o.out;
    }
}

TEST(CtlBinary, DaemonDownExits1) {
    Outcome o = ctl("--socket " + ::testing::TempDir() + "/no-such.sock status");
    EXPECT_EQ(o.code, 1) << o.out;
    EXPECT_NE(o.out.find("cannot reach smtpgovd"), std::string::npos) << o.out;
}

TEST(CtlBinary, HelpManAndCompletion) {
    Outcome h = ctl("vm list --help");
    EXPECT_EQ(h.code, 0);
    EXPECT_NE(h.out.find("--tenant NAME"), std::string::npos);
    EXPECT_EQ(ctl("--help").code, 0);
    Outcome m = ctl("man");
    EXPECT_EQ(m.code, 0);
    EXPECT_EQ(m.out.rfind(".TH SMTPGOVCTL 8", 0), 0u);
    Outcome c = ctl("completion bash");
    EXPECT_EQ(c.code, 0);
    // the generated script is valid bash
    std::string path = write_tmp("completion.bash", c.out);
    EXPECT_EQ(std::system(("bash -n " + path).c_str()), 0);
}

}  // namespace
