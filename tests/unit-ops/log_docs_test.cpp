// The README's "Logs" table against the event kinds of controller/daemon/log.cpp: every
// kind listed once, with its MESSAGE_ID (operators' queries and alerts name them).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "daemon/log.h"

TEST(LogDocs, ReadmeListsEveryEventKindWithItsMessageId) {
    std::ifstream readme(SMTPGOV_SOURCE_DIR "/README.md");
    ASSERT_TRUE(readme) << "README.md";
    const std::regex row(R"(^\| `([a-z_]+)` \| `([0-9a-f]{32})` \|)");
    std::map<std::string, std::string> listed;
    bool in_section = false;
    for (std::string line; std::getline(readme, line);) {
        if (line.rfind("## ", 0) == 0) in_section = line == "## Logs";
        std::smatch m;
        if (in_section && std::regex_search(line, m, row)) {
            EXPECT_TRUE(listed.emplace(m[1], m[2]).second) << m[1];
        }
    }
    EXPECT_EQ(listed.size(), smtpgov::log::event_kinds().size());
    for (const auto& k : smtpgov::log::event_kinds()) {
        auto it = listed.find(k.name);
        ASSERT_NE(it, listed.end()) << k.name << " is missing from the README's Logs table";
        EXPECT_EQ(it->second, k.message_id) << k.name;
    }
}
