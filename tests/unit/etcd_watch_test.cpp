// etcd::Client::watch against a scripted gateway on 127.0.0.1: one create request per
// key in the body, events handed over, and a stream that ends before the server has
// confirmed every key's watcher reported as an error (the key was never watched).
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <thread>

#include "core/unique_fd.h"
#include "loopback_listener.h"
#include "svc/etcd.h"

using namespace smtpgov;

namespace {

// Serves one /v3/watch request: reads it whole, answers `created` watchers confirmed,
// then the given lines, then holds the stream open until the client goes away.
class FakeGateway {
public:
    FakeGateway(int created, std::vector<std::string> lines) : created_(created), lines_(std::move(lines)) {
        fd_ = sgt::listen_loopback(port_);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeGateway() { thread_.join(); }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::string request;  // as received (read after the watch returned)

private:
    void serve() {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) return;
        UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        char buf[4096];
        for (size_t body = std::string::npos, length = 0;
             body == std::string::npos || request.size() < body + length;) {
            ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
            if (n <= 0) return;
            request.append(buf, size_t(n));
            if (body == std::string::npos && (body = request.find("\r\n\r\n")) != std::string::npos) {
                body += 4;
                auto cl = request.find("Content-Length: ");
                length = cl == std::string::npos ? 0 : std::stoul(request.substr(cl + 16));
            }
        }
        std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
        for (int i = 0; i < created_; ++i)
            out += R"({"result":{"header":{"revision":"9"},"watch_id":")" + std::to_string(i) + R"(","created":true}})" "\n";
        for (const auto& l : lines_) out += l + "\n";
        [[maybe_unused]] auto n = ::send(c.get(), out.data(), out.size(), MSG_NOSIGNAL);
        pollfd q{c.get(), POLLIN, 0};
        while (::poll(&q, 1, 3000) > 0 && ::recv(c.get(), buf, sizeof buf, 0) > 0) {
        }
    }
    UniqueFd fd_;
    int port_ = 0, created_;
    std::vector<std::string> lines_;
    std::thread thread_;
};

std::string b64(const std::string& s) { return etcd::base64_encode(s); }

TEST(EtcdWatch, HandsOverEventsAndEndsOkAtItsTimeLimitWhenEveryWatcherWasCreated) {
    const std::string ev = R"({"result":{"header":{"revision":"12"},"watch_id":"1","events":[{"kv":{"key":")" +
                           b64("/sg/policy/hosts/hv-a") + R"(","value":")" + b64("{}") +
                           R"(","mod_revision":"11","create_revision":"3","version":"4"}}]}})";
    FakeGateway gw(2, {ev});
    etcd::Client c(etcd::Options{{gw.url()}});
    std::atomic<bool> stop{false};
    std::vector<etcd::WatchBatch> got;
    Status s = c.watch({{"/sg/policy/global", false}, {"/sg/policy/hosts/hv-a", false}}, 7,
                       [&](const etcd::WatchBatch& b) {
                           got.push_back(b);
                           return true;
                       },
                       stop, 400);
    EXPECT_TRUE(s) << s.error().message;
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].revision, 12);
    ASSERT_EQ(got[0].events.size(), 1u);
    EXPECT_EQ(got[0].events[0].kv.key, "/sg/policy/hosts/hv-a");
    EXPECT_EQ(got[0].events[0].kv.mod_revision, 11);
    // one create request per key, each from the start revision asked for
    const std::string body = gw.request.substr(gw.request.find("\r\n\r\n") + 4);
    EXPECT_EQ(body, R"({"create_request":{"key":")" + b64("/sg/policy/global") + R"(","start_revision":"7"}})" "\n" +
                        R"({"create_request":{"key":")" + b64("/sg/policy/hosts/hv-a") + R"(","start_revision":"7"}})" "\n");
}

TEST(EtcdWatch, AStreamThatEndedWithAWatcherNeverCreatedIsAnError) {
    FakeGateway gw(1, {});
    etcd::Client c(etcd::Options{{gw.url()}});
    std::atomic<bool> stop{false};
    Status s = c.watch({{"/sg/policy/global", false}, {"/sg/tenants/acme/vms/", true}}, 7,
                       [](const etcd::WatchBatch&) { return true; }, stop, 400);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().errnum, EAGAIN);
    EXPECT_NE(s.error().message.find("1 of 2 watchers created"), std::string::npos) << s.error().message;
}

}  // namespace
