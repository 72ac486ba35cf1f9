// MetricsExporter: scraped over HTTP on 127.0.0.1 (ephemeral port) like Prometheus does.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "metrics/exporter.h"
#include "metrics/http_server.h"
#include "metrics/snapshot_collector.h"
#include "scrape.h"

namespace smtpgov {
namespace {

using metrics::MetricsExporter;
using metrics::MetricsOptions;
using test::Exposition;

VmView vm(std::string id, Tier tier, double rate, uint64_t pass = 0) {
    VmView v;
    v.id = std::move(id);
    v.tenant = "acme";
    v.tier = tier;
    v.rate = rate;
    v.score = rate / 10;
    v.syn = {pass, 2, 3, 4};
    v.replies = {5, 6, 7, 8, 9};
    v.spoofed = 11;
    v.rst_sent = 12;
    return v;
}

Snapshot snapshot(std::vector<VmView> vms) {
    Snapshot s;
    s.vms = std::move(vms);
    for (const VmView& v : s.vms) ++s.tiers[static_cast<size_t>(v.tier)];  // as the controller counts
    for (size_t r = 0; r < s.results.size(); ++r) s.results[r] = 100 + r;
    s.maps = {{"sg_auto", 10, 8192}, {"sg_vm_policy", 3, 16384}};
    s.events_received = 42;
    s.sweep_seconds = 0.002;
    s.taken_unix_ms = 1'700'000'000'000;
    return s;
}

Exposition scrape(const MetricsExporter& ex) {
    auto body = test::http_get(ex.port());
    EXPECT_TRUE(body.has_value()) << "scrape of 127.0.0.1:" << ex.port() << " failed";
    return test::parse_exposition(body.value_or(""));
}

std::unique_ptr<MetricsExporter> start(MetricsOptions opts = {}) {
    auto ex = MetricsExporter::start("127.0.0.1:0", std::move(opts));
    EXPECT_TRUE(ex.ok()) << (ex.ok() ? "" : ex.error().message);
    return std::move(ex).value();
}

TEST(MetricsExporter, ServesEveryContractMetric) {
    auto ex = start();
    ASSERT_GT(ex->port(), 0);
    ex->update(snapshot({vm("vm-101", Tier::Throttled, 7.5, 1)}));
    ex->count_ticket("blocked");
    ex->count_ticket("blocked");
    ex->count_ticket("recovered");
    Exposition e = scrape(*ex);

    EXPECT_EQ(e.types["smtpgov_smtp_syn_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="pass",vm="vm-101"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="throttle",vm="vm-101"})"), 2);
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="steer",vm="vm-101"})"), 3);
    EXPECT_EQ(e.at(R"(smtpgov_smtp_syn_total{verdict="block",vm="vm-101"})"), 4);

    EXPECT_EQ(e.types["smtpgov_vm_tier"], "gauge");
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="ok",vm="vm-101"})"), 0);
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="throttled",vm="vm-101"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="steered",vm="vm-101"})"), 0);
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="blocked",vm="vm-101"})"), 0);

    EXPECT_DOUBLE_EQ(e.at(R"(smtpgov_vm_reputation_score{vm="vm-101"})"), 0.75);
    EXPECT_DOUBLE_EQ(e.at(R"(smtpgov_vm_syn_rate{vm="vm-101"})"), 7.5);
    EXPECT_EQ(e.types["smtpgov_remote_replies_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_remote_replies_total{kind="synack",vm="vm-101"})"), 5);
    EXPECT_EQ(e.at(R"(smtpgov_remote_replies_total{kind="5xx",vm="vm-101"})"), 9);
    EXPECT_EQ(e.at(R"(smtpgov_vm_spoofed_total{vm="vm-101"})"), 11);
    EXPECT_EQ(e.at(R"(smtpgov_vm_rst_sent_total{vm="vm-101"})"), 12);

    EXPECT_EQ(e.types["smtpgov_tickets_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_tickets_total{reason="blocked"})"), 2);
    EXPECT_EQ(e.at(R"(smtpgov_tickets_total{reason="recovered"})"), 1);

    EXPECT_EQ(e.types["smtpgov_sweep_duration_seconds"], "histogram");
    EXPECT_EQ(e.at("smtpgov_sweep_duration_seconds_count"), 1);
    EXPECT_DOUBLE_EQ(e.at("smtpgov_sweep_duration_seconds_sum"), 0.002);
    EXPECT_EQ(e.at(R"(smtpgov_sweep_duration_seconds_bucket{le="0.0025"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_sweep_duration_seconds_bucket{le="0.001"})"), 0);

    EXPECT_EQ(e.at(R"(smtpgov_build_info{version=")" SMTPGOV_VERSION R"("})"), 1);

    EXPECT_EQ(e.types["smtpgov_datapath_packets_total"], "counter");
    EXPECT_EQ(e.at(R"(smtpgov_datapath_packets_total{result="non_ip"})"), 100);
    EXPECT_EQ(e.at(R"(smtpgov_datapath_packets_total{result="smtp_syn"})"), 100 + SG_RES_SMTP_SYN);
    EXPECT_EQ(e.at("smtpgov_ringbuf_events_lost_total"), 100 + SG_RES_EVENT_LOST);
    EXPECT_EQ(e.at("smtpgov_ringbuf_events_received_total"), 42);
    EXPECT_EQ(e.at(R"(smtpgov_map_entries{map="sg_auto"})"), 10);
    EXPECT_EQ(e.at(R"(smtpgov_map_capacity{map="sg_auto"})"), 8192);
    EXPECT_EQ(e.at(R"(smtpgov_vms{tier="throttled"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_vms{tier="ok"})"), 0);
    EXPECT_EQ(e.at("smtpgov_vm_series_omitted"), 0);
    EXPECT_DOUBLE_EQ(e.at("smtpgov_last_sweep_timestamp_seconds"), 1'700'000'000);
}

TEST(MetricsExporter, BeforeFirstSweepServesProcessMetricsOnly) {
    auto ex = start();
    Exposition e = scrape(*ex);
    EXPECT_TRUE(e.has(R"(smtpgov_build_info{version=")" SMTPGOV_VERSION R"("})"));
    EXPECT_EQ(e.at("smtpgov_sweep_duration_seconds_count"), 0);
    EXPECT_EQ(e.count("smtpgov_smtp_syn_total"), 0u);
}

TEST(MetricsExporter, RemovedVmsDisappear) {
    auto ex = start();
    ex->update(snapshot({vm("vm-1", Tier::Ok, 1), vm("vm-2", Tier::Ok, 2)}));
    Exposition before = scrape(*ex);
    EXPECT_TRUE(before.has(R"(smtpgov_vm_syn_rate{vm="vm-1"})"));
    EXPECT_TRUE(before.has(R"(smtpgov_vm_syn_rate{vm="vm-2"})"));

    ex->update(snapshot({vm("vm-2", Tier::Ok, 2)}));
    Exposition after = scrape(*ex);
    for (const auto& [key, value] : after.samples)
        EXPECT_EQ(key.find(R"(vm="vm-1")"), std::string::npos) << key;
    EXPECT_TRUE(after.has(R"(smtpgov_vm_syn_rate{vm="vm-2"})"));
    EXPECT_EQ(after.count("smtpgov_vm_tier"), 4u);
}

TEST(MetricsExporter, CapKeepsEscalatedVmsThenBusiest) {
    MetricsOptions opts;
    opts.max_vm_series = 3;
    auto ex = start(opts);
    ex->update(snapshot({vm("quiet", Tier::Ok, 0.1), vm("busy", Tier::Ok, 50), vm("busier", Tier::Ok, 80),
                         vm("blocked-idle", Tier::Blocked, 0), vm("steered", Tier::Steered, 1)}));
    Exposition e = scrape(*ex);
    EXPECT_EQ(e.count("smtpgov_vm_syn_rate"), 3u);
    EXPECT_TRUE(e.has(R"(smtpgov_vm_syn_rate{vm="blocked-idle"})"));
    EXPECT_TRUE(e.has(R"(smtpgov_vm_syn_rate{vm="steered"})"));
    EXPECT_TRUE(e.has(R"(smtpgov_vm_syn_rate{vm="busier"})"));
    EXPECT_FALSE(e.has(R"(smtpgov_vm_syn_rate{vm="busy"})"));
    EXPECT_FALSE(e.has(R"(smtpgov_vm_syn_rate{vm="quiet"})"));
    EXPECT_EQ(e.at("smtpgov_vm_series_omitted"), 2);
    // aggregate tier counts are never capped
    EXPECT_EQ(e.at(R"(smtpgov_vms{tier="ok"})"), 3);
}

TEST(MetricsExporter, OnlyEscalated) {
    MetricsOptions opts;
    opts.only_escalated = true;
    auto ex = start(opts);
    ex->update(snapshot({vm("a", Tier::Ok, 99), vm("b", Tier::Throttled, 1)}));
    Exposition e = scrape(*ex);
    EXPECT_EQ(e.count("smtpgov_vm_reputation_score"), 1u);
    EXPECT_TRUE(e.has(R"(smtpgov_vm_reputation_score{vm="b"})"));
    EXPECT_EQ(e.at("smtpgov_vm_series_omitted"), 1);
}

TEST(MetricsExporter, CountersSurviveExporterRestartWithSameKernelTotals) {
    Snapshot s = snapshot({vm("vm-1", Tier::Ok, 3, 1000)});
    Exposition first;
    {
        auto ex = start();
        ex->update(s);
        first = scrape(*ex);
    }
    auto ex = start();  // the restarted daemon reads the same pinned maps
    ex->update(s);
    Exposition second = scrape(*ex);
    size_t counters = 0;
    for (const auto& [key, value] : first.samples) {
        std::string name = key.substr(0, key.find('{'));
        if (first.types[name] != "counter" || name == "smtpgov_tickets_total" ||
            name == "smtpgov_ringbuf_events_received_total")
            continue;  // process-local counters legitimately restart from 0
        ++counters;
        ASSERT_TRUE(second.has(key)) << key;
        EXPECT_GE(second.at(key), value) << key;
    }
    EXPECT_GT(counters, 10u);
    EXPECT_EQ(second.at(R"(smtpgov_smtp_syn_total{verdict="pass",vm="vm-1"})"), 1000);

    // and a later sweep with higher totals only moves them up
    s.vms[0].syn[SG_VERDICT_PASS] = 1500;
    ex->update(s);
    EXPECT_EQ(scrape(*ex).at(R"(smtpgov_smtp_syn_total{verdict="pass",vm="vm-1"})"), 1500);
}

TEST(MetricsExporter, ObserveSweepAndConcurrentUpdates) {
    auto ex = start();
    ex->observe_sweep(0.3);
    std::thread writer([&] {
        for (int i = 0; i < 200; ++i) ex->update(snapshot({vm("vm-" + std::to_string(i % 7), Tier::Ok, i)}));
    });
    for (int i = 0; i < 20; ++i) EXPECT_GE(scrape(*ex).count("smtpgov_build_info"), 1u);
    writer.join();
    Exposition e = scrape(*ex);
    EXPECT_EQ(e.at("smtpgov_sweep_duration_seconds_count"), 201);
    EXPECT_EQ(e.at(R"(smtpgov_sweep_duration_seconds_bucket{le="0.5"})"), 201);
}

// Steering: the connection table, evictions per VM (only VMs with evictions, most first,
// capped like the per-VM series), the proxy's health and its fail-mode transitions.
TEST(MetricsExporter, ConnectionsAndProxy) {
    MetricsOptions o;
    o.max_vm_series = 2;
    auto ex = start(o);
    Exposition e = scrape(*ex);
    std::vector<VmView> vms{vm("quiet", Tier::Ok, 1), vm("hog", Tier::Ok, 2), vm("mild", Tier::Ok, 3),
                            vm("least", Tier::Ok, 4)};
    vms[1].conn_evicted = 450;
    vms[2].conn_evicted = 3;
    vms[3].conn_evicted = 1;
    Snapshot s = snapshot(vms);
    s.proxies = {{"ipv4", "192.0.2.10:25", true}, {"ipv6", "[2001:db8::10]:25", false}};
    ex->update(s);
    e = scrape(*ex);
    EXPECT_FALSE(e.has("smtpgov_connections_tracked")) << "not known before a whole pass of the table";
    EXPECT_EQ(e.at(R"(smtpgov_connection_evictions_total{vm="hog"})"), 450);
    EXPECT_EQ(e.at(R"(smtpgov_connection_evictions_total{vm="mild"})"), 3);
    EXPECT_EQ(e.count("smtpgov_connection_evictions_total"), 2u) << "capped at max_vm_series, quiet has none";
    EXPECT_EQ(e.types.at("smtpgov_connection_evictions_total"), "counter");
    EXPECT_EQ(e.at(R"(smtpgov_proxy_up{family="ipv4"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_proxy_up{family="ipv6"})"), 0);
    s.conns = {1200, 30, 5, 1};
    ex->update(s);
    ex->count_proxy_transition("block");
    ex->count_proxy_transition("block");
    ex->count_proxy_transition("steer");
    e = scrape(*ex);
    EXPECT_EQ(e.at("smtpgov_connections_tracked"), 1200);
    EXPECT_EQ(e.at("smtpgov_connections_steered"), 30);
    EXPECT_EQ(e.types.at("smtpgov_connections_tracked"), "gauge");
    EXPECT_EQ(e.at(R"(smtpgov_proxy_fail_mode_transitions_total{to="block"})"), 2);
    EXPECT_EQ(e.at(R"(smtpgov_proxy_fail_mode_transitions_total{to="steer"})"), 1);
}

TEST(MetricsExporter, BindFailureIsAnError) {
    auto first = start();
    auto second = MetricsExporter::start("127.0.0.1:" + std::to_string(first->port()));
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("metrics listen 127.0.0.1:"), std::string::npos);
}

// ---- hostile local clients on the metrics port (issue 10, items 5 and 8) ----

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One process here holds the server's connections and, in a child, a thousand clients.
void want_fds(rlim_t n) {
    rlimit rl{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= n) return;
    rl.rlim_cur = std::min(n, rl.rlim_max);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
    ASSERT_GE(rl.rlim_cur, n) << "RLIMIT_NOFILE hard limit too low for this test";
}

int tcp_connect(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// A forked child (async-signal-safe calls only) that becomes uid/gid 65534 when we are
// root, opens n TCP connections to port and keeps them: a third send nothing, a third a
// partial request head, a third binary garbage. Writes one byte to ready_fd once all are
// open; runs until killed.
pid_t hold_idle_connections(int port, int n, int ready_fd) {
    pid_t pid = ::fork();
    if (pid != 0) return pid;
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(10);
    static const char partial[] = "GET /metr";
    static const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\x00\xff";
    for (int i = 0; i < n; ++i) {
        int fd = tcp_connect(port);
        if (fd < 0) ::_exit(11);
        if (i % 3 == 1) [[maybe_unused]] auto w = ::send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL);
        if (i % 3 == 2) [[maybe_unused]] auto w = ::send(fd, garbage, sizeof garbage - 1, MSG_NOSIGNAL);
    }
    char one = 1;
    [[maybe_unused]] auto w = ::write(ready_fd, &one, 1);
    for (;;) ::pause();
}

// Background clients for as long as the object lives: one trickling a request head a
// byte at a time, one sending 100 MB without a line end, one POSTing a 100 MB body.
// Each reconnects when the server drops it.
class HostileClients {
public:
    explicit HostileClients(int port) {
        threads_.emplace_back([this, port] { trickle(port); });
        threads_.emplace_back([this, port] { flood(port, ""); });
        threads_.emplace_back(
            [this, port] { flood(port, "POST /metrics HTTP/1.1\r\nContent-Length: 104857600\r\n\r\n"); });
    }
    ~HostileClients() {
        stop_ = true;
        for (auto& t : threads_) t.join();
    }
    std::atomic<uint64_t> flooded{0}, trickled{0};

private:
    void trickle(int port) {
        const std::string head = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        while (!stop_) {
            int fd = tcp_connect(port);
            if (fd < 0) continue;
            bool ok = ::send(fd, head.data(), head.size(), MSG_NOSIGNAL) > 0;
            while (ok && !stop_) {
                ok = ::send(fd, "a", 1, MSG_NOSIGNAL) == 1;
                ++trickled;
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            ::close(fd);
        }
    }
    void flood(int port, const std::string& head) {
        const std::string chunk(1 << 20, 'A');
        while (!stop_ && flooded < (400u << 20)) {
            int fd = tcp_connect(port);
            if (fd < 0) continue;
            timeval tv{0, 200'000};
            ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            bool ok = head.empty() || ::send(fd, head.data(), head.size(), MSG_NOSIGNAL) > 0;
            for (int mb = 0; ok && !stop_ && mb < 100; ++mb) {
                ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
                ok = n > 0 || (n < 0 && errno == EAGAIN);
                if (n > 0) flooded += uint64_t(n);
            }
            ::close(fd);
        }
    }
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};

// Every scrape must be answered (http_get gives up after 5 s of silence, half of
// Prometheus's default scrape_timeout); the slowest is printed, not compared.
TEST(MetricsExporterRobustness, EveryScrapeIsAnsweredDespiteIdleSlowGarbageAndHugeClients) {
    want_fds(4096);
    auto ex = start();
    ex->update(snapshot({vm("vm-1", Tier::Blocked, 5)}));
    const int port = ex->port();

    int ready[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    HostileClients hostile(port);
    pid_t holder = hold_idle_connections(port, 1000, ready[1]);
    ASSERT_GT(holder, 0);
    ::close(ready[1]);

    // while the thousand connections are being opened
    double worst = 0;
    int scrapes = 0;
    pollfd p{ready[0], POLLIN, 0};
    for (auto t0 = Clock::now(); ::poll(&p, 1, 0) == 0 && seconds_since(t0) < 60;) {
        auto s0 = Clock::now();
        auto body = test::http_get(port);
        worst = std::max(worst, seconds_since(s0));
        ASSERT_TRUE(body.has_value()) << "scrape failed while connections were being opened";
        ++scrapes;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the child did not open its 1,000 connections";
    ::close(ready[0]);
    // and with all of them open (the server keeps the newest; the rest it closed)
    for (int i = 0; i < 10; ++i) {
        auto s0 = Clock::now();
        auto body = test::http_get(port);
        worst = std::max(worst, seconds_since(s0));
        ASSERT_TRUE(body.has_value());
        EXPECT_EQ(test::parse_exposition(*body).at(R"(smtpgov_vm_tier{tier="blocked",vm="vm-1"})"), 1);
        ++scrapes;
    }
    // long enough for the slow and huge clients to be timed out and to come back
    std::this_thread::sleep_for(std::chrono::milliseconds(5500));
    for (int i = 0; i < 5; ++i) {
        auto s0 = Clock::now();
        ASSERT_TRUE(test::http_get(port).has_value());
        worst = std::max(worst, seconds_since(s0));
    }
    ::kill(holder, SIGKILL);
    int st = 0;
    ::waitpid(holder, &st, 0);
    EXPECT_GT(hostile.trickled.load(), 100u);
    EXPECT_GT(hostile.flooded.load(), 8u << 20) << "the 100 MB clients did not get to send";
    std::cout << "[ info ] " << scrapes + 5 << " scrapes, slowest " << worst << " s; 100 MB clients sent "
              << (hostile.flooded.load() >> 20) << " MiB\n";
}

TEST(MetricsExporterRobustness, NoStateChangeViaHttp) {
    auto ex = start();
    ex->update(snapshot({vm("vm-1", Tier::Throttled, 7.5, 1)}));
    ex->count_ticket("blocked");
    const int port = ex->port();
    auto before = test::http_get(port);
    ASSERT_TRUE(before.has_value());

    const std::string json_body = R"({"cmd":"vm.set_tier","id":"vm-1","tier":"ok","vms":[]})";
    auto req = [&](const std::string& method, const std::string& path) {
        return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
               "Content-Length: " + std::to_string(json_body.size()) + "\r\n\r\n" + json_body;
    };
    for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PURGE"}) {
        auto r = test::http_raw(port, req(method, "/metrics"));
        EXPECT_EQ(r.status, 405) << method << " /metrics";
        EXPECT_NE(r.head.find("Allow: GET, HEAD"), std::string::npos) << r.head;
        EXPECT_EQ(r.body.find("smtpgov_"), std::string::npos) << method << " got metrics";
    }
    for (const char* path : {"/", "/metrics/", "/metrics/reset", "/-/reload", "/-/quit", "/api/v1/admin",
                             "/policy", "/vm/vm-1", "/../metrics", "/metrics%00"}) {
        for (const char* method : {"GET", "POST", "PUT", "DELETE"}) {
            auto r = test::http_raw(port, req(method, path));
            EXPECT_EQ(r.status, 404) << method << " " << path;
            EXPECT_EQ(r.body.find("smtpgov_"), std::string::npos) << method << " " << path;
        }
    }
    for (const char* bad : {"\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics HTTP/1.1 x\r\n\r\n",
                            " /metrics HTTP/1.1\r\n\r\n"})
        EXPECT_EQ(test::http_raw(port, bad).status, 400) << bad;
    EXPECT_EQ(test::http_raw(port, "GET /metrics HTTP/1.1\r\n" + std::string(20000, 'x') + "\r\n\r\n").status, 431);
    auto head = test::http_raw(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(head.status, 200);
    EXPECT_TRUE(head.body.empty());
    auto query = test::http_raw(port, "GET /metrics?reset=1&tier=ok HTTP/1.0\r\n\r\n");
    EXPECT_EQ(query.status, 200);

    auto after = test::http_get(port);
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(*after, *before) << "a request changed what /metrics reports";
    EXPECT_EQ(query.body, *before);
    Exposition e = test::parse_exposition(*after);
    EXPECT_EQ(e.at(R"(smtpgov_vm_tier{tier="throttled",vm="vm-1"})"), 1);
    EXPECT_EQ(e.at(R"(smtpgov_tickets_total{reason="blocked"})"), 1);
    // and a real change is still seen: the body is not stale
    ex->count_ticket("blocked");
    EXPECT_EQ(scrape(*ex).at(R"(smtpgov_tickets_total{reason="blocked"})"), 2);
}

TEST(MetricsHttpServer, TimesOutSilentClientsAndBoundsConnections) {
    metrics::HttpServerOptions o;
    o.listen = "127.0.0.1:0";
    o.request_timeout_ms = 300;
    o.max_connections = 8;
    std::atomic<int> renders{0};
    auto server = metrics::HttpServer::start(o, [&] {
        ++renders;
        return std::make_shared<const std::string>("x 1\n");
    });
    ASSERT_TRUE(server.ok()) << server.error().message;
    const int port = (*server)->port();
    // a silent client is closed once request_timeout_ms passed
    int silent = tcp_connect(port);
    ASSERT_GE(silent, 0);
    auto t0 = Clock::now();
    char b;
    EXPECT_EQ(::recv(silent, &b, 1, 0), 0);
    EXPECT_GT(seconds_since(t0), 0.25);
    EXPECT_LT(seconds_since(t0), 30.0) << "closed by something other than request_timeout_ms";
    ::close(silent);
    // past max_connections the oldest is closed, and a request still gets through
    std::vector<int> idle;
    for (int i = 0; i < 20; ++i) idle.push_back(tcp_connect(port));
    EXPECT_EQ(test::http_raw(port, "GET /metrics HTTP/1.1\r\n\r\n").body, "x 1\n");
    EXPECT_EQ(::recv(idle.front(), &b, 1, MSG_DONTWAIT), 0) << "the oldest idle connection was kept";
    for (int fd : idle) ::close(fd);
    EXPECT_EQ(renders.load(), 1);
    // a listen address that is not HOST:PORT
    o.listen = "localhost";
    EXPECT_FALSE(metrics::HttpServer::start(o, [] { return nullptr; }).ok());
    o.listen = "[::1]:0";
    auto v6 = metrics::HttpServer::start(o, [] { return std::make_shared<const std::string>(""); });
    if (v6.ok()) {
        EXPECT_GT((*v6)->port(), 0);
    }  // hosts without IPv6 loopback cannot bind it
}

TEST(SelectVmSeries, OrderAndCap) {
    std::vector<VmView> vms{vm("a", Tier::Ok, 5), vm("b", Tier::Blocked, 1), vm("c", Tier::Ok, 9)};
    auto all = metrics::select_vm_series(vms, {});
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0]->id, "b");
    EXPECT_EQ(all[1]->id, "c");
    EXPECT_EQ(all[2]->id, "a");
    EXPECT_EQ(metrics::select_vm_series(vms, {1, false}).front()->id, "b");
    EXPECT_TRUE(metrics::select_vm_series({}, {2, false}).empty());
}

}  // namespace
}  // namespace smtpgov
