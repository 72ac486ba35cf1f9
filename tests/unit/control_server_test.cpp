// Control socket server and client over a real Unix socket in a private temp directory.
// Runs as root (the server admits uid 0 only; one test drops to uid 65534 in a child).
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "svc/control_client.h"
#include "svc/control_server.h"

using nlohmann::json;
using namespace smtpgov;
using namespace smtpgov::svc;
using namespace std::chrono_literals;

namespace {

// A connected raw client, for what the real client would never send.
struct RawClient {
    UniqueFd fd;
    explicit RawClient(const std::string& path) : fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        path.copy(a.sun_path, path.size());
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    }
    void send(std::string_view s) {
        while (!s.empty()) {
            ssize_t n = ::send(fd.get(), s.data(), s.size(), MSG_NOSIGNAL);
            ASSERT_GT(n, 0) << strerror(errno);
            s.remove_prefix(static_cast<size_t>(n));
        }
    }
    json reply(int timeout_ms = 5000) {
        std::string buf, line;
        IoStatus st = read_line(fd.get(), buf, line, 1 << 20, mono_ms() + timeout_ms);
        EXPECT_EQ(st, IoStatus::Ok);
        return json::parse(line, nullptr, false);
    }
};

class ControlServerTest : public ::testing::Test {
protected:
    std::string dir, path;
    std::unique_ptr<ControlServer> server;
    std::atomic<int> streams_ended{0};

    void SetUp() override {
        ASSERT_EQ(geteuid(), 0u) << "control socket tests run as root";
        char tmpl[] = "/tmp/sg-ctl-test.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        path = dir + "/run/smtpgov/ctl.sock";
    }
    void TearDown() override {
        server.reset();
        std::filesystem::remove_all(dir);
    }

    void start(ControlServerOptions o = {}) {
        o.path = path;
        auto s = ControlServer::start(o, [this](const json& req) { return handle(req); });
        ASSERT_TRUE(s.ok()) << s.error().message;
        server = std::move(*s);
    }

    Reply handle(const json& req) {
        std::string cmd = req["cmd"];
        if (cmd == "throw") throw std::runtime_error("boom");
        if (cmd == "invalid") return error_reply("validation", "bad policy", {{"/vms/0/rate", "must be >= 0"}});
        if (cmd == "count")  // streams `n` lines, then holds the connection until it closes
            return stream_reply([this, n = req.value("n", 3)](Writer& w) {
                for (int i = 0; i < n && w.write({{"i", i}}); ++i) {}
                while (w.wait(50)) {}
                ++streams_ended;
            });
        if (cmd == "forever")
            return stream_reply([this](Writer& w) {
                for (int i = 0; w.write({{"i", i}}); ++i) w.wait(20);
                ++streams_ended;
            });
        return ok_reply({{"echo", req}});
    }
};

}  // namespace

TEST_F(ControlServerTest, RoundTrip) {
    start();
    auto r = request(path, {{"cmd", "status"}, {"x", 1}}, 2000);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(*r, json::parse(R"({"ok":true,"result":{"echo":{"cmd":"status","x":1}}})"));
    struct stat st{};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((dir + "/run/smtpgov").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0755u);
}

TEST_F(ControlServerTest, ErrorRepliesCarryKindAndProblems) {
    start();
    auto r = request(path, {{"cmd", "invalid"}}, 2000);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, json::parse(R"({"ok":false,"error":"bad policy","kind":"validation",
                                  "problems":[{"path":"/vms/0/rate","reason":"must be >= 0"}]})"));
    auto t = request(path, {{"cmd", "throw"}}, 2000);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ((*t)["kind"], "runtime");
    EXPECT_EQ((*t)["error"], "internal error: boom");
}

TEST_F(ControlServerTest, MalformedRequestsGetUsageErrors) {
    start();
    for (const char* bad : {"not json\n", "[1,2]\n", "{}\n", "{\"cmd\": 5}\n", "\n", "{\"cmd\":\"x\"\n"}) {
        RawClient c(path);
        c.send(bad);
        json r = c.reply();
        EXPECT_EQ(r["ok"], false) << bad;
        EXPECT_EQ(r["kind"], "usage") << bad;
    }
    // the server is still fine
    EXPECT_TRUE(request(path, {{"cmd", "status"}}, 2000).ok());
}

TEST_F(ControlServerTest, OversizedRequestIsAnsweredWithAnError) {
    start();
    RawClient c(path);
    c.send(std::string(2 << 20, 'x') + "\n");  // 2 MiB: completes because the server drains
    json r = c.reply();
    EXPECT_EQ(r["ok"], false);
    EXPECT_EQ(r["kind"], "usage");
    EXPECT_NE(r["error"].get<std::string>().find("larger than"), std::string::npos);
    EXPECT_TRUE(request(path, {{"cmd", "status"}}, 2000).ok());
}

TEST_F(ControlServerTest, SilentClientDoesNotBlockOthers) {
    ControlServerOptions o;
    o.read_timeout_ms = 1500;
    start(o);
    RawClient silent(path);
    RawClient half(path);
    half.send("{\"cmd\":");  // slowloris: never finishes the line
    auto t0 = std::chrono::steady_clock::now();
    auto r = request(path, {{"cmd", "status"}}, 1000);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
    // the silent ones are answered with a timeout error, not held forever
    json s = silent.reply(5000);
    EXPECT_EQ(s["kind"], "usage");
    EXPECT_NE(s["error"].get<std::string>().find("within 1500 ms"), std::string::npos);
    EXPECT_EQ(half.reply(5000)["kind"], "usage");
}

TEST_F(ControlServerTest, ConnectionsBeyondTheBoundAreTurnedAway) {
    ControlServerOptions o;
    o.max_connections = 2;
    start(o);
    RawClient a(path), b(path);
    std::this_thread::sleep_for(300ms);  // both accepted and held by workers
    RawClient c(path);
    json r = c.reply();
    EXPECT_EQ(r["ok"], false);
    EXPECT_NE(r["error"].get<std::string>().find("busy"), std::string::npos);
}

// In a forked child of this threaded process (async-signal-safe calls only): become
// uid/gid 65534 (or _exit(10)) and connect to the socket; -1 with errno on failure.
static int connect_as_nobody(const std::string& path) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    for (size_t i = 0; i < path.size(); ++i) a.sun_path[i] = path[i];
    return connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? fd : -1;
}

TEST_F(ControlServerTest, NonRootPeerIsRefused) {
    start();
    // Let uid 65534 reach the socket at all, so that SO_PEERCRED is what refuses it.
    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);  // mkdtemp made it 0700
    ASSERT_EQ(::chmod((dir + "/run").c_str(), 0755), 0);
    ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int fd = connect_as_nobody(path);
        if (fd < 0) _exit(11);
        const char req[] = "{\"cmd\":\"status\"}\n";
        if (write(fd, req, sizeof req - 1) != static_cast<ssize_t>(sizeof req - 1)) _exit(12);
        static char buf[4096];
        size_t got = 0;
        for (ssize_t n; (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0;) got += static_cast<size_t>(n);
        buf[got] = 0;
        bool refused = strstr(buf, "\"ok\":false") && strstr(buf, "permission denied");
        _exit(refused ? 0 : 13);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setuid, 11 connect, 12 write, 13 not refused";
}

TEST_F(ControlServerTest, SocketModeKeepsNonRootOut) {
    start();
    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
    ASSERT_EQ(::chmod((dir + "/run").c_str(), 0755), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        _exit(connect_as_nobody(path) < 0 && errno == EACCES ? 0 : 11);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "0600 socket must refuse connect() by uid 65534";
}

TEST_F(ControlServerTest, Streaming) {
    start();
    std::vector<json> lines;
    auto head = request_stream(path, {{"cmd", "count"}, {"n", 3}}, 2000, [&](const json& l) {
        lines.push_back(l);
        return lines.size() < 3;
    });
    ASSERT_TRUE(head.ok()) << head.error().message;
    EXPECT_EQ(*head, json::parse(R"({"ok":true,"stream":true})"));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[2]["i"], 2);
    // the client hung up: the stream handler notices and returns
    for (int i = 0; i < 100 && streams_ended == 0; ++i) std::this_thread::sleep_for(20ms);
    EXPECT_EQ(streams_ended, 1);
    // a non-streaming reply passes through request_stream untouched
    auto plain = request_stream(path, {{"cmd", "status"}}, 2000, [](const json&) { return true; });
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ((*plain)["ok"], true);
}

TEST_F(ControlServerTest, StopWhileStreaming) {
    start();
    std::atomic<int> received{0};
    Result<json> head = Error::msg("not run");
    std::thread client([&] {
        head = request_stream(path, {{"cmd", "forever"}}, 2000, [&](const json&) {
            ++received;
            return true;
        });
    });
    for (int i = 0; i < 200 && received < 3; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_GE(received, 3);
    auto t0 = std::chrono::steady_clock::now();
    server->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    client.join();
    EXPECT_TRUE(head.ok()) << head.error().message;  // the stream simply ended
    EXPECT_EQ(streams_ended, 1);
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(request(path, {{"cmd", "status"}}, 500).ok());
}

TEST_F(ControlServerTest, ReplacesStaleSocketButNotALiveServer) {
    std::filesystem::create_directories(dir + "/run/smtpgov");
    {
        UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        path.copy(a.sun_path, path.size());
        ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    }  // closed without unlink, like a server killed with -9
    start();
    EXPECT_TRUE(request(path, {{"cmd", "status"}}, 2000).ok());
    ControlServerOptions o;
    o.path = path;
    auto second = ControlServer::start(o, [](const json&) { return ok_reply(nullptr); });
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("another server"), std::string::npos);
    EXPECT_TRUE(request(path, {{"cmd", "status"}}, 2000).ok());
}

TEST_F(ControlServerTest, ClientReportsUnreachableDaemon) {
    auto r = request(dir + "/nothing.sock", {{"cmd", "status"}}, 500);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().errnum, ENOENT);
    EXPECT_NE(r.error().message.find("connect "), std::string::npos);
}
