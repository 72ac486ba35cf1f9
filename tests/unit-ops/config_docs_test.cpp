// smtpgovd's config docs against the key table (controller/daemon/config.cpp): the
// README's table lists every key with its default, and the shipped config is valid.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "daemon/config.h"

using namespace smtpgov::daemon;

namespace {

// README "Daemon configuration": key -> its default column ("`1000`", "—" for none).
std::map<std::string, std::string> readme_defaults() {
    std::ifstream readme(SMTPGOV_SOURCE_DIR "/README.md");
    EXPECT_TRUE(readme) << "README.md";
    std::map<std::string, std::string> out;
    const std::regex row(R"(^\| `([a-z_]+)` \| ([^|]*) \|)");
    bool in_section = false;
    for (std::string line; std::getline(readme, line);) {
        if (line.rfind("### ", 0) == 0) in_section = line.find("Daemon configuration") != std::string::npos;
        std::smatch m;
        if (in_section && std::regex_search(line, m, row)) out[m[1]] = m[2];
    }
    return out;
}

}  // namespace

TEST(ConfigDocs, ReadmeListsEveryKeyWithItsDefault) {
    auto documented = readme_defaults();
    EXPECT_EQ(documented.size(), config_keys().size());
    for (const auto& k : config_keys()) {
        auto it = documented.find(k.name);
        ASSERT_NE(it, documented.end()) << k.name << " is missing from the README's config table";
        std::string fallback = default_text(k);
        EXPECT_EQ(it->second, fallback.empty() ? "—" : "`" + fallback + "`") << k.name;
    }
}

TEST(ConfigDocs, ShippedConfigIsValid) {
    std::string path = SMTPGOV_SOURCE_DIR "/deploy/config/smtpgovd.json";
    std::string config_flag = "--config", argv0 = "smtpgovd";
    char* argv[] = {argv0.data(), config_flag.data(), path.data()};
    auto inv = parse_invocation(3, argv);
    ASSERT_TRUE(inv) << inv.error().message;
    EXPECT_EQ(check_config(inv->config), std::vector<std::string>{});
}
