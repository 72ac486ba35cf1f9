// Webhook delivery against a tiny HTTP server on 127.0.0.1 that scripts its answers.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "loopback_listener.h"
#include "svc/fd_io.h"
#include "svc/webhook.h"

using nlohmann::json;
using namespace smtpgov::svc;
using smtpgov::UniqueFd;
using namespace std::chrono_literals;

namespace {

// Answers each request with the next scripted status (then 200), one request per
// connection; hold() makes it wait before answering until release().
class TinyHttp {
public:
    explicit TinyHttp(std::vector<int> statuses = {}) : statuses_(std::move(statuses)) {
        fd_ = sgt::listen_loopback(port_);
        thread_ = std::thread([this] { loop(); });
    }
    ~TinyHttp() {
        stop_ = true;
        release();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/tickets"; }
    std::vector<std::string> bodies() {
        std::lock_guard l(mu_);
        return bodies_;
    }
    size_t requests() {
        std::lock_guard l(mu_);
        return bodies_.size();
    }
    bool wait_requests(size_t n, std::chrono::milliseconds timeout) {
        std::unique_lock l(mu_);
        return cv_.wait_for(l, timeout, [&] { return bodies_.size() >= n; });
    }
    void hold() { held_ = true; }
    void release() {
        {
            std::lock_guard l(mu_);
            held_ = false;
        }
        cv_.notify_all();
    }
    std::string last_request_head() {
        std::lock_guard l(mu_);
        return head_;
    }

private:
    void loop() {
        while (!stop_) {
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (c) serve(c.get());
        }
    }
    void serve(int c) {
        std::string req;
        char buf[4096];
        size_t body_at = std::string::npos, length = 0;
        while (body_at == std::string::npos || req.size() < body_at + length) {
            ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) return;
            req.append(buf, static_cast<size_t>(n));
            if (body_at == std::string::npos && (body_at = req.find("\r\n\r\n")) != std::string::npos) {
                body_at += 4;
                auto cl = req.find("Content-Length: ");
                length = cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16));
            }
        }
        int status;
        {
            std::unique_lock l(mu_);
            head_ = req.substr(0, body_at);
            bodies_.push_back(req.substr(body_at, length));
            status = answered_ < statuses_.size() ? statuses_[answered_] : 200;
            ++answered_;
            cv_.notify_all();
            cv_.wait(l, [&] { return !held_ || stop_; });
        }
        std::string resp = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        [[maybe_unused]] auto n = ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    }

    UniqueFd fd_;
    int port_ = 0;
    std::vector<int> statuses_;
    size_t answered_ = 0;
    std::atomic<bool> stop_{false};
    bool held_ = false;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::string> bodies_;
    std::string head_;
    std::thread thread_;
};

WebhookOptions fast(const std::string& url) {
    WebhookOptions o;
    o.url = url;
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 100;
    o.timeout_ms = 2000;
    return o;
}

}  // namespace

TEST(Webhook, PostsTicketJson) {
    TinyHttp http;
    Webhook hook(fast(http.url()));
    json ticket = {{"type", "ticket"}, {"vm", "vm-101"}, {"to", "blocked"}};
    hook.post(ticket);
    ASSERT_TRUE(hook.wait_idle(5000));
    ASSERT_EQ(http.bodies().size(), 1u);
    EXPECT_EQ(json::parse(http.bodies()[0]), ticket);
    EXPECT_NE(http.last_request_head().find("POST /tickets HTTP/1.1"), std::string::npos);
    EXPECT_NE(http.last_request_head().find("Content-Type: application/json"), std::string::npos);
    EXPECT_EQ(hook.stats().sent, 1u);
}

TEST(Webhook, RetriesAfterServerError) {
    TinyHttp http({500, 200});
    Webhook hook(fast(http.url()));
    hook.post({{"vm", "a"}});
    ASSERT_TRUE(hook.wait_idle(5000));
    auto bodies = http.bodies();
    ASSERT_EQ(bodies.size(), 2u);
    EXPECT_EQ(bodies[0], bodies[1]);
    auto s = hook.stats();
    EXPECT_EQ(s.sent, 1u);
    EXPECT_EQ(s.retries, 1u);
    EXPECT_EQ(s.failed, 0u);
}

TEST(Webhook, GivesUpAfterMaxAttempts) {
    TinyHttp http({503, 503, 503, 503});
    auto o = fast(http.url());
    o.max_attempts = 3;
    Webhook hook(o);
    hook.post({{"vm", "a"}});
    ASSERT_TRUE(hook.wait_idle(5000));
    EXPECT_EQ(http.requests(), 3u);
    EXPECT_EQ(hook.stats().failed, 1u);
    EXPECT_EQ(hook.stats().sent, 0u);
}

TEST(Webhook, ClientErrorsAreNotRetried) {
    TinyHttp http({400});
    Webhook hook(fast(http.url()));
    hook.post({{"vm", "a"}});
    ASSERT_TRUE(hook.wait_idle(5000));
    EXPECT_EQ(http.requests(), 1u);
    EXPECT_EQ(hook.stats().failed, 1u);
}

TEST(Webhook, RetriesWhenNothingListens) {
    uint16_t port;
    {
        TinyHttp gone;  // a port that was just free and now refuses
        port = static_cast<uint16_t>(std::stoi(gone.url().substr(17)));
    }
    auto o = fast("http://127.0.0.1:" + std::to_string(port) + "/");
    o.max_attempts = 2;
    Webhook hook(o);
    hook.post({{"vm", "a"}});
    ASSERT_TRUE(hook.wait_idle(5000));
    EXPECT_EQ(hook.stats().failed, 1u);
    EXPECT_EQ(hook.stats().retries, 1u);
}

TEST(Webhook, FullQueueDropsOldestWithoutBlocking) {
    TinyHttp http;
    http.hold();
    auto o = fast(http.url());
    o.queue_max = 2;
    Webhook hook(o);
    hook.post({{"n", 0}});
    ASSERT_TRUE(http.wait_requests(1, 5s));  // 0 is in flight, held by the server
    // post never waits on the network: these return while the server still holds 0 (a
    // post that waited would never return, as nothing releases the server before them)
    for (int n = 1; n <= 4; ++n) hook.post({{"n", n}});
    EXPECT_EQ(hook.stats().dropped, 2u);  // 1 and 2 pushed out by 3 and 4
    EXPECT_EQ(hook.stats().queued, 3u);
    http.release();
    ASSERT_TRUE(hook.wait_idle(5000));
    std::vector<int> got;
    for (const auto& b : http.bodies()) got.push_back(json::parse(b)["n"]);
    EXPECT_EQ(got, (std::vector<int>{0, 3, 4}));
}

TEST(Webhook, StopInterruptsBackoff) {
    TinyHttp http({500, 500, 500});
    auto o = fast(http.url());
    o.backoff_initial_ms = 60'000;
    auto hook = std::make_unique<Webhook>(o);
    hook->post({{"n", 1}});
    hook->post({{"n", 2}});
    ASSERT_TRUE(http.wait_requests(1, 5s));
    auto t0 = std::chrono::steady_clock::now();
    hook->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << "stop waited for the 60 s backoff";
    EXPECT_EQ(hook->stats().dropped, 2u);  // the one in backoff and the one queued
    hook->post({{"n", 3}});                // ignored after stop
    EXPECT_EQ(hook->stats().queued, 0u);
}
