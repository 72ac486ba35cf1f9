// svc::FleetAgent against a real etcd (Debian's, one member on 127.0.0.1 in the test's
// own network namespace: tests/in-netns.sh): a pin written from another machine must
// never be overwritten by what the host offers before its controller has taken the pin
// in, however the host's writer and watcher interleave with it.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "svc/fleet_agent.h"

using namespace smtpgov;
using nlohmann::json;

namespace {

constexpr const char* kEtcd = "http://127.0.0.1:23790";

int64_t wall_ms() { return SystemClock{}.wall_ms(); }

// One etcd member in a temporary data dir, killed and removed with the fixture.
class Etcd {
public:
    Etcd() {
        char tmpl[] = "/tmp/sg-fleet-agent.XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        pid_ = ::fork();
        if (pid_ == 0) {
            const std::string data = dir_ + "/data", log = dir_ + "/etcd.log";
            FILE* f = std::freopen(log.c_str(), "w", stderr);
            (void)f;
            ::execl("/usr/bin/etcd", "etcd", "--data-dir", data.c_str(), "--listen-client-urls", kEtcd,
                    "--advertise-client-urls", kEtcd, "--listen-peer-urls", "http://127.0.0.1:23800",
                    "--initial-advertise-peer-urls", "http://127.0.0.1:23800", "--initial-cluster",
                    "default=http://127.0.0.1:23800", "--log-level", "warn", "--logger", "zap", nullptr);
            ::_exit(127);
        }
    }
    ~Etcd() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        std::filesystem::remove_all(dir_);
    }
    std::string dir() const { return dir_; }

private:
    std::string dir_;
    pid_t pid_ = -1;
};

class FleetAgentTest : public ::testing::Test {
protected:
    void SetUp() override {
        etcd::Options o;
        o.endpoints = {kEtcd};
        client = std::make_unique<etcd::Client>(o);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!client->put("/ready", "1")) {
            ASSERT_LT(std::chrono::steady_clock::now(), until) << "etcd did not answer; see " << server.dir();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        keys.prefix = "/t";
        fleet::Options fo;
        fo.etcd = {kEtcd};
        fo.host = "hv-01";
        fo.prefix = keys.prefix;
        svc::FleetCallbacks cb;
        cb.on_records = [this](std::vector<fleet::Record> recs) {
            std::lock_guard l(mu);
            for (auto& r : recs) delivered.push_back(std::move(r));
        };
        agent = svc::FleetAgent::start(fo, "", "test", cb);
        agent->set_tenants({"acme"});
    }
    void TearDown() override { agent.reset(); }

    fleet::Record ours(double score, std::optional<Pin> pin = std::nullopt) const {
        fleet::Record r;
        r.vm = "b";
        r.tenant = "acme";
        r.state = {score, wall_ms(), Tier::Ok, wall_ms() - 60'000, pin};
        r.tier = pin ? pin->tier : Tier::Ok;
        r.updated_by = "hv-01";
        r.updated_at_ms = wall_ms();
        return r;
    }
    std::optional<std::pair<fleet::Record, int64_t>> stored() {
        auto r = client->get(keys.vm("acme", "b"));
        if (!r || r->kvs.empty()) return std::nullopt;
        auto rec = fleet::record_from_json(json::parse(r->kvs[0].value), "acme", "b");
        if (!rec) return std::nullopt;
        return std::make_pair(*rec, r->kvs[0].mod_revision);
    }
    // The daemon's loop: hands the records delivered back as taken in, the ones this host
    // wrote (echoes) at once, another writer's only when `foreign` (the controller took
    // them in). Returns another writer's records seen.
    std::vector<fleet::Record> pump(bool foreign) {
        std::vector<fleet::Record> seen, keep;
        std::vector<std::string> ids;
        std::lock_guard l(mu);
        for (auto& r : delivered) {
            if (r.updated_by != "hv-01") seen.push_back(r);
            if (r.updated_by == "hv-01" || foreign) ids.push_back(r.vm);
            else keep.push_back(std::move(r));
        }
        delivered.swap(keep);
        agent->taken_in(ids);
        return seen;
    }
    // Offers `make()` every 50 ms (the daemon's sweep) until done(stored record) or 10 s.
    template <class Make, class Done>
    bool offer_until(Make make, Done done, bool foreign) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < until) {
            pump(foreign);
            agent->offer({make()}, 3600);
            if (auto s = stored(); s && done(s->first)) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }

    Etcd server;
    std::unique_ptr<etcd::Client> client;
    fleet::Keys keys;
    std::unique_ptr<svc::FleetAgent> agent;
    std::mutex mu;
    std::vector<fleet::Record> delivered;  // what the "daemon" was handed, not taken in yet
};

}  // namespace

TEST_F(FleetAgentTest, APinWrittenElsewhereIsNotOverwrittenByOffersMadeBeforeTheControllerKnewIt) {
    double score = 100;
    ASSERT_TRUE(offer_until([&] { return ours(score); }, [](const fleet::Record& r) { return r.updated_by == "hv-01"; },
                            true));

    // An operator pins b from another machine (smtpgovctl fleet vm set-tier does this).
    auto [before, mod] = *stored();
    fleet::Record pinned = before;
    const Pin pin{Tier::Blocked, wall_ms() + 600'000};
    pinned.state.pin = pin;
    pinned.tier = Tier::Blocked;
    pinned.updated_by = "smtpgovctl:op";
    auto t = client->txn({{keys.vm("acme", "b"), etcd::Compare::Target::Mod, mod}},
                         {{etcd::Op::Kind::Put, keys.vm("acme", "b"), fleet::to_json(pinned).dump(), 0}});
    ASSERT_TRUE(t && t->succeeded);

    // The host's controller is slow to take the pin in: for 3 s it goes on offering b
    // unpinned, with a score that moves enough to be written each second.
    std::vector<fleet::Record> handed;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < until) {
        for (auto& r : pump(false)) handed.push_back(std::move(r));
        score += 20;
        agent->offer({ours(score)}, 3600);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto now = stored();
    ASSERT_TRUE(now);
    EXPECT_EQ(now->first.state.pin, pin) << "the pin was overwritten by an offer made before it was known";
    EXPECT_EQ(now->first.tier, Tier::Blocked);
    // It was handed over (by the watcher, and by the writer if it resolved first).
    ASSERT_FALSE(handed.empty());
    for (const auto& r : handed) EXPECT_EQ(r.state.pin, pin);

    // Taken in: the controller's offers carry the pin now, and the host's own record
    // confirms it exactly (what `fleet vm set-tier --wait` waits for).
    EXPECT_TRUE(offer_until([&] { return ours(score, pin); },
                            [&](const fleet::Record& r) { return r.updated_by == "hv-01" && r.state.pin == pin; }, true));
    // and an unpinned offer after that is the controller's own change: the pin goes
    EXPECT_TRUE(offer_until([&] { return ours(score); }, [&](const fleet::Record& r) { return !r.state.pin; }, true));
}
