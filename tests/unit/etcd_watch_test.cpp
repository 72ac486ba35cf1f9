// etcd::Client::watch against a scripted gateway on 127.0.0.1: create requests spread
// over streams whose bodies the real gateway reads whole, events handed over with the
// revision every stream has reached, and a watch that ends before the server has
// confirmed every key's watcher reported as an error (the key was never watched).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/unique_fd.h"
#include "loopback_listener.h"
#include "svc/etcd.h"

using namespace smtpgov;

namespace {

// Serves `conns` /v3/watch requests, each on its own thread: reads the request whole,
// answers the lines answer(body) gives, then holds the stream open until the client goes
// away; a line kPause sends what came before it and waits 200 ms. The bodies received are kept (read them after the watch returned).
constexpr const char* kPause = "(pause)";

class FakeGateway {
public:
    using Answer = std::function<std::vector<std::string>(const std::string& body)>;
    FakeGateway(int conns, Answer answer) : answer_(std::move(answer)) {
        fd_ = sgt::listen_loopback(port_);
        ::fcntl(fd_.get(), F_SETFL, O_NONBLOCK);
        for (int i = 0; i < conns; ++i) threads_.emplace_back([this] { serve(); });
    }
    ~FakeGateway() {
        for (auto& t : threads_) t.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<std::string> bodies() {
        std::lock_guard l(mu_);
        return bodies_;
    }

private:
    void serve() {
        UniqueFd c;
        while (!c) {  // the listener is non-blocking: another thread may take a connection
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, 5000) <= 0) return;
            c = UniqueFd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        }
        std::string request;
        char buf[4096];
        for (size_t body = std::string::npos, length = 0;
             body == std::string::npos || request.size() < body + length;) {
            pollfd q{c.get(), POLLIN, 0};
            if (::poll(&q, 1, 5000) <= 0) return;
            ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
            if (n <= 0) return;
            request.append(buf, size_t(n));
            if (body == std::string::npos && (body = request.find("\r\n\r\n")) != std::string::npos) {
                body += 4;
                auto cl = request.find("Content-Length: ");
                length = cl == std::string::npos ? 0 : std::stoul(request.substr(cl + 16));
            }
        }
        const std::string body = request.substr(request.find("\r\n\r\n") + 4);
        {
            std::lock_guard l(mu_);
            bodies_.push_back(body);
        }
        std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
        for (const auto& line : answer_(body)) {
            if (line == kPause) {  // what is written so far goes out; the rest 200 ms later
                [[maybe_unused]] auto n = ::send(c.get(), out.data(), out.size(), MSG_NOSIGNAL);
                out.clear();
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                continue;
            }
            out += line + "\n";
        }
        [[maybe_unused]] auto n = ::send(c.get(), out.data(), out.size(), MSG_NOSIGNAL);
        pollfd q{c.get(), POLLIN, 0};
        while (::poll(&q, 1, 3000) > 0 && ::recv(c.get(), buf, sizeof buf, 0) > 0) {
        }
    }
    UniqueFd fd_;
    int port_ = 0;
    Answer answer_;
    std::mutex mu_;
    std::vector<std::string> bodies_;
    std::vector<std::thread> threads_;
};

etcd::Options gateway_options(const FakeGateway& gw) {
    etcd::Options o;
    o.endpoints = {gw.url()};
    return o;
}

// `n` watchers confirmed, at header revision rev.
std::vector<std::string> created(size_t n, int rev) {
    std::vector<std::string> out;
    for (size_t i = 0; i < n; ++i)
        out.push_back(R"({"result":{"header":{"revision":")" + std::to_string(rev) + R"("},"watch_id":")" +
                      std::to_string(i) + R"(","created":true}})");
    return out;
}

size_t creates_in(const std::string& body) { return size_t(std::count(body.begin(), body.end(), '\n')); }

std::string b64(const std::string& s) { return etcd::base64_encode(s); }

std::string event(const std::string& key, int mod, int header) {
    return R"({"result":{"header":{"revision":")" + std::to_string(header) + R"("},"watch_id":"1","events":[{"kv":{"key":")" +
           b64(key) + R"(","value":")" + b64("{}") + R"(","mod_revision":")" + std::to_string(mod) +
           R"(","create_revision":"3","version":"4"}}]}})";
}

std::vector<etcd::Client::Watched> tenants(int n) {
    std::vector<etcd::Client::Watched> keys{{"/sg/policy/global", false}, {"/sg/policy/hosts/hv-a", false}};
    for (int i = 0; i < n; ++i) keys.push_back({"/sg/tenants/tenant-" + std::to_string(i) + "/vms/", true});
    return keys;
}

TEST(EtcdWatch, HandsOverEventsAndEndsOkAtItsTimeLimitWhenEveryWatcherWasCreated) {
    FakeGateway gw(1, [](const std::string&) {
        auto lines = created(2, 9);
        lines.push_back(event("/sg/policy/hosts/hv-a", 11, 12));
        return lines;
    });
    etcd::Client c(gateway_options(gw));
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
    ASSERT_EQ(gw.bodies().size(), 1u);
    EXPECT_EQ(gw.bodies()[0], R"({"create_request":{"key":")" + b64("/sg/policy/global") + R"(","start_revision":"7"}})" "\n" +
                                  R"({"create_request":{"key":")" + b64("/sg/policy/hosts/hv-a") + R"(","start_revision":"7"}})" "\n");
}

TEST(EtcdWatch, AWatchThatEndedWithAWatcherNeverCreatedIsAnError) {
    FakeGateway gw(1, [](const std::string&) { return created(1, 9); });
    etcd::Client c(gateway_options(gw));
    std::atomic<bool> stop{false};
    Status s = c.watch({{"/sg/policy/global", false}, {"/sg/tenants/acme/vms/", true}}, 7,
                       [](const etcd::WatchBatch&) { return true; }, stop, 400);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().errnum, EAGAIN);
    EXPECT_NE(s.error().message.find("1 of 2 watchers created"), std::string::npos) << s.error().message;
}

// The gateway reads at most 512 bytes of a body before its first answer may close it:
// every body fits, every key is asked for once, in order, and a longer request goes alone.
TEST(EtcdWatch, EveryBodyFitsTheGatewaysFirstRead) {
    auto keys = tenants(40);
    keys.push_back({"/sg/tenants/" + std::string(600, 'x') + "/vms/", true});
    keys.push_back({"/sg/tenants/last/vms/", true});
    const auto bodies = etcd::Client::watch_bodies(keys, 1234);
    ASSERT_GT(bodies.size(), 10u);
    std::string all;
    size_t longest = 0;
    for (const auto& b : bodies) {
        if (creates_in(b) > 1) {
            EXPECT_LE(b.size(), 512u) << b;
        }
        longest = std::max(longest, b.size());
        all += b;
    }
    EXPECT_GT(longest, 512u);  // the long one, alone
    size_t at = 0;
    for (const auto& k : keys) {
        std::string want = R"({"create_request":{"key":")" + b64(k.key) + "\"";
        if (k.prefix) want += R"(,"range_end":")" + b64(etcd::Client::prefix_end(k.key)) + "\"";
        at = all.find(want + R"(,"start_revision":"1234"}})" "\n", at);
        ASSERT_NE(at, std::string::npos) << k.key;
    }
    EXPECT_EQ(creates_in(all), keys.size());
}

// Keys over several streams: an event on one is handed over with the revision the slowest
// stream has reached (resuming after it loses nothing), and every stream was opened.
TEST(EtcdWatch, ManyKeysGoOverSeveralStreamsAndResumeAfterTheSlowest) {
    const auto keys = tenants(20);
    const size_t streams = etcd::Client::watch_bodies(keys, 7).size();
    ASSERT_GT(streams, 2u);
    const std::string busy = keys.back().key + "vm-9";
    FakeGateway gw(int(streams), [&](const std::string& body) {
        const bool has = body.find(b64(keys.back().key)) != std::string::npos;
        auto lines = created(creates_in(body), has ? 10 : 9);
        if (has) lines.insert(lines.end(), {kPause, event(busy, 15, 15)});  // after every stream's answer
        return lines;
    });
    etcd::Client c(gateway_options(gw));
    std::atomic<bool> stop{false};
    std::vector<etcd::WatchBatch> got;
    Status s = c.watch(keys, 7, [&](const etcd::WatchBatch& b) {
        got.push_back(b);
        return true;
    }, stop, 600);
    EXPECT_TRUE(s) << s.error().message;
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].events.at(0).kv.key, busy);
    EXPECT_EQ(got[0].revision, 9);  // the other streams have answered up to 9 only
    const auto bodies = gw.bodies();
    EXPECT_EQ(bodies.size(), streams);
    size_t asked = 0;
    for (const auto& b : bodies) asked += creates_in(b);
    EXPECT_EQ(asked, keys.size());
}

// One stream of several short of a watcher: the watch says how many were created.
TEST(EtcdWatch, AWatcherMissingOnOneStreamOfSeveralIsAnError) {
    const auto keys = tenants(20);
    const size_t streams = etcd::Client::watch_bodies(keys, 7).size();
    std::atomic<bool> shorted{false};
    FakeGateway gw(int(streams), [&](const std::string& body) {
        size_t n = creates_in(body);
        if (!shorted.exchange(true)) --n;
        return created(n, 9);
    });
    etcd::Client c(gateway_options(gw));
    std::atomic<bool> stop{false};
    Status s = c.watch(keys, 7, [](const etcd::WatchBatch&) { return true; }, stop, 600);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().errnum, EAGAIN);
    const std::string want = std::to_string(keys.size() - 1) + " of " + std::to_string(keys.size()) + " watchers created";
    EXPECT_NE(s.error().message.find(want), std::string::npos) << s.error().message;
}

}  // namespace
