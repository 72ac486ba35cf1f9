// Event log: JSON lines on disk, the in-memory tail, filters and followers.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "svc/control_client.h"
#include "svc/event_log.h"

using nlohmann::json;
using namespace smtpgov;
using namespace smtpgov::svc;

namespace {

class EventLogTest : public ::testing::Test {
protected:
    std::string dir;
    void SetUp() override {
        char tmpl[] = "/tmp/sg-events-test.XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }

    std::unique_ptr<EventLog> open(size_t tail = 1000) {
        auto log = EventLog::open(dir, tail);
        EXPECT_TRUE(log.ok()) << (log.ok() ? "" : log.error().message);
        return log.ok() ? std::move(*log) : nullptr;
    }
    static Event ev(const std::string& vm, int64_t ts, Tier to = Tier::Throttled) {
        Event e;
        e.ts_ms = ts;
        e.vm = vm;
        e.tenant = "acme";
        e.to = to;
        e.score = 51.5;
        e.reason = "score";
        e.evidence = {{"rate", 12.5}, {"samples", {"550 5.7.1 listed at zen.spamhaus.org"}}};
        return e;
    }
    std::vector<std::string> file_lines() {
        std::ifstream in(dir + "/events.jsonl");
        std::vector<std::string> lines;
        for (std::string l; std::getline(in, l);) lines.push_back(l);
        return lines;
    }
};

}  // namespace

TEST(EventFormat, Rfc3339Utc) {
    EXPECT_EQ(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(rfc3339_ms(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
    EXPECT_EQ(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST_F(EventLogTest, AppendWritesOneJsonLinePerEvent) {
    auto log = open();
    ASSERT_TRUE(log->append(ev("vm-1", 1'700'000'000'123)).ok());
    Event ticket = ev("vm-2", 1'700'000'000'200, Tier::Blocked);
    ticket.type = "ticket";
    ASSERT_TRUE(log->append(ticket).ok());
    auto lines = file_lines();
    ASSERT_EQ(lines.size(), 2u);
    json first = json::parse(lines[0]);
    EXPECT_EQ(first, json::parse(R"({"ts_ms":1700000000123,"time":"2023-11-14T22:13:20.123Z","type":"tier_change",
        "vm":"vm-1","tenant":"acme","from":"ok","to":"throttled","score":51.5,"reason":"score",
        "evidence":{"rate":12.5,"samples":["550 5.7.1 listed at zen.spamhaus.org"]}})"));
    EXPECT_EQ(json::parse(lines[1])["type"], "ticket");
    EXPECT_EQ(json::parse(lines[1])["to"], "blocked");
}

TEST_F(EventLogTest, StampsEventsWithoutTime) {
    auto log = open();
    ASSERT_TRUE(log->append(ev("vm-1", 0)).ok());
    EXPECT_GT(log->recent(1)[0]["ts_ms"].get<int64_t>(), 1'600'000'000'000);
}

TEST_F(EventLogTest, ReloadKeepsTheTail) {
    {
        auto log = open();
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->append(ev("vm-" + std::to_string(i), 1000 + i)).ok());
    }
    auto log = open();
    auto r = log->recent(10);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(r[0]["vm"], "vm-0");
    EXPECT_EQ(r[2]["vm"], "vm-2");
    ASSERT_TRUE(log->append(ev("vm-3", 2000)).ok());
    EXPECT_EQ(file_lines().size(), 4u);
}

TEST_F(EventLogTest, TailIsBoundedInMemoryAndOnReload) {
    {
        auto log = open(1000);
        // ~250 bytes per line: 3000 lines are far more than one 64 KiB read-back chunk
        for (int i = 0; i < 3000; ++i) ASSERT_TRUE(log->append(ev("vm-" + std::to_string(i), i + 1)).ok());
        auto r = log->recent(5000);
        ASSERT_EQ(r.size(), 1000u);
        EXPECT_EQ(r.front()["vm"], "vm-2000");
    }
    auto log = open(1000);
    auto r = log->recent(5000);
    ASSERT_EQ(r.size(), 1000u);
    EXPECT_EQ(r.front()["vm"], "vm-2000");
    EXPECT_EQ(r.back()["vm"], "vm-2999");
    EXPECT_EQ(log->recent(2).front()["vm"], "vm-2998");
}

TEST_F(EventLogTest, FiltersByVm) {
    auto log = open();
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(log->append(ev(i % 3 == 0 ? "a" : "b", i + 1)).ok());
    auto a = log->recent(4, "a");
    ASSERT_EQ(a.size(), 4u);
    for (const auto& e : a) EXPECT_EQ(e["vm"], "a");
    EXPECT_EQ(a.back()["ts_ms"], 28);
    EXPECT_EQ(a.front()["ts_ms"], 19);
    EXPECT_EQ(log->recent(100, "a").size(), 10u);
    EXPECT_TRUE(log->recent(100, "nobody").empty());
}

TEST_F(EventLogTest, TornLastLineIsSkippedAndEnded) {
    {
        auto log = open();
        ASSERT_TRUE(log->append(ev("vm-1", 1)).ok());
    }
    {
        std::ofstream out(dir + "/events.jsonl", std::ios::app);
        out << R"({"ts_ms":2,"vm":"to)";  // killed mid-write
    }
    auto log = open();
    ASSERT_EQ(log->recent(10).size(), 1u);
    ASSERT_TRUE(log->append(ev("vm-3", 3)).ok());
    auto reopened = open();
    auto r = reopened->recent(10);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[1]["vm"], "vm-3");
}

TEST_F(EventLogTest, FollowerSeesNewEventsOnly) {
    auto log = open();
    ASSERT_TRUE(log->append(ev("old", 1)).ok());
    auto f = log->follow();
    EXPECT_FALSE(f.next(50));  // nothing new: times out
    std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->append(ev("new-" + std::to_string(i), 10 + i)).ok());
    });
    for (int i = 0; i < 3; ++i) {
        auto e = f.next(5000);
        ASSERT_TRUE(e) << i;
        EXPECT_EQ((*e)["vm"], "new-" + std::to_string(i));
    }
    writer.join();
    EXPECT_EQ(f.lost(), 0u);
}

TEST_F(EventLogTest, SlowFollowerCountsLostEvents) {
    auto log = open(2);
    auto f = log->follow();
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(log->append(ev("vm-" + std::to_string(i), i + 1)).ok());
    auto e = f.next(0);
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["vm"], "vm-3");
    EXPECT_EQ(f.lost(), 3u);
}

TEST_F(EventLogTest, ClosingWakesFollowers) {
    auto log = open();
    auto f = log->follow();
    std::thread closer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        log.reset();
    });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(f.next(60'000));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30)) << "woken by its 60 s timeout, not by the close";
    closer.join();
    EXPECT_TRUE(f.closed());
}

TEST_F(EventLogTest, OpenFailsOnMissingDirectory) {
    auto log = EventLog::open(dir + "/does/not/exist");
    ASSERT_FALSE(log.ok());
    EXPECT_EQ(log.error().errnum, ENOENT);
}

TEST_F(EventLogTest, FollowOverTheControlSocket) {
    auto log = open();
    ASSERT_TRUE(log->append(ev("before", 1)).ok());
    ControlServerOptions o;
    o.path = dir + "/ctl.sock";
    auto server = ControlServer::start(o, [&](const json&) { return follow_events_reply(*log); });
    ASSERT_TRUE(server.ok()) << server.error().message;
    std::vector<std::string> seen;
    std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(log->append(ev("vm-" + std::to_string(i), 10 + i)).ok());
    });
    auto head = request_stream(o.path, {{"cmd", "events"}, {"follow", true}}, 2000, [&](const json& e) {
        seen.push_back(e["vm"]);
        return seen.size() < 3;
    });
    writer.join();
    ASSERT_TRUE(head.ok()) << head.error().message;
    EXPECT_EQ(seen, (std::vector<std::string>{"vm-0", "vm-1", "vm-2"}));
}

TEST_F(EventLogTest, RotatesAtMaxBytesKeepingOneGeneration) {
    auto log = EventLog::open(dir, 1000, 4096);
    ASSERT_TRUE(log.ok()) << log.error().message;
    for (int i = 0; i < 60; ++i) ASSERT_TRUE((*log)->append(ev("vm-" + std::to_string(i), 1000 + i)).ok());
    namespace fs = std::filesystem;
    ASSERT_TRUE(fs::exists(dir + "/events.jsonl.1"));
    EXPECT_LE(fs::file_size(dir + "/events.jsonl"), 4096u);
    EXPECT_LE(fs::file_size(dir + "/events.jsonl.1"), 4096u);
    // the newest event is the last line of the live file; the tail still has all of them
    auto lines = file_lines();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(json::parse(lines.back())["vm"], "vm-59");
    EXPECT_EQ((*log)->recent(1000).size(), 60u);
    // no event is lost or duplicated across the two generations that fit
    std::ifstream old(dir + "/events.jsonl.1");
    size_t n_old = 0;
    for (std::string l; std::getline(old, l);) ++n_old;
    std::string first_live = json::parse(lines.front())["vm"];
    EXPECT_EQ(first_live, "vm-" + std::to_string(60 - lines.size()));
    EXPECT_GT(n_old, 0u);
}
