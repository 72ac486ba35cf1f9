// smtpgov::arf::parse over the corpus in tests/data/arf (expected.tsv says what each
// report must give), plus properties the corpus alone does not pin down.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/arf.h"

using namespace smtpgov;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in) << path;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, '\t')) out.push_back(f);
    return out;
}

struct Case {
    std::vector<std::string> f;
};

std::vector<Case> corpus() {
    std::ifstream in(std::string(SG_ARF_DIR) + "/expected.tsv");
    std::vector<Case> out;
    std::string line;
    while (std::getline(in, line))
        if (!line.empty() && line[0] != '#') out.push_back({split_tabs(line)});
    return out;
}

}  // namespace

TEST(Arf, CorpusEachParsedOrRefusedAsExpected) {
    auto cases = corpus();
    ASSERT_GE(cases.size(), 18u);
    size_t ok = 0, refused = 0;
    for (const Case& c : cases) {
        SCOPED_TRACE(c.f[0]);
        auto out = arf::parse(slurp(std::string(SG_ARF_DIR) + "/" + c.f[0]));
        if (c.f[1] == "ok") {
            ASSERT_EQ(c.f.size(), 8u);
            auto* r = std::get_if<arf::Report>(&out);
            ASSERT_TRUE(r) << "refused: " << std::get<arf::Refused>(out).message;
            EXPECT_EQ(r->source_ip, c.f[2]);
            EXPECT_EQ(r->arrival_unix, std::stoll(c.f[3]));
            EXPECT_EQ(r->feedback_type, c.f[4]);
            EXPECT_EQ(r->source_from, c.f[5]);
            EXPECT_EQ(r->arrival_from, c.f[6]);
            EXPECT_EQ(r->reporting_mta, c.f[7] == "-" ? "" : c.f[7]);
            ++ok;
        } else {
            auto* r = std::get_if<arf::Refused>(&out);
            ASSERT_TRUE(r) << "parsed, expected refusal " << c.f[1];
            EXPECT_EQ(arf::to_string(r->why), c.f[1]) << r->message;
            EXPECT_FALSE(r->message.empty());
            ++refused;
        }
    }
    EXPECT_GE(ok, 9u);
    EXPECT_GE(refused, 9u);
}

TEST(Arf, OriginalMessageIdIsKept) {
    auto out = arf::parse(slurp(std::string(SG_ARF_DIR) + "/casing.eml"));
    ASSERT_TRUE(std::holds_alternative<arf::Report>(out));
    EXPECT_EQ(std::get<arf::Report>(out).original_message_id, "<c1@vm7.hoster.example>");
}

// A report cut anywhere is refused or parsed, never a crash (the fuzz target goes further).
TEST(Arf, TruncatedReportsNeverCrash) {
    const std::string full = slurp(std::string(SG_ARF_DIR) + "/rfc5965_example.eml");
    for (size_t n = 0; n < full.size(); n += 7) {
        auto out = arf::parse(std::string_view(full).substr(0, n));
        if (auto* r = std::get_if<arf::Report>(&out)) {
            EXPECT_EQ(r->source_ip, "192.0.2.1");
        }
    }
}

TEST(Arf, SourceIpMustBeAnAddressNotAPrefix) {
    std::string m = slurp(std::string(SG_ARF_DIR) + "/casing.eml");
    m.replace(m.find("203.0.113.7\n"), 11, "203.0.113.0/24");
    auto out = arf::parse(m);
    ASSERT_TRUE(std::holds_alternative<arf::Refused>(out));
    EXPECT_EQ(std::get<arf::Refused>(out).why, arf::Refusal::BadSourceIp);
}
