// Reputation and tiers on a ManualClock: decay, escalation, hysteresis, dwell, pins.
#include <gtest/gtest.h>

#include <cmath>

#include "core/reputation.h"

using namespace smtpgov;

namespace {

// Thresholds 50/400/2000, half-life 600 s, hysteresis 0.5, dwell 30 s, weight 1 per over-limit SYN.
class ReputationTest : public ::testing::Test {
protected:
    ManualClock clock;
    ReputationConfig cfg;
    Reputation rep{clock, cfg};

    void add(const std::string& vm, double n) { rep.observe(vm, Signal::OverLimit, n); }
    // Sets the VM's score to exactly `target` at the current time (it must only grow).
    void raise_to(const std::string& vm, double target) { add(vm, target - rep.score(vm)); }
    // Another writer's state of a VM, written now: score 0, ok, with `pin`.
    Reputation::Shared shared(std::optional<Pin> pin) const {
        return Reputation::Shared{0, clock.wall_ms(), Tier::Ok, clock.wall_ms(), pin};
    }
};

}  // namespace

TEST_F(ReputationTest, SignalsAddTheirWeight) {
    rep.observe("a", Signal::OverLimit, 3);
    rep.observe("a", Signal::Spoofed, 2);
    rep.observe("a", Signal::RemoteReject);
    rep.observe("a", Signal::SpamReport);
    rep.observe("a", Signal::Complaint);
    const auto& w = cfg.weights;
    EXPECT_DOUBLE_EQ(rep.score("a"),
                     3 * w.over_limit + 2 * w.spoofed + w.remote_reject + w.spam_report + w.complaint);
    EXPECT_EQ(rep.score("unknown"), 0);
    EXPECT_EQ(parse_signal(to_string(Signal::SpamReport)), Signal::SpamReport);
}

TEST_F(ReputationTest, DecayHalvesEachHalfLife) {
    add("a", 1000);
    clock.advance_s(600);
    EXPECT_DOUBLE_EQ(rep.score("a"), 500);
    clock.advance_s(1200);
    EXPECT_DOUBLE_EQ(rep.score("a"), 125);
    clock.advance_s(300);
    EXPECT_NEAR(rep.score("a"), 125 / std::sqrt(2.0), 1e-9);
    add("b", 10);
    clock.advance_ms(-10'000);  // a clock stepping back must not grow the score
    EXPECT_DOUBLE_EQ(rep.score("b"), 10);
}

TEST_F(ReputationTest, EscalatesAtThreshold) {
    add("a", 49);
    EXPECT_TRUE(rep.evaluate().empty());
    add("a", 1);
    auto t = rep.evaluate();
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0], (Transition{"a", Tier::Ok, Tier::Throttled, 50, "score"}));
    EXPECT_EQ(rep.tier("a"), Tier::Throttled);
}

TEST_F(ReputationTest, JumpsSeveralTiersAtOnce) {
    add("a", 5000);
    auto t = rep.evaluate();
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].from, Tier::Ok);
    EXPECT_EQ(t[0].to, Tier::Blocked);
    EXPECT_EQ(rep.tier("a"), Tier::Blocked);
}

TEST_F(ReputationTest, HysteresisPreventsFlapping) {
    add("a", 60);
    ASSERT_EQ(rep.evaluate().size(), 1u);  // -> throttled
    // Hover around the threshold of 50 for a long time: dips to ~40 never drop the tier
    // (it would take < 25), and climbing back over 50 is no new transition.
    for (int i = 0; i < 50; ++i) {
        clock.advance_s(200);  // 60 -> ~47.6
        EXPECT_TRUE(rep.evaluate().empty()) << i;
        raise_to("a", 60);
        EXPECT_TRUE(rep.evaluate().empty()) << i;
        EXPECT_EQ(rep.tier("a"), Tier::Throttled);
    }
}

TEST_F(ReputationTest, MinDwellDelaysRecovery) {
    add("a", 50);
    rep.evaluate();
    // Half-life 1 s would make the score collapse; only the dwell keeps the tier.
    ReputationConfig fast = cfg;
    fast.half_life_s = 1;
    rep.set_config(fast);
    clock.advance_s(29);
    EXPECT_LT(rep.score("a"), 1e-6);
    EXPECT_TRUE(rep.evaluate().empty());
    clock.advance_s(1);
    auto t = rep.evaluate();
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].to, Tier::Ok);
    EXPECT_EQ(t[0].reason, "recovered");
}

TEST_F(ReputationTest, RecoversOneTierAtATime) {
    add("a", 3000);
    rep.evaluate();
    ASSERT_EQ(rep.tier("a"), Tier::Blocked);
    // Blocked leaves below 1000: 3000 -> 1000 takes log2(3) half-lives (~951 s).
    std::vector<Tier> path;
    for (int i = 0; i < 500 && rep.tier("a") != Tier::Ok; ++i) {
        clock.advance_s(60);
        for (const auto& t : rep.evaluate()) {
            EXPECT_EQ(static_cast<int>(t.to), static_cast<int>(t.from) - 1) << "one step at a time";
            EXPECT_EQ(t.reason, "recovered");
            EXPECT_LT(t.score, cfg.thresholds.of(t.from) * (1 - cfg.hysteresis));
            path.push_back(t.to);
        }
    }
    EXPECT_EQ(path, (std::vector<Tier>{Tier::Steered, Tier::Throttled, Tier::Ok}));
}

TEST_F(ReputationTest, EveryRecoveryStepWaitsForDwell) {
    ReputationConfig c = cfg;
    c.hysteresis = 0;
    c.min_dwell_s = 100;
    rep.set_config(c);
    add("a", 2000);
    rep.evaluate();
    clock.advance_s(100);
    ReputationConfig drop = c;
    drop.half_life_s = 0.001;  // the score is gone at once; dwell alone paces recovery
    rep.set_config(drop);
    clock.advance_ms(1);
    ASSERT_EQ(rep.evaluate().size(), 1u);  // blocked -> steered
    clock.advance_s(99);
    EXPECT_TRUE(rep.evaluate().empty());
    clock.advance_s(1);
    ASSERT_EQ(rep.evaluate().size(), 1u);  // steered -> throttled
    EXPECT_EQ(rep.tier("a"), Tier::Throttled);
}

TEST_F(ReputationTest, PinOverridesAndClears) {
    auto t = rep.set_pin("a", Tier::Blocked);
    EXPECT_EQ(t, (Transition{"a", Tier::Ok, Tier::Blocked, 0, "pin"}));
    EXPECT_EQ(rep.tier("a"), Tier::Blocked);
    add("a", 500);  // earns steered underneath the pin, silently
    EXPECT_TRUE(rep.evaluate().empty());
    EXPECT_EQ(rep.earned_tier("a"), Tier::Steered);
    ASSERT_TRUE(rep.pin("a"));
    EXPECT_FALSE(rep.pin("a")->until_unix_ms);
    auto c = rep.clear_pin("a");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->reason, "pin_cleared");
    EXPECT_EQ(c->from, Tier::Blocked);
    EXPECT_EQ(c->to, Tier::Steered);
    EXPECT_EQ(rep.tier("a"), Tier::Steered);
    EXPECT_FALSE(rep.clear_pin("a"));  // nothing to clear
}

TEST_F(ReputationTest, PinExpiresBackToEarnedTier) {
    add("a", 60);
    rep.evaluate();
    rep.set_pin("a", Tier::Ok, clock.now_ms() + 3'600'000);
    EXPECT_EQ(rep.tier("a"), Tier::Ok);
    clock.advance_s(3599);
    EXPECT_TRUE(rep.evaluate().empty());
    clock.advance_s(1);
    auto t = rep.evaluate();
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].reason, "pin_expired");
    EXPECT_EQ(t[0].from, Tier::Ok);
    EXPECT_EQ(t[0].to, Tier::Ok);  // the hour of decay earned it recovery
    EXPECT_FALSE(rep.pin("a"));
}

TEST_F(ReputationTest, PinExpiryToAHigherEarnedTier) {
    rep.set_pin("a", Tier::Ok, clock.now_ms() + 1000);
    add("a", 2500);
    EXPECT_TRUE(rep.evaluate().empty());
    clock.advance_s(1);
    auto t = rep.evaluate();
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0], (Transition{"a", Tier::Ok, Tier::Blocked, rep.score("a"), "pin_expired"}));
}

TEST_F(ReputationTest, ForgetsQuietVmsAndOnRequest) {
    add("quiet", 1);
    add("loud", 1e6);
    rep.evaluate();
    clock.advance_s(600 * 20);  // 1 -> 1e-6
    rep.evaluate();
    EXPECT_EQ(rep.vms(), std::vector<std::string>{"loud"});
    rep.forget("loud");
    EXPECT_EQ(rep.size(), 0u);
    EXPECT_EQ(rep.tier("loud"), Tier::Ok);
}

TEST_F(ReputationTest, SaveLoadRoundTrip) {
    add("a", 500);
    add("b", 60);
    rep.evaluate();
    rep.set_pin("c", Tier::Blocked, clock.now_ms() + 15'000);
    rep.set_pin("b", Tier::Steered);
    clock.advance_s(10);
    auto saved = rep.save();
    auto loaded = Reputation::load(nlohmann::json::parse(saved.dump()), clock, cfg);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    for (const char* vm : {"a", "b", "c"}) {
        EXPECT_DOUBLE_EQ(loaded->score(vm), rep.score(vm)) << vm;
        EXPECT_EQ(loaded->tier(vm), rep.tier(vm)) << vm;
        EXPECT_EQ(loaded->earned_tier(vm), rep.earned_tier(vm)) << vm;
    }
    EXPECT_EQ(loaded->pin("c")->until_unix_ms, rep.pin("c")->until_unix_ms);
    EXPECT_EQ(loaded->save(), saved);
    // the pin's expiry survives the restart
    EXPECT_TRUE(loaded->evaluate().empty());
    clock.advance_s(5);
    auto t = loaded->evaluate();
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].reason, "pin_expired");
}

TEST_F(ReputationTest, LoadRejectsBadState) {
    EXPECT_FALSE(Reputation::load(nlohmann::json::object(), clock, cfg).ok());
    EXPECT_FALSE(Reputation::load({{"version", 2}, {"vms", nlohmann::json::object()}}, clock, cfg).ok());
    auto bad_tier = nlohmann::json::parse(
        R"({"version":1,"vms":{"a":{"score":1,"updated_ms":0,"tier":"jail","since_ms":0}}})");
    EXPECT_FALSE(Reputation::load(bad_tier, clock, cfg).ok());
}

TEST_F(ReputationTest, ConfigChangeKeepsScoresAndTiers) {
    add("a", 100);
    rep.evaluate();
    clock.advance_s(600);  // 100 -> 50 under the old half-life
    ReputationConfig c = cfg;
    c.half_life_s = 60;
    c.thresholds = {10, 40, 80};
    rep.set_config(c);
    EXPECT_DOUBLE_EQ(rep.score("a"), 50);
    EXPECT_EQ(rep.tier("a"), Tier::Throttled);
    auto t = rep.evaluate();  // 50 reaches the new steered threshold
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].to, Tier::Steered);
    clock.advance_s(60);
    EXPECT_DOUBLE_EQ(rep.score("a"), 25);  // the new half-life applies from the change on
}

// A pin set elsewhere in the fleet comes with its end in Unix ms; the host keeps it on
// its boot clock and writes it back. Converted there and back on the real clocks, it must
// be the same millisecond every time, or the host's record never matches the pin written
// (and `fleet vm set-tier --wait` never sees it confirmed). Each conversion reads both
// clocks, cut to whole ms: one in some 10^4 calls straddles a millisecond.
TEST(SystemClockTest, UnixTimesComeBackUnchanged) {
    SystemClock clock;
    const int64_t until = clock.wall_ms() + 600'000;
    int off = 0;
    for (int i = 0; i < 1'000'000; ++i) off += clock.to_wall(clock.from_wall(until + i)) != until + i;
    EXPECT_EQ(off, 0);
    ReputationConfig cfg;
    Reputation rep{clock, cfg};
    for (int i = 0; i < 10'000; ++i) {
        Reputation::Shared in{0, clock.wall_ms(), Tier::Ok, clock.wall_ms(), Pin{Tier::Blocked, until + i}};
        rep.import("a", in, clock.now_ms());
        ASSERT_EQ(rep.shared("a")->pin, in.pin) << "after " << i << " imports";
    }
}

// A pin set or cleared here and a shared state written elsewhere: the later word wins
// (a record another writer wrote before the operator acted here does not undo it).
TEST_F(ReputationTest, ALocalPinOutlivesAnOlderSharedStateButNotANewerOne) {
    clock.advance_s(10);
    const int64_t before_pin = clock.wall_ms() - 1;
    rep.set_pin("a", Tier::Blocked);
    EXPECT_FALSE(rep.import("a", shared(std::nullopt), clock.now_ms(), before_pin));
    EXPECT_EQ(rep.tier("a"), Tier::Blocked);
    clock.advance_s(1);
    auto t = rep.import("a", shared(std::nullopt), clock.now_ms(), clock.wall_ms());  // written since
    ASSERT_TRUE(t);
    EXPECT_EQ(t->to, Tier::Ok);
    // a clear here, then a record written before it that still carries a pin
    rep.set_pin("b", Tier::Steered);
    clock.advance_s(1);
    const int64_t before_clear = clock.wall_ms() - 1;
    ASSERT_TRUE(rep.clear_pin("b"));
    EXPECT_FALSE(rep.import("b", shared(Pin{Tier::Blocked, std::nullopt}), clock.now_ms(), before_clear));
    EXPECT_EQ(rep.tier("b"), Tier::Ok);
    // no time given (a VM new to this host): the shared pin
    rep.set_pin("c", Tier::Throttled);
    rep.import("c", shared(Pin{Tier::Blocked, std::nullopt}), clock.now_ms());
    EXPECT_EQ(rep.tier("c"), Tier::Blocked);
}

// The daemon restarts between the local pin (or clear) and the arrival of an older
// record from another writer: the saved state still knows when the pin was set here.
TEST_F(ReputationTest, ALocalPinsTimeSurvivesARestart) {
    clock.advance_s(10);
    const int64_t before = clock.wall_ms() - 1;
    rep.set_pin("a", Tier::Blocked);
    rep.set_pin("b", Tier::Steered);
    ASSERT_TRUE(rep.clear_pin("b"));
    clock.advance_s(5);
    auto loaded = Reputation::load(nlohmann::json::parse(rep.save().dump()), clock, cfg);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    EXPECT_FALSE(loaded->import("a", shared(std::nullopt), clock.now_ms(), before));
    EXPECT_EQ(loaded->tier("a"), Tier::Blocked);
    EXPECT_FALSE(loaded->import("b", shared(Pin{Tier::Blocked, std::nullopt}), clock.now_ms(), before));
    EXPECT_EQ(loaded->tier("b"), Tier::Ok);
    // a record written after the pin still wins
    ASSERT_TRUE(loaded->import("a", shared(std::nullopt), clock.now_ms(), clock.wall_ms()));
    EXPECT_EQ(loaded->tier("a"), Tier::Ok);
    // state saved before this field existed loads, with no local time to weigh
    auto old = rep.save();
    for (auto& [id, v] : old["vms"].items()) v.erase("pin_set_ms");
    auto legacy = Reputation::load(old, clock, cfg);
    ASSERT_TRUE(legacy.ok());
    ASSERT_TRUE(legacy->import("a", shared(std::nullopt), clock.now_ms(), before));
}
