// The policy service's TCP server (svc/policy_server.h) on loopback: requests in,
// answers out in order, and the bounds that keep a local user from holding it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "core/unique_fd.h"
#include "svc/policy_server.h"

using namespace smtpgov;
using namespace smtpgov::svc;

namespace {

const std::string kRequest =
    "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=198.18.1.2\nclient_port=40001\n\n";

// Answers "FILTER ..." for port 40001, "DUNNO" otherwise; port 1 is never answered
// (kept to answer later), port 2 is answered from another thread after 50 ms.
struct Backend {
    std::mutex mu;
    std::vector<PolicyDone> held;
    std::atomic<int> requests{0};
    std::vector<std::thread> threads;
    ~Backend() {
        for (auto& t : threads) t.join();
    }
    PolicyHandler handler() {
        return [this](policy::Request r, PolicyDone done) {
            ++requests;
            const std::string port = r.get("client_port") ? *r.get("client_port") : "";
            if (port == "1") {
                std::lock_guard lock(mu);
                held.push_back(std::move(done));
            } else if (port == "2") {
                threads.emplace_back([d = std::move(done)] {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                    d("OK");
                });
            } else {
                done(port == "40001" ? "FILTER smtp:[203.0.113.25]:25" : "DUNNO");
            }
        };
    }
};

class PolicyServerTest : public ::testing::Test {
protected:
    void start(PolicyServerOptions o = {}) {
        o.addr = IpPrefix::parse("127.0.0.1").value();
        o.port = 0;
        auto s = PolicyServer::start(o, backend.handler());
        ASSERT_TRUE(s) << s.error().message;
        server = std::move(*s);
    }
    UniqueFd dial() {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(server->port()));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        timeval tv{3, 0};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return fd;
    }
    static void send_all(int fd, const std::string& s) {
        ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
    }
    // One answer ("action=...\n\n"), or what came before EOF/timeout.
    static std::string answer(int fd) {
        std::string got;
        char c;
        while (got.size() < 4096 && !(got.size() >= 2 && got.ends_with("\n\n")) && ::recv(fd, &c, 1, 0) == 1)
            got += c;
        return got;
    }
    static bool closed(int fd) {
        char c;
        return ::recv(fd, &c, 1, 0) == 0;
    }

    Backend backend;
    std::unique_ptr<PolicyServer> server;
};

}  // namespace

TEST_F(PolicyServerTest, AnswersRequestsInOrderOnOneConnection) {
    start();
    UniqueFd c = dial();
    send_all(c.get(), kRequest);
    EXPECT_EQ(answer(c.get()), "action=FILTER smtp:[203.0.113.25]:25\n\n");
    send_all(c.get(), "request=smtpd_access_policy\nclient_address=198.18.1.2\nclient_port=2\n\n" + kRequest);
    EXPECT_EQ(answer(c.get()), "action=OK\n\n") << "the slow answer first";
    EXPECT_EQ(answer(c.get()), "action=FILTER smtp:[203.0.113.25]:25\n\n");
    EXPECT_EQ(backend.requests, 3);
}

TEST_F(PolicyServerTest, ABrokenRequestIsAnsweredAndClosed) {
    start();
    UniqueFd c = dial();
    send_all(c.get(), "request=smtpd_access_policy\nthis is not a pair\n\n");
    EXPECT_EQ(answer(c.get()).rfind("action=DEFER_IF_PERMIT smtpgov: line 2: not name=value", 0), 0u);
    EXPECT_TRUE(closed(c.get()));
    UniqueFd big = dial();
    send_all(big.get(), "a=" + std::string(20000, 'x'));
    EXPECT_NE(answer(big.get()).find("larger than 16384 bytes"), std::string::npos);
    EXPECT_TRUE(closed(big.get()));
    EXPECT_EQ(backend.requests, 0);
}

TEST_F(PolicyServerTest, IdleAndSlowConnectionsAreClosed) {
    PolicyServerOptions o;
    o.idle_timeout_ms = 200;
    o.request_timeout_ms = 300;
    start(o);
    UniqueFd idle = dial();
    UniqueFd slow = dial();
    send_all(slow.get(), "request=smtpd_access_policy\n");  // and then nothing
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(closed(idle.get()));
    EXPECT_TRUE(closed(slow.get()));
    // (nothing else ends them: closed() would wait for the test's own ctest timeout)
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

// The server's thread is held up past a connection's idle deadline (a stall of the
// machine) while that client's next request arrives: the bytes waiting unread show the
// client was not idle, and the request is answered, not cut off.
TEST_F(PolicyServerTest, AStallOfTheServerIsNotTheClientsIdleness) {
    std::atomic<bool> stall{false}, in_stall{false};
    PolicyServerOptions o;
    o.idle_timeout_ms = 200;
    o.on_wakeup = [&] {
        if (!stall.exchange(false)) return;
        in_stall = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(800));
    };
    start(o);
    UniqueFd c = dial();
    send_all(c.get(), kRequest);
    EXPECT_EQ(answer(c.get()), "action=FILTER smtp:[203.0.113.25]:25\n\n");
    stall = true;  // the thread stalls at its next wakeup: at the latest the idle deadline
    for (int i = 0; i < 300 && !in_stall; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_TRUE(in_stall);
    send_all(c.get(), kRequest);  // arrives during the stall, before the deadline is checked
    EXPECT_EQ(answer(c.get()), "action=FILTER smtp:[203.0.113.25]:25\n\n");
    EXPECT_TRUE(closed(c.get())) << "and once idle again, closed after idle_timeout_ms";
}

TEST_F(PolicyServerTest, AtMostMaxConnectionsTheIdlestGoes) {
    PolicyServerOptions o;
    o.max_connections = 4;
    start(o);
    std::vector<UniqueFd> held;
    for (int i = 0; i < 4; ++i) {
        held.push_back(dial());
        send_all(held.back().get(), kRequest);
        EXPECT_EQ(answer(held.back().get()).substr(0, 13), "action=FILTER");
    }
    UniqueFd fresh = dial();
    send_all(fresh.get(), kRequest);
    EXPECT_EQ(answer(fresh.get()).substr(0, 13), "action=FILTER") << "a new client is served";
    EXPECT_TRUE(closed(held[0].get())) << "the connection idle longest made room";
    send_all(held[3].get(), kRequest);
    EXPECT_EQ(answer(held[3].get()).substr(0, 13), "action=FILTER");
}

// The handler does not answer in time: the client hears "busy" (Postfix defers), and the
// late answer is not taken for the next request's.
TEST_F(PolicyServerTest, NoAnswerInTimeIsBusy) {
    PolicyServerOptions o;
    o.answer_timeout_ms = 200;
    start(o);
    UniqueFd c = dial();
    send_all(c.get(), "request=smtpd_access_policy\nclient_address=198.18.1.2\nclient_port=1\n\n");
    EXPECT_EQ(answer(c.get()), "action=DEFER_IF_PERMIT smtpgov policy service busy\n\n");
    send_all(c.get(), "request=smtpd_access_policy\nclient_address=198.18.1.2\nclient_port=1\n\n");
    for (int i = 0; i < 200 && backend.requests < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    {
        std::lock_guard lock(backend.mu);
        ASSERT_EQ(backend.held.size(), 2u);
        backend.held[0]("REJECT late");  // the first request's answer, too late
        backend.held[1]("DUNNO");
    }
    EXPECT_EQ(answer(c.get()), "action=DUNNO\n\n");
}

TEST_F(PolicyServerTest, AClientThatShutsDownItsSideStillGetsTheAnswer) {
    start();
    UniqueFd c = dial();
    send_all(c.get(), "request=smtpd_access_policy\nclient_address=198.18.1.2\nclient_port=2\n\n");
    ::shutdown(c.get(), SHUT_WR);
    EXPECT_EQ(answer(c.get()), "action=OK\n\n");
    EXPECT_TRUE(closed(c.get()));
}

TEST_F(PolicyServerTest, AnswersAfterStopAreDropped) {
    start();
    UniqueFd c = dial();
    send_all(c.get(), "request=smtpd_access_policy\nclient_address=198.18.1.2\nclient_port=1\n\n");
    for (int i = 0; i < 100 && backend.requests == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    server->stop();
    std::lock_guard lock(backend.mu);
    ASSERT_EQ(backend.held.size(), 1u);
    backend.held[0]("DUNNO");  // no crash, nothing sent
    EXPECT_TRUE(closed(c.get()));
}

TEST_F(PolicyServerTest, BindErrorIsReported) {
    start();
    PolicyServerOptions o;
    o.addr = IpPrefix::parse("127.0.0.1").value();
    o.port = static_cast<uint16_t>(server->port());
    auto again = PolicyServer::start(o, backend.handler());
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message.find("bind"), std::string::npos);
}
