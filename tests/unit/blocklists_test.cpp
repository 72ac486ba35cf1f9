// Blocklist recognition against the rejection corpus, as the kernel samples it:
// "554 " + the reply with the VM's address, cut at SG_REPLY_TEXT_MAX bytes.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "core/blocklists.h"
#include "smtpgov/abi.h"

using namespace smtpgov;

namespace {

struct Row {
    std::string text, expected;  // expected "" when the corpus names no list or reason
};

std::vector<Row> corpus() {
    std::ifstream in(SG_REJECTIONS_TSV);
    std::vector<Row> rows;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream f(line);
        std::string share, text, list;
        std::getline(f, share, '\t');
        std::getline(f, text, '\t');
        std::getline(f, list, '\t');
        // "Yahoo BL21 (Spamhaus PBL)": the list in parentheses is the one that fired
        std::smatch m;
        if (std::regex_search(list, m, std::regex(R"(\(([^)]*)\))"))) list = m[1];
        rows.push_back({text, list == "-" ? "" : list});
    }
    return rows;
}

std::string sampled(std::string text, const std::string& addr) {
    for (size_t at = 0; (at = text.find("1.2.3.4", at)) != std::string::npos; at += addr.size())
        text.replace(at, 7, addr);
    return ("554 " + text).substr(0, SG_REPLY_TEXT_MAX);
}

}  // namespace

TEST(Blocklists, EveryCorpusLineAsSampledByTheKernel) {
    auto rows = corpus();
    ASSERT_GE(rows.size(), 19u) << "corpus not found at " SG_REJECTIONS_TSV;
    for (const std::string addr : {"1.2.3.4", "198.18.100.200", "2001:db8:ffff:ffff::1234"}) {
        for (const Row& r : rows) {
            std::string line = sampled(r.text, addr);
            auto got = recognise_refusal(line);
            if (r.expected.empty())
                EXPECT_FALSE(got) << line << " -> " << (got ? got->name : "");
            else
                EXPECT_TRUE(got && got->name == r.expected) << line << " -> " << (got ? got->name : "none")
                                                            << ", want " << r.expected;
        }
    }
}

TEST(Blocklists, KindsSeparateListingsFromReceiverPolicies) {
    std::vector<std::string> lines{
        "554 Service unavailable; Client host [198.18.1.2] blocked using Trend Micro RBL+.",
        "550 5.7.1 Client host rejected: Dynamic IP addresses are blocked.",
        "554 Mail from 198.18.1.2 not allowed - 5.7.1 [BL23] Connections not accepted from IP",
        "554 Service unavailable; Client host [198.18.1.2] blocked using Trend Micro RBL+.",
        "421 4.7.0 Try again later",
    };
    EXPECT_EQ(blocklists_named(lines), (std::vector<std::string>{"Trend Micro RBL+", "Spamhaus XBL"}));
    EXPECT_EQ(policies_named(lines), (std::vector<std::string>{"dynamic IP policy"}));
}

TEST(Blocklists, SpecificListBeforeTheOperatorName) {
    EXPECT_EQ(recognise_refusal("554 5.7.1 listed on Spamhaus SBL, see https://www.spamhaus.org/")->name,
              "Spamhaus SBL");
    EXPECT_EQ(recognise_refusal("550 rejected: zen.spamhaus.org listed 198.18.1.2")->name, "Spamhaus ZEN");
    EXPECT_EQ(recognise_refusal("550 RBL rejection: http://www.spamhaus.org/query/bl?ip=x")->name, "Spamhaus");
    EXPECT_EQ(recognise_refusal("554 blocked, see https://cbl.abuseat.org/lookup.cgi")->name, "CBL");
    EXPECT_FALSE(recognise_refusal("550 5.1.1 <nobody@example.org>: Recipient address rejected"));
}
