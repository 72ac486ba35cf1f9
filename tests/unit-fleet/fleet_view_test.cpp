// smtpgovctl fleet: where etcd is, the apply's transactions, host outcomes and the views.
#include "fleet_view.h"

#include <gtest/gtest.h>

#include "args.h"
#include "spec.h"

using nlohmann::json;
using namespace smtpgov;
using namespace smtpgov::ctl;
using namespace smtpgov::ctl::fleetv;

namespace {

TEST(FleetTarget, OptionsWinOverTheConfig) {
    json cfg{{"etcd", {"http://10.0.0.5:2379"}}, {"prefix", "/cfg/"}, {"cacert", "/ca.pem"}};
    auto t = target(std::nullopt, std::nullopt, cfg);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->etcd.endpoints, (std::vector<std::string>{"http://10.0.0.5:2379"}));
    EXPECT_EQ(t->prefix, "/cfg");  // no trailing '/'
    EXPECT_EQ(t->etcd.cacert, "/ca.pem");
    t = target(std::string("http://a:1,https://b:2"), std::string("/p"), cfg);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->etcd.endpoints, (std::vector<std::string>{"http://a:1", "https://b:2"}));
    EXPECT_EQ(t->prefix, "/p");
    t = target(std::string("http://a:1"), std::nullopt, json());
    ASSERT_TRUE(t);
    EXPECT_EQ(t->prefix, "/smtpgov");
}

TEST(FleetTarget, RefusesWhatCannotWork) {
    EXPECT_FALSE(target(std::nullopt, std::nullopt, json()));                        // nowhere
    EXPECT_FALSE(target(std::string("a:1"), std::nullopt, json()));                  // no scheme
    EXPECT_FALSE(target(std::string("http://a:1,"), std::nullopt, json()));          // an empty one
    EXPECT_FALSE(target(std::string("http://a:1"), std::string("smtpgov"), json()));  // relative
    EXPECT_FALSE(target(std::string("http://a:1"), std::string("/"), json()));
    EXPECT_FALSE(target(std::nullopt, std::nullopt, json{{"etcd", {1}}}));
    EXPECT_FALSE(target(std::nullopt, std::nullopt, json{{"etcd", {"http://a:1"}}, {"user", "u"}}));
    auto t = target(std::nullopt, std::nullopt, json{{"etcd", {"http://a:1"}}, {"user", "u"}, {"password_file", "/pw"}});
    ASSERT_TRUE(t);
    EXPECT_EQ(t->etcd.user, "u");
    EXPECT_EQ(t->password_file, "/pw");
}

TEST(FleetApply, HostBatchesHoldAtMost64OpsPutsBeforeDeletes) {
    fleet::Split s;
    for (int i = 0; i < 100; ++i) s.hosts["hv-" + std::to_string(1000 + i)] = {{"serial", 3}, {"vms", json::array()}};
    for (int i = 0; i < 30; ++i) s.dropped.insert("old-" + std::to_string(i));
    fleet::Keys k{"/sg"};
    auto b = host_batches(s, k);
    ASSERT_EQ(b.size(), 3u);
    EXPECT_EQ(b[0].size(), 64u);
    EXPECT_EQ(b[1].size(), 64u);
    EXPECT_EQ(b[2].size(), 2u);
    size_t puts = 0, dels = 0;
    bool delete_seen = false;
    for (auto& ops : b)
        for (auto& op : ops) {
            if (op.kind == etcd::Op::Kind::Put) {
                EXPECT_FALSE(delete_seen);
                ++puts;
                EXPECT_EQ(op.key.rfind("/sg/policy/hosts/hv-", 0), 0u);
                EXPECT_EQ(json::parse(op.value)["serial"], 3);
                EXPECT_EQ(op.lease, 0);
            } else {
                delete_seen = true;
                ++dels;
                EXPECT_EQ(op.kind, etcd::Op::Kind::Delete);
                EXPECT_EQ(op.key.rfind("/sg/policy/hosts/old-", 0), 0u);
            }
        }
    EXPECT_EQ(puts, 100u);
    EXPECT_EQ(dels, 30u);
    EXPECT_TRUE(host_batches(fleet::Split{}, k).empty());
}

TEST(FleetApply, OutcomeOfAHostStatus) {
    fleet::HostStatus st;
    st.host = "hv-a";
    st.policy_serial = 7;
    EXPECT_EQ(outcome_for(fleet::to_json(st), 7).outcome, Outcome::Applied);
    EXPECT_EQ(outcome_for(fleet::to_json(st), 8).outcome, Outcome::NoAnswer);
    st.refused_serial = 8;
    st.refused_reason = "/vms/0/rate: must be at most 1000000";
    auto o = outcome_for(fleet::to_json(st), 8);
    EXPECT_EQ(o.outcome, Outcome::Refused);
    EXPECT_EQ(o.reason, st.refused_reason);
    st.refused_serial = 0;
    st.policy_serial = 9;  // a later apply replaced serial 8 before this host answered it
    o = outcome_for(fleet::to_json(st), 8);
    EXPECT_EQ(o.outcome, Outcome::Superseded);
    EXPECT_EQ(o.reason, "serial 9");
    EXPECT_EQ(outcome_for(json(), 7).outcome, Outcome::NoAnswer);
    EXPECT_EQ(outcome_for(json{{"garbage", true}}, 7).outcome, Outcome::NoAnswer);

    json r = apply_json(8, 120, {{"hv-a", {Outcome::Applied, ""}, true},
                                 {"hv-b", {Outcome::Refused, "bad"}, true},
                                 {"hv-c", {}, false}});
    EXPECT_EQ(r["serial"], 8);
    EXPECT_EQ(r["revision"], 120);
    EXPECT_EQ(r["hosts"][0], (json{{"host", "hv-a"}, {"result", "applied"}, {"reason", nullptr}, {"live", true}}));
    EXPECT_EQ(r["hosts"][1]["reason"], "bad");
    EXPECT_EQ(r["hosts"][2]["result"], "no_answer");
    std::string text = render_apply(r, 2, 1);
    EXPECT_NE(text.find("refused: bad"), std::string::npos) << text;
    EXPECT_NE(text.find("no answer (lost)"), std::string::npos) << text;
    EXPECT_NE(text.find("serial 8"), std::string::npos) << text;
}

etcd::Kv kv(std::string k, std::string v, int64_t mod = 5) { return {std::move(k), std::move(v), mod, mod, 1, 0}; }

TEST(FleetState, PolicyKeysOfOneRange) {
    fleet::Keys k{"/sg"};
    auto p = policy_state({kv("/sg/policy/global", R"({"fleet":{"serial":3,"hosts":{"hv/1":3}}})", 42),
                           kv("/sg/policy/hosts/hv%2F1", R"({"serial":3,"vms":[]})"),
                           kv("/sg/policy/lock", R"({"by":"x"})")},
                          k);
    EXPECT_EQ(p.global_revision, 42);
    EXPECT_EQ(fleet::serial_of(p.global), 3);
    ASSERT_TRUE(p.hosts.count("hv/1"));
    EXPECT_TRUE(p.lock);
    EXPECT_EQ(policy_state({}, k).global_revision, 0);
}

TEST(FleetStatus, EveryHostLiveOrLostAndThePolicyHostsThatNeverReported) {
    fleet::Keys k{"/sg"};
    auto p = policy_state({kv("/sg/policy/global", R"({"fleet":{"serial":4,"hosts":{"hv-a":4,"hv-b":3,"hv-c":4}}})", 50)}, k);
    fleet::HostStatus a;
    a.host = "hv-a";
    a.policy_serial = 4;
    a.policy_revision = 50;
    a.vms = 3;
    a.tiers = {1, 1, 0, 1};
    a.last_seen_ms = 1'700'000'000'500;
    a.version = "0.9";
    fleet::HostStatus b = a;
    b.host = "hv-b";
    b.policy_serial = 3;
    b.refused_serial = 4;
    b.refused_reason = "/vms/0/rate: bad";
    json st = status_json(p,
                          {kv("/sg/hosts/hv-a/live", "{}"), kv("/sg/hosts/hv-a/status", fleet::to_json(a).dump()),
                           kv("/sg/hosts/hv-b/status", fleet::to_json(b).dump()),
                           kv("/sg/hosts/hv-old/live", "{}")},
                          k);
    EXPECT_EQ(st["serial"], 4);
    EXPECT_EQ(st["revision"], 50);
    ASSERT_EQ(st["hosts"].size(), 4u);
    const json& ha = st["hosts"][0];
    EXPECT_EQ(ha["host"], "hv-a");
    EXPECT_EQ(ha["live"], true);
    EXPECT_EQ(ha["last_seen_unix"], 1'700'000'000);
    EXPECT_EQ(ha["policy_serial"], 4);
    EXPECT_EQ(ha["policy_revision"], 50);
    EXPECT_EQ(ha["vms"], 3);
    EXPECT_EQ(ha["tiers"]["blocked"], 1);
    EXPECT_EQ(ha["version"], "0.9");
    EXPECT_TRUE(ha["refused"].is_null());
    const json& hb = st["hosts"][1];
    EXPECT_EQ(hb["live"], false);
    EXPECT_EQ(hb["refused"]["serial"], 4);
    EXPECT_EQ(st["hosts"][2]["host"], "hv-c");  // in the policy, never seen
    EXPECT_TRUE(st["hosts"][2]["last_seen_unix"].is_null());
    EXPECT_EQ(st["hosts"][3]["host"], "hv-old");
    EXPECT_EQ(st["hosts"][3]["in_policy"], false);
    std::string text = render_status(st, 1'700'000'010);
    EXPECT_NE(text.find("fleet policy serial 4"), std::string::npos) << text;
    EXPECT_NE(text.find("10s ago"), std::string::npos) << text;
    EXPECT_NE(text.find("LOST"), std::string::npos) << text;
    EXPECT_NE(text.find("refused serial 4: /vms/0/rate: bad"), std::string::npos) << text;
    EXPECT_NE(text.find("1/1/0/1"), std::string::npos) << text;
}

TEST(FleetVmList, MergesRecordsFiltersAndSortsByScore) {
    fleet::Keys k{"/sg"};
    json policy{{"reputation", {{"half_life_s", 100}}},
                {"vms",
                 {{{"id", "vm-1"}, {"tenant", "acme"}, {"host", "hv-a"}},
                  {{"id", "vm-2"}, {"tenant", "acme"}, {"host", "hv-b"}, {"tier", "steered"}},
                  {{"id", "vm-3"}, {"host", "hv-b"}}}}};
    const int64_t now = 1'700'000'100'000;
    fleet::Record r;
    r.vm = "vm-1";
    r.tenant = "acme";
    r.state.score = 800;
    r.state.score_unix_ms = now - 100'000;  // one half-life ago
    r.state.earned = Tier::Steered;
    r.tier = Tier::Blocked;
    r.state.pin = Pin{Tier::Blocked, std::nullopt};
    r.updated_by = "hv-a";
    r.updated_at_ms = now - 100'000;
    std::vector<etcd::Kv> recs{kv(k.vm("acme", "vm-1"), fleet::to_json(r).dump(), 77),
                               kv(k.vm("", "vm-3"), "not json")};
    json vms = vm_list_json(policy, recs, k, now, std::nullopt, std::nullopt);
    ASSERT_EQ(vms.size(), 3u);
    EXPECT_EQ(vms[0]["id"], "vm-1");
    EXPECT_EQ(vms[0]["host"], "hv-a");
    EXPECT_EQ(vms[0]["tier"], "blocked");
    EXPECT_NEAR(vms[0]["score"].get<double>(), 400, 1e-6);
    EXPECT_EQ(vms[0]["pin"]["tier"], "blocked");
    EXPECT_EQ(vms[0]["updated_by"], "hv-a");
    EXPECT_EQ(vms[0]["updated_at_unix"], (now - 100'000) / 1000);
    EXPECT_EQ(vms[1]["id"], "vm-2");  // no record: the policy's pin, score 0
    EXPECT_EQ(vms[1]["tier"], "steered");
    EXPECT_DOUBLE_EQ(vms[1]["score"].get<double>(), 0);
    EXPECT_TRUE(vms[1]["updated_by"].is_null());
    EXPECT_EQ(vms[2]["tier"], "ok");
    EXPECT_TRUE(vms[2].contains("record_error"));

    EXPECT_EQ(vm_list_json(policy, recs, k, now, std::string("blocked"), std::nullopt).size(), 1u);
    EXPECT_EQ(vm_list_json(policy, recs, k, now, std::nullopt, std::string("acme")).size(), 2u);
    EXPECT_EQ(vm_list_json(policy, recs, k, now, std::string("ok"), std::string("acme")).size(), 0u);
    std::string text = render_vm_list(vms);
    EXPECT_NE(text.find("HOST"), std::string::npos);
    EXPECT_NE(text.find("blocked until cleared"), std::string::npos) << text;
}

TEST(FleetPin, WritesThePinIntoTheRecordTheHostWillReadBack) {
    fleet::Keys k{"/sg"};
    json policy{{"vms", {{{"id", "vm-1"}, {"tenant", "acme"}, {"host", "hv-a"}}, {{"id", "vm-3"}, {"host", "hv-b"}}}}};
    const int64_t now = 1'700'000'100'000;
    const Pin blocked{Tier::Blocked, now + 3'600'000};
    // no record yet: created clean with the pin, the key must not exist
    auto w = pin_write(policy, nullptr, k, "vm-3", blocked, now, "smtpgovctl:root@ops");
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_EQ(w->key, k.vm("", "vm-3"));
    EXPECT_EQ(w->host, "hv-b");
    EXPECT_EQ(w->expect_mod_revision, 0);
    EXPECT_EQ(w->rec.state.pin, blocked);
    EXPECT_EQ(w->rec.tier, Tier::Blocked);
    EXPECT_EQ(w->rec.state.score, 0);
    EXPECT_EQ(w->rec.updated_by, "smtpgovctl:root@ops");
    // a record: its score and earned tier kept, the pin replaced, CAS on its revision
    fleet::Record r;
    r.vm = "vm-1";
    r.tenant = "acme";
    r.state.score = 700;
    r.state.score_unix_ms = now - 5'000;
    r.state.earned = Tier::Throttled;
    r.state.pin = Pin{Tier::Steered, std::nullopt};
    r.tier = Tier::Steered;
    r.updated_by = "hv-a";
    const etcd::Kv rec = kv(k.vm("acme", "vm-1"), fleet::to_json(r).dump(), 41);
    w = pin_write(policy, &rec, k, "vm-1", std::nullopt, now, "smtpgovctl:root@ops");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->expect_mod_revision, 41);
    EXPECT_FALSE(w->rec.state.pin);
    EXPECT_EQ(w->rec.tier, Tier::Throttled);  // cleared: what its score earned, until its host writes
    EXPECT_EQ(w->rec.state.score, 700);
    EXPECT_EQ(w->rec.state.earned, Tier::Throttled);
    // what the host reads back is what was written
    auto back = fleet::record_from_json(fleet::to_json(w->rec), "acme", "vm-1");
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, w->rec);
    // refused: a VM the fleet policy does not have; a record it cannot read is not replaced
    auto none = pin_write(policy, nullptr, k, "vm-9", blocked, now, "x");
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().message, "no VM vm-9 in the fleet policy");
    const etcd::Kv bad = kv(k.vm("acme", "vm-1"), "{\"score\": \"high\"}", 42);
    auto refused = pin_write(policy, &bad, k, "vm-1", blocked, now, "x");
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("not replaced"), std::string::npos) << refused.error().message;
}

TEST(FleetCli, CommandsParseWithTheirOptions) {
    Invocation inv = parse_args({"fleet", "policy", "apply", "f.json", "--etcd", "http://a:1", "--wait", "3", "--json"});
    EXPECT_EQ(inv.command->name(), "fleet policy apply");
    EXPECT_EQ(inv.arg("FILE"), "f.json");
    EXPECT_EQ(*inv.opt("etcd"), "http://a:1");
    EXPECT_EQ(*inv.seconds_opt("wait"), 3);
    EXPECT_TRUE(inv.json);
    inv = parse_args({"fleet", "policy", "apply", "f.json"});
    EXPECT_EQ(*inv.seconds_opt("wait"), 10);
    inv = parse_args({"fleet", "vm", "list", "--tier", "blocked", "--tenant", "acme", "--prefix", "/x"});
    EXPECT_EQ(*inv.opt("tier"), "blocked");
    EXPECT_FALSE(inv.command->needs_daemon);
    EXPECT_THROW(parse_args({"fleet", "vm", "list", "--tier", "purple"}), UsageError);
    EXPECT_THROW(parse_args({"fleet", "policy", "apply"}), UsageError);
    EXPECT_THROW(parse_args({"fleet", "status", "--wait", "3"}), UsageError);
    EXPECT_NO_THROW(parse_args({"fleet", "status", "--config", "/etc/x.json"}));
    inv = parse_args({"fleet", "vm", "set-tier", "vm-1", "blocked", "--for", "60", "--wait", "0"});
    EXPECT_EQ(inv.arg("TIER"), "blocked");
    EXPECT_EQ(*inv.seconds_opt("for"), 60);
    EXPECT_EQ(*inv.seconds_opt("wait"), 0);
    EXPECT_EQ(*parse_args({"fleet", "vm", "clear", "vm-1"}).seconds_opt("wait"), 10);
    EXPECT_THROW(parse_args({"fleet", "vm", "set-tier", "vm-1", "purple"}), UsageError);
    EXPECT_THROW(parse_args({"fleet", "vm", "clear"}), UsageError);
}

}  // namespace
