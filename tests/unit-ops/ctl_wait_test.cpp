// How long smtpgovctl waits for smtpgovd (issue 10): a command that changes state is
// waited for however long the daemon works on it (it used to give up after 10 s and exit
// 1 while the policy was applied anyway); one that changes nothing times out; an
// interrupted or cut-off state change says the daemon may have applied it; absurd pin
// durations never leave the CLI. A fake daemon (svc::ControlServer) answers here.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client.h"
#include "svc/commands.h"
#include "svc/control_server.h"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Outcome {
    int code = -1;
    std::string out;  // stdout and stderr
};

// Runs smtpgovctl with args; interrupt_after > 0 sends SIGINT that long after the start.
Outcome run_ctl(const std::vector<std::string>& args, std::chrono::milliseconds interrupt_after = 0ms) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return {};
    std::vector<std::string> argv_s{SMTPGOVCTL_BIN};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], 1);
        ::dup2(pipefd[1], 2);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(pipefd[1]);
    std::thread interrupter;
    if (interrupt_after.count() > 0)
        interrupter = std::thread([pid, interrupt_after] {
            std::this_thread::sleep_for(interrupt_after);
            ::kill(pid, SIGINT);
        });
    Outcome o;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) o.out.append(buf, size_t(n));
    ::close(pipefd[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (interrupter.joinable()) interrupter.join();
    o.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return o;
}

class CtlWait : public ::testing::Test {
protected:
    std::string dir, sock, policy;
    std::unique_ptr<smtpgov::svc::ControlServer> server;
    std::atomic<int> delay_ms{0};
    std::atomic<int> requests{0};
    std::mutex mu;
    std::vector<json> received;
    std::condition_variable gate_cv;
    bool gate_open = true;

    void SetUp() override {
        char tmpl[] = "/tmp/sg-ctl-wait.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir = tmpl;
        sock = dir + "/ctl.sock";
        policy = dir + "/policy.json";
        std::ofstream(policy) << R"({"vms": [{"id": "vm-1", "interface": "vnet1"}]})";
        smtpgov::svc::ControlServerOptions o;
        o.path = sock;
        o.allowed_uid = ::geteuid();
        auto s = smtpgov::svc::ControlServer::start(o, [this](const json& req) { return handle(req); });
        ASSERT_TRUE(s.ok()) << s.error().message;
        server = std::move(*s);
    }
    void TearDown() override {
        open_gate();
        server.reset();
        std::filesystem::remove_all(dir);
    }
    void close_gate() {
        std::lock_guard lock(mu);
        gate_open = false;
    }
    void open_gate() {
        {
            std::lock_guard lock(mu);
            gate_open = true;
        }
        gate_cv.notify_all();
    }

    smtpgov::svc::Reply handle(const json& req) {
        ++requests;
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
        std::unique_lock lock(mu);
        received.push_back(req);
        gate_cv.wait(lock, [this] { return gate_open; });
        if (req["cmd"] == "policy.apply")
            return smtpgov::svc::ok_reply(
                {{"added", {"vm-1"}}, {"removed", json::array()}, {"changed", json::array()}, {"ports_changed", false}});
        return smtpgov::svc::ok_reply({{"id", req.value("id", "vm-1")}, {"tier", "blocked"}, {"score", 1}});
    }
};

TEST_F(CtlWait, StateChangesAreWaitedForAndReadsTimeOut) {
    delay_ms = 700;
    smtpgov::ctl::SocketTransport t(sock, 250);
    auto status = t.call({{"cmd", "status"}});
    ASSERT_FALSE(status.ok());
    // (the answer comes at 700 ms: failing with this message is the read timeout's doing)
    EXPECT_EQ(status.error().message, "smtpgovd did not answer status within 250 ms");
    for (auto cmd : smtpgov::svc::cmd::kChangesState) {
        auto t0 = Clock::now();
        auto r = t.call({{"cmd", cmd}, {"id", "vm-1"}});
        ASSERT_TRUE(r.ok()) << cmd << ": " << r.error().message;
        EXPECT_EQ((*r)["ok"], true);
        EXPECT_GT(since(t0), 0.6) << cmd;
    }
    // the commands that change state, as the daemon's table marks them
    for (auto cmd : {"policy.apply", "vm.set_tier", "vm.clear", "report"})
        EXPECT_TRUE(smtpgov::svc::cmd::changes_state(cmd)) << cmd;
    for (auto cmd : {"status", "policy.validate", "policy.get", "vm.list", "vm.show", "events", "flow.original_dst"})
        EXPECT_FALSE(smtpgov::svc::cmd::changes_state(cmd)) << cmd;
}

// The end-to-end case of the issue: an apply the daemon works on for longer than the
// CLI's old 10 s timeout succeeds (exit 0) instead of failing while applied anyway.
TEST_F(CtlWait, SlowPolicyApplyIsWaitedFor) {
    delay_ms = 11'000;
    auto t0 = Clock::now();
    Outcome o = run_ctl({"--socket", sock, "policy", "apply", policy});
    EXPECT_EQ(o.code, 0) << o.out;
    EXPECT_EQ(o.out, "policy applied:\n  added    vm-1\n");
    EXPECT_GT(since(t0), 10.9);
}

TEST_F(CtlWait, InterruptedApplySaysTheDaemonMayStillApplyIt) {
    close_gate();
    Outcome o = run_ctl({"--socket", sock, "policy", "apply", policy}, 500ms);
    EXPECT_EQ(o.code, 1) << o.out;
    EXPECT_EQ(o.out,
              "smtpgovctl: interrupted while smtpgovd works on policy.apply: the daemon may still apply it "
              "(check with 'smtpgovctl policy get')\n");
    Outcome pin = run_ctl({"--socket", sock, "vm", "set-tier", "vm-7", "blocked"}, 500ms);
    EXPECT_EQ(pin.code, 1) << pin.out;
    EXPECT_NE(pin.out.find("the daemon may still apply it (check with 'smtpgovctl vm show vm-7')"), std::string::npos)
        << pin.out;
}

TEST(CtlWaitRaw, AnswerCutOffSaysItMayHaveBeenApplied) {
    char tmpl[] = "/tmp/sg-ctl-cut.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, sock = dir + "/ctl.sock", policy = dir + "/p.json";
    std::ofstream(policy) << R"({"vms": []})";
    int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    sock.copy(a.sun_path, sock.size());
    ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(l, 4), 0);
    std::thread daemon([l] {  // reads the request line, then dies without answering
        int c = ::accept(l, nullptr, nullptr);
        char ch;
        while (::read(c, &ch, 1) == 1 && ch != '\n') {}
        ::close(c);
    });
    Outcome o = run_ctl({"--socket", sock, "policy", "apply", policy});
    daemon.join();
    ::close(l);
    std::filesystem::remove_all(dir);
    EXPECT_EQ(o.code, 1) << o.out;
    EXPECT_NE(o.out.find("smtpgovctl: no answer from smtpgovd to policy.apply ("), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("it may or may not have been applied (check with 'smtpgovctl policy get')"),
              std::string::npos)
        << o.out;
}

// `vm set-tier --for 1e300` was undefined behaviour in the daemon (double -> int64 ms):
// the CLI refuses any duration over 10 years with exit 2 and sends nothing.
TEST_F(CtlWait, AbsurdPinDurationsNeverLeaveTheCli) {
    for (const char* d : {"1e300", "315360000.5", "315360001", "1e10", "99999999999999999999"}) {
        Outcome o = run_ctl({"--socket", sock, "vm", "set-tier", "vm-1", "blocked", "--for", d});
        EXPECT_EQ(o.code, 2) << d << ": " << o.out;
        EXPECT_EQ(o.out, std::string("smtpgovctl: vm set-tier: --for: '") + d +
                             "' is more than 315360000 seconds (10 years)\n");
    }
    EXPECT_EQ(requests.load(), 0);
    Outcome ok = run_ctl({"--socket", sock, "vm", "set-tier", "vm-1", "blocked", "--for", "315360000"});
    EXPECT_EQ(ok.code, 0) << ok.out;
    std::lock_guard lock(mu);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0]["for_s"], 315360000.0);
    EXPECT_EQ(received[0]["for_s"].get<double>(), smtpgov::svc::cmd::kMaxPinSeconds);
}

// docs/internals.md states the limits the code has.
TEST(ControlSocketDocs, StateTheLimitsInForce) {
    std::ifstream in(SMTPGOV_SOURCE_DIR "/docs/internals.md");
    std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const smtpgov::svc::ControlServerOptions o;
    auto has = [&](const std::string& text) { return doc.find(text) != std::string::npos; };
    EXPECT_EQ(o.max_request_bytes, size_t{256} << 20);
    EXPECT_TRUE(has("at most **256 MiB**"));
    EXPECT_TRUE(has("\"request larger than " + std::to_string(o.max_request_bytes) + " bytes"));
    EXPECT_EQ(o.max_buffered_bytes, size_t{512} << 20);
    EXPECT_TRUE(has("at most 512 MiB"));
    EXPECT_TRUE(has("nothing received within " + std::to_string(o.read_timeout_ms) + " ms"));
    EXPECT_TRUE(has("must arrive within " + std::to_string(o.request_timeout_ms / 1000) + " s"));
    EXPECT_TRUE(has("At most " + std::to_string(o.max_pending) + "\n  connections"));
    EXPECT_TRUE(has("up to " + std::to_string(o.max_commands) + " threads at once; up to " +
                    std::to_string(o.max_queued) + " more wait"));
    EXPECT_TRUE(has("up to " + std::to_string(o.max_streams) + " streams"));
    EXPECT_TRUE(has("connects and sends within " + std::to_string(smtpgov::ctl::kSendTimeoutMs / 1000) + " s"));
    EXPECT_TRUE(has("time out after " + std::to_string(smtpgov::ctl::kReplyTimeoutMs / 1000) + " s"));
    EXPECT_TRUE(has("at most 315,360,000 (10 years"));
}

}  // namespace
