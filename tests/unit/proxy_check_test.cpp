// The proxy health check (svc/proxy_check.h) against loopback servers: a 220 greeting is
// up; a refused connection, silence, or another greeting is down, within the timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/unique_fd.h"
#include "svc/proxy_check.h"

using namespace smtpgov;
using namespace smtpgov::svc;

namespace {

// A one-thread TCP server on 127.0.0.1 that greets each client with `greeting` (or
// says nothing when it is empty) and keeps it until the next one comes.
class FakeSmtp {
public:
    explicit FakeSmtp(std::string greeting) : greeting_(std::move(greeting)) {
        fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(fd_.get(), 16), 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] {
            UniqueFd client;
            for (;;) {
                UniqueFd c(::accept(fd_.get(), nullptr, nullptr));
                if (!c || stop_) return;
                if (!greeting_.empty()) [[maybe_unused]] auto n = ::send(c.get(), greeting_.data(), greeting_.size(), 0);
                client = std::move(c);
            }
        });
    }
    ~FakeSmtp() {
        stop_ = true;
        ::shutdown(fd_.get(), SHUT_RDWR);
        thread_.join();
    }
    Endpoint endpoint() const { return Endpoint::parse("127.0.0.1:" + std::to_string(port_)).value(); }

private:
    std::string greeting_;
    UniqueFd fd_;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// A port nothing listens on (bound, then closed).
Endpoint closed_port() {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return Endpoint::parse("127.0.0.1:" + std::to_string(ntohs(a.sin_port))).value();
}

}  // namespace

TEST(ProxyCheck, GreetingIsUp) {
    FakeSmtp postfix("220 proxy.example ESMTP Postfix\r\n");
    EXPECT_TRUE(probe_smtp(postfix.endpoint(), 2000));
    FakeSmtp multi("220-proxy.example first line\r\n220 second\r\n");
    EXPECT_TRUE(probe_smtp(multi.endpoint(), 2000));
}

TEST(ProxyCheck, DownForEveryOtherReason) {
    FakeSmtp busy("421 4.3.2 service not available\r\n");
    auto s = probe_smtp(busy.endpoint(), 2000);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("greeting \"421 4.3.2 service not available\" is not 220"), std::string::npos)
        << s.error().message;
    s = probe_smtp(closed_port(), 2000);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("Connection refused"), std::string::npos) << s.error().message;
    FakeSmtp silent("");
    s = probe_smtp(silent.endpoint(), 300);  // the silent server never closes: only the timeout ends this
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("no greeting within 300 ms"), std::string::npos) << s.error().message;
}

// The checker probes every target at once when configured, then every interval, and
// reports each finding.
TEST(ProxyCheck, CheckerReportsEveryProbe) {
    FakeSmtp postfix("220 ok\r\n");
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::pair<std::string, bool>> seen;
    ProxyChecker checker([&](const Endpoint& e, bool up, const std::string&) {
        std::lock_guard lock(mu);
        seen.emplace_back(e.to_string(), up);
        cv.notify_all();
    }, 500);
    const Endpoint down = closed_port();
    checker.configure({postfix.endpoint(), down}, 1);
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return seen.size() >= 4; })) << seen.size();
    EXPECT_EQ(seen[0], std::make_pair(postfix.endpoint().to_string(), true));
    EXPECT_EQ(seen[1], std::make_pair(down.to_string(), false));
    EXPECT_EQ(seen[2].first, postfix.endpoint().to_string()) << "the second round";
    // nothing to check: no more reports
    lock.unlock();
    checker.configure({}, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    lock.lock();
    const size_t n = seen.size();
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(1300));
    lock.lock();
    EXPECT_EQ(seen.size(), n);
}
