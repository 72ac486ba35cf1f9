#include <gtest/gtest.h>

#include "core/hypervisor.h"

using namespace smtpgov::hv;
using nlohmann::json;

namespace {

const Domain kWeb{"web-01", "6695eb01-f6a4-8304-79aa-97f2502e193f", {{"vnet3", "52:54:00:aa:00:01"}, {"vnet4", ""}}};
const Domain kMail{"mail-02", "a0b1c2d3-0000-4000-8000-000000000002", {{"vnet9", ""}}};

}  // namespace

TEST(HypervisorMap, FullUpdateReplacesPartialUpdatesMerge) {
    HypervisorMap m;
    auto t = m.apply(update_request({kWeb, kMail}, {}, true));
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_EQ(*t, (std::set<std::string>{"vnet3", "vnet4", "vnet9"}));
    EXPECT_EQ(m.owner_of("vnet4")->name, "web-01");
    EXPECT_EQ(m.find("mail-02")->uuid, kMail.uuid);
    EXPECT_EQ(m.find("6695EB01-F6A4-8304-79AA-97F2502E193F")->name, "web-01");  // UUIDs in any case

    // web-01 restarted: libvirt gave it new taps; the old ones are touched (they lost their owner)
    Domain restarted = kWeb;
    restarted.nics = {{"vnet11", ""}};
    t = m.apply(update_request({restarted}, {}, false));
    ASSERT_TRUE(t);
    EXPECT_EQ(*t, (std::set<std::string>{"vnet3", "vnet4", "vnet9", "vnet11"}));
    EXPECT_EQ(m.owner_of("vnet3"), nullptr);
    EXPECT_EQ(m.owner_of("vnet11")->name, "web-01");
    EXPECT_EQ(m.owner_of("vnet9")->name, "mail-02");  // a partial update keeps the others

    ASSERT_TRUE(m.apply(update_request({}, {kMail.uuid}, false)));
    EXPECT_EQ(m.find("mail-02"), nullptr);
    ASSERT_TRUE(m.apply(update_request({kMail}, {}, true)));  // a full update: web-01 is gone
    EXPECT_EQ(m.find("web-01"), nullptr);
    EXPECT_EQ(m.size(), 1u);
}

TEST(HypervisorMap, RefusesABadUpdateWholeAndKeepsTheMap) {
    HypervisorMap m;
    ASSERT_TRUE(m.apply(update_request({kWeb}, {}, true)));
    struct Row { json req; const char* error; };
    auto base = update_request({kMail}, {}, true);
    std::vector<Row> rows;
    auto with = [&](const char* ptr, json v) { json r = base; r[json::json_pointer(ptr)] = v; return r; };
    rows.push_back({with("/source", "xen"), "source"});
    rows.push_back({with("/domains", json::object()), "domains"});
    rows.push_back({with("/domains/0/uuid", "42"), "domains/0/uuid"});
    rows.push_back({with("/domains/0/name", ""), "domains/0/name"});
    rows.push_back({with("/domains/0/interfaces/0/dev", "a/b"), "domains/0/interfaces/0/dev"});
    rows.push_back({with("/domains/0/interfaces/0/dev", "much-too-long-name"), "domains/0/interfaces/0/dev"});
    rows.push_back({with("/gone", json::array({"x"})), "gone"});
    for (const Row& r : rows) {
        auto t = m.apply(r.req);
        ASSERT_FALSE(t) << r.req.dump();
        EXPECT_EQ(t.error().message.rfind(r.error, 0), 0u) << t.error().message;
        EXPECT_EQ(m.owner_of("vnet3")->name, "web-01") << "a refused update changed the map";
        EXPECT_EQ(m.size(), 1u);
    }
}

TEST(HypervisorMap, PersistsAsAFullUpdate) {
    HypervisorMap m;
    ASSERT_TRUE(m.apply(update_request({kWeb, kMail}, {}, true)));
    auto back = HypervisorMap::from_json(json::parse(m.to_json().dump()));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back->find("web-01"), kWeb);
    EXPECT_EQ(back->owner_of("vnet9")->name, "mail-02");
}

TEST(InterfaceRules, FirstMatchWinsWithCaptures) {
    auto rules = parse_interface_rules(json::parse(R"([
        {"match": "^tap(\\d+)i\\d+$", "id": "pve-$1", "tenant": "pve"},
        {"match": "^tap([0-9a-f]{8})-[0-9a-f]{2}$", "id": "os-$1"},
        {"match": "^tap", "id": "any-tap"}])"));
    ASSERT_TRUE(rules) << rules.error().message;
    EXPECT_EQ(rule_vm(*rules, "tap101i0"), (RuleVm{"pve-101", "pve"}));
    EXPECT_EQ(rule_vm(*rules, "tap101i1"), (RuleVm{"pve-101", "pve"}));  // two taps, one VM
    EXPECT_EQ(rule_vm(*rules, "tap3f2a9c1e-7b"), (RuleVm{"os-3f2a9c1e", ""}));
    EXPECT_EQ(rule_vm(*rules, "tapx"), (RuleVm{"any-tap", ""}));
    EXPECT_EQ(rule_vm(*rules, "vnet3"), std::nullopt);
}

TEST(InterfaceRules, AnIdThatIsNoVmIdNamesNothing) {
    auto rules = parse_interface_rules(json::parse(R"([{"match": "^(.*)$", "id": "if:$1"},
                                                       {"match": ".", "id": "fallback"}])"));
    ASSERT_TRUE(rules);
    // auto-entry prefixes are not VM ids; first match wins, so the second rule is not tried
    EXPECT_EQ(rule_vm(*rules, "vnet3"), std::nullopt);
}

TEST(InterfaceRules, RefusedWithTheirPath) {
    struct Row { const char* json; const char* error; };
    const Row rows[] = {
        {R"({"match": "x"})", "interface_rules: must be an array"},
        {R"([{"match": "(", "id": "a"}])", "interface_rules/0/match: not a regular expression"},
        {R"([{"match": "x", "id": "a"}, {"id": "b"}])", "interface_rules/1/match: must be a string"},
        {R"([{"match": "x", "id": ""}])", "interface_rules/0/id: must not be empty"},
        {R"([{"match": "x", "id": "a", "owner": "b"}])", "interface_rules/0/owner: unknown key"},
    };
    for (const Row& r : rows) {
        auto p = parse_interface_rules(json::parse(r.json));
        ASSERT_FALSE(p) << r.json;
        EXPECT_EQ(p.error().message.rfind(r.error, 0), 0u) << p.error().message;
    }
}
