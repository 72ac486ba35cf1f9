#include <gtest/gtest.h>

#include "core/json_strict.h"
#include "core/policy.h"

namespace smtpgov {
namespace {

TEST(JsonStrict, ParsesWhatJsonParses) {
    auto j = parse_json_strict(R"({"a": [1, {"b": 2}], "c": {"d": [[3], {}]}})");
    ASSERT_TRUE(j) << j.error().message;
    EXPECT_EQ((*j)["c"]["d"][0][0], 3);
}

TEST(JsonStrict, DuplicateKeysAreNamedWithTheirPath) {
    auto top = parse_json_strict(R"({"vms": [{"id": "a"}], "vms": []})");
    ASSERT_FALSE(top);
    EXPECT_EQ(top.error().message, "duplicate key \"vms\" at /");
    auto deep = parse_json_strict(R"({"vms": [{"id": "a"}, {"id": "b", "rate": 1, "rate": 2}]})");
    ASSERT_FALSE(deep);
    EXPECT_EQ(deep.error().message, "duplicate key \"rate\" at /vms/1");
    auto nested = parse_json_strict(R"({"x": [[1, 2], [{"k": 1}, {"a/b": {"k": 1, "k": 2}}]]})");
    ASSERT_FALSE(nested);
    EXPECT_EQ(nested.error().message, "duplicate key \"k\" at /x/1/1/a~1b");
}

TEST(JsonStrict, SameKeyInSiblingObjectsIsFine) {
    EXPECT_TRUE(parse_json_strict(R"([{"id": 1}, {"id": 2}, {"id": {"id": 3}}])"));
}

TEST(JsonStrict, BadJsonSaysWhere) {
    auto j = parse_json_strict(R"({"a": tru})");
    ASSERT_FALSE(j);
    EXPECT_NE(j.error().message.find("invalid JSON at byte"), std::string::npos);
}

TEST(JsonStrict, NumbersOutOfRangeAreAnErrorNotAnException) {
    auto j = parse_json_strict(R"({"rate": 1e400})");
    ASSERT_FALSE(j);
    EXPECT_NE(j.error().message.find("invalid JSON"), std::string::npos) << j.error().message;
    ParseOutcome po = parse_policy_text(R"({"vms": [], "defaults": {"rate": 1e400}})");
    EXPECT_FALSE(po.policy);
    EXPECT_EQ(po.problems.size(), 1u);
}

TEST(JsonStrict, APolicyWithADuplicateKeyIsRefusedWhole) {
    ParseOutcome po = parse_policy_text(R"({"vms": [{"id": "a", "interface": "vnet1"}], "vms": []})");
    EXPECT_FALSE(po.policy);
    ASSERT_EQ(po.problems.size(), 1u);
    EXPECT_EQ(po.problems[0].reason, "duplicate key \"vms\" at /");
}

}  // namespace
}  // namespace smtpgov
