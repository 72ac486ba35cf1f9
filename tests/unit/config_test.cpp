// smtpgovd's config keys: every key read from the file and from its flag, checked,
// written back by to_json and listed by --help, all from the one key table. Runs as
// nobody (tests/as-nobody.sh); config_docs_test in unit-ops checks the docs against it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "daemon/config.h"

using nlohmann::json;
using namespace smtpgov::daemon;

namespace {

// A valid value unlike the default, per key: a new key fails EverySampleNamesAKey
// until it has one here.
const json kSamples = {
    {"interfaces", {"vnet*", "tap0"}},
    {"xdp_mode", "native"},
    {"bpffs", "/tmp/sg/bpf"},
    {"state_dir", "/tmp/sg/state"},
    {"socket", "/tmp/sg/ctl.sock"},
    {"metrics_listen", "[::1]:9999"},
    {"policy_service_listen", "[fd00:5e:fd::1]:10041"},
    {"policy_service_token_file", "/etc/smtpgov/policy-service.token"},
    {"policy", "/etc/smtpgov/other.json"},
    {"sweep_interval_ms", 250},
    {"max_vms", 1024},
    {"webhook_url", "https://tickets.example.net/hook"},
    {"log_level", "debug"},
    {"log_target", "journal"},
    {"metrics_max_vm_series", 0},
    {"gateway_interfaces", {"eth1", "bond*"}},
    {"auto_hold_s", 60},
    {"address_taint_days", 30},
    {"interface_rules", json::parse(R"([{"match": "^tap(\\d+)i\\d+$", "id": "pve-$1", "tenant": "pve"}])")},
    {"fleet", json::parse(R"({"etcd": ["http://10.0.0.5:2379", "https://10.0.0.6:2379"], "host": "hv-01", "prefix": "/sg"})")},
    {"dnsbl", json::parse(R"({"zones": ["zen.spamhaus.org", {"zone": "v6.example", "ipv6": true}],
                              "resolver": "127.0.0.1:53", "interval_s": 600, "queries_per_s": 5, "max_per_prefix": 16})")},
};

// The defaults the README and DESIGN promise; the table must keep them.
const json kDefaults = {
    {"interfaces", json::array()},
    {"xdp_mode", "auto"},
    {"bpffs", "/sys/fs/bpf/smtpgov"},
    {"state_dir", "/var/lib/smtpgov"},
    {"socket", "/run/smtpgov/ctl.sock"},
    {"metrics_listen", "127.0.0.1:9464"},
    {"policy_service_listen", "127.0.0.1:10040"},
    {"policy_service_token_file", ""},
    {"policy", ""},
    {"sweep_interval_ms", 1000},
    {"max_vms", 16384},
    {"webhook_url", ""},
    {"log_level", "info"},
    {"log_target", "auto"},
    {"metrics_max_vm_series", 1000},
    {"gateway_interfaces", json::array()},
    {"auto_hold_s", 300},
    {"address_taint_days", 90},
    {"interface_rules", json::array()},
    {"fleet", json::object()},
    {"dnsbl", json::object()},
};

std::string write_file(const std::string& name, const std::string& text) {
    // per process: a file left by another user (root, then nobody) must not be in the way
    std::string path = ::testing::TempDir() + "/sg-config-" + std::to_string(::getpid()) + "-" + name;
    std::ofstream(path) << text;
    return path;
}

smtpgov::Result<Invocation> invoke(std::vector<std::string> args) {
    args.insert(args.begin(), "smtpgovd");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return parse_invocation(static_cast<int>(argv.size()), argv.data());
}

smtpgov::Result<Invocation> invoke_with_file(const json& doc, std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--config", write_file("test.json", doc.dump())});
    return invoke(std::move(args));
}

// The command line that sets key to value: --key v, or --key a b for a list.
std::vector<std::string> flag_args(const std::string& key, const json& value) {
    std::vector<std::string> out{"--" + flag_of(key)};
    if (value.is_array() && !value.empty() && value[0].is_string())
        for (const auto& v : value) out.push_back(v.get<std::string>());
    else if (value.is_array())
        out.push_back(value.dump());  // a JSON document (interface_rules): the flag takes its text
    else
        out.push_back(value.is_string() ? value.get<std::string>() : value.dump());
    return out;
}

std::string error_of(const smtpgov::Result<Invocation>& r) { return r ? "(no error)" : r.error().message; }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(ConfigKeys, EverySampleNamesAKey) {
    std::set<std::string> table, samples;
    for (const auto& k : config_keys()) table.insert(k.name);
    for (const auto& [k, v] : kSamples.items()) samples.insert(k);
    EXPECT_EQ(table, samples);
    EXPECT_EQ(table.size(), config_keys().size()) << "a key appears twice in the table";
}

TEST(ConfigKeys, DefaultsAreTheDocumentedOnes) {
    EXPECT_EQ(to_json(Config{}), kDefaults);
    EXPECT_TRUE(check_config(Config{}).empty());
    auto inv = invoke({});
    ASSERT_TRUE(inv) << error_of(inv);
    EXPECT_EQ(inv->command, Command::Run);
    EXPECT_EQ(inv->config, Config{});
}

TEST(ConfigKeys, EveryKeyRoundTripsFileToJson) {
    auto inv = invoke_with_file(kSamples);
    ASSERT_TRUE(inv) << error_of(inv);
    EXPECT_EQ(to_json(inv->config), kSamples);
    EXPECT_EQ(check_config(inv->config), std::vector<std::string>{});
    for (const auto& [key, value] : kSamples.items()) EXPECT_NE(value, kDefaults[key]) << key << ": sample is the default";
}

TEST(ConfigKeys, EveryKeyIsAFlag) {
    for (const auto& [key, value] : kSamples.items()) {
        auto inv = invoke(flag_args(key, value));
        ASSERT_TRUE(inv) << key << ": " << error_of(inv);
        json expected = kDefaults;
        expected[key] = value;
        EXPECT_EQ(to_json(inv->config), expected) << "--" << flag_of(key);
    }
}

TEST(ConfigKeys, FlagOverridesFile) {
    for (const auto& [key, value] : kSamples.items()) {
        const bool list = value.is_array() && !value.empty() && value[0].is_string();
        json other = list ? json{"eth9"} : kDefaults[key];
        auto inv = invoke_with_file(kSamples, flag_args(key, other));
        ASSERT_TRUE(inv) << key << ": " << error_of(inv);
        json expected = kSamples;
        expected[key] = other;
        EXPECT_EQ(to_json(inv->config), expected) << "--" << flag_of(key) << " over the file";
    }
}

TEST(ConfigKeys, ListsAreSplitAtCommasInFileAndFlags) {
    auto file = invoke_with_file({{"interfaces", {"a,b", "c"}}});
    ASSERT_TRUE(file) << error_of(file);
    EXPECT_EQ(file->config.interfaces, (std::vector<std::string>{"a", "b", "c"}));
    auto flags = invoke({"--interfaces", "vnet*,tap*", "eth1"});
    ASSERT_TRUE(flags) << error_of(flags);
    EXPECT_EQ(flags->config.interfaces, (std::vector<std::string>{"vnet*", "tap*", "eth1"}));
}

TEST(ConfigKeys, WrongFileTypeIsNamedForEachKind) {
    const std::vector<std::pair<json, std::string>> cases{
        {{{"state_dir", 5}}, "config: state_dir has the wrong type"},
        {{{"xdp_mode", nullptr}}, "config: xdp_mode has the wrong type"},
        {{{"max_vms", -1}}, "config: max_vms must be a non-negative integer"},
        {{{"sweep_interval_ms", "1000"}}, "config: sweep_interval_ms must be a non-negative integer"},
        {{{"sweep_interval_ms", 1.5}}, "config: sweep_interval_ms must be a non-negative integer"},
        {{{"max_vms", 4294967296ull}}, "config: max_vms must be at most 4294967295"},
        {{{"interfaces", "vnet*"}}, "config: interfaces has the wrong type"},
        {{{"interfaces", {"vnet*", 3}}}, "config: interfaces has the wrong type"},
    };
    for (const auto& [doc, message] : cases) {
        auto inv = invoke_with_file(doc);
        ASSERT_FALSE(inv) << doc.dump();
        EXPECT_TRUE(contains(inv.error().message, ": " + message)) << inv.error().message;
    }
}

TEST(ConfigKeys, WrongFlagValueIsNamed) {
    auto inv = invoke({"--max-vms", "many"});
    ASSERT_FALSE(inv);
    EXPECT_TRUE(contains(inv.error().message, "--max-vms")) << inv.error().message;
    auto list = invoke({"--interfaces"});
    ASSERT_FALSE(list);
    EXPECT_TRUE(contains(list.error().message, "--interfaces")) << list.error().message;
}

TEST(ConfigKeys, CheckNamesEveryBadValue) {
    const std::map<std::string, std::pair<json, std::string>> bad{
        {"interfaces", {{"vnet*", "has/slash"}, "interfaces: \"has/slash\" is not an interface name or glob (at most 15 characters)"}},
        {"xdp_mode", {"fast", "xdp_mode: must be native, generic or auto, not \"fast\""}},
        {"bpffs", {"bpf", "bpffs: must be an absolute path"}},
        {"state_dir", {"", "state_dir: must be an absolute path"}},
        {"socket", {"ctl.sock", "socket: must be an absolute path"}},
        {"metrics_listen", {"localhost", "metrics_listen: must be HOST:PORT, or \"\" to disable"}},
        {"policy_service_listen",
         {"localhost:10040", "policy_service_listen: must be ADDR:PORT or [IPv6]:PORT, or \"\" to disable (bad host "
                             "\"localhost\": not an IPv4 or IPv6 address)"}},
        {"policy_service_token_file", {"token", "policy_service_token_file: must be an absolute path"}},
        {"policy", {"policy.json", "policy: must be an absolute path"}},
        {"sweep_interval_ms", {5, "sweep_interval_ms: must be 10..60000"}},
        {"max_vms", {0, "max_vms: must be 1..4194304"}},
        {"webhook_url", {"ftp://x", "webhook_url: must be an http:// or https:// URL"}},
        {"log_level", {"warn", "log_level: must be error, warning, notice, info or debug"}},
        {"interface_rules",
         {json::parse(R"([{"match": "^tap", "id": "a"}, {"match": "(", "id": "b"}])"),
          "interface_rules: /1/match: not a regular expression: Mismatched '(' and ')' in regular expression"}},
        {"fleet", {json::parse(R"({"etcd": ["10.0.0.5:2379"]})"), "fleet: /etcd/0: must be an http:// or https:// URL"}},
        {"dnsbl", {json::parse(R"({"zones": ["zen.spamhaus.org"], "resolver": "127.0.0.1:53", "interval_s": 0})"),
                   "dnsbl: /interval_s: must be an integer 1..604800"}},
    };
    json doc = json::object();
    std::vector<std::string> expected;
    for (const auto& k : config_keys()) {  // table order is check_config's order
        auto it = bad.find(k.name);
        if (it == bad.end()) continue;
        doc[k.name] = it->second.first;
        expected.push_back(it->second.second);
    }
    EXPECT_EQ(expected.size(), bad.size());
    auto inv = invoke_with_file(doc);
    ASSERT_TRUE(inv) << error_of(inv);
    EXPECT_EQ(check_config(inv->config), expected);
}

TEST(ConfigKeys, CountBoundsAreInclusive) {
    auto inv = invoke_with_file({{"sweep_interval_ms", 10}, {"max_vms", 4194304}});
    ASSERT_TRUE(inv) << error_of(inv);
    EXPECT_TRUE(check_config(inv->config).empty());
    auto over = invoke({"--sweep-interval-ms", "60001", "--max-vms", "4194305"});
    ASSERT_TRUE(over) << error_of(over);
    EXPECT_EQ(check_config(over->config),
              (std::vector<std::string>{"sweep_interval_ms: must be 10..60000", "max_vms: must be 1..4194304"}));
}

TEST(ConfigKeys, UnknownKeyIsRefused) {
    std::string path = write_file("unknown.json", R"({"state_dir": "/x", "sweep_interval": 5})");
    auto inv = invoke({"--config", path});
    ASSERT_FALSE(inv);
    EXPECT_EQ(inv.error().message, path + ": config: unknown key \"sweep_interval\"");
    auto nested = invoke_with_file({{"config", "/etc/other.json"}});  // a flag, not a key
    ASSERT_FALSE(nested);
    EXPECT_TRUE(contains(nested.error().message, "config: unknown key \"config\"")) << nested.error().message;
    auto flag = invoke({"--sweep-period-ms", "5"});
    ASSERT_FALSE(flag);
    EXPECT_EQ(flag.error().message, "unrecognised option '--sweep-period-ms'");
}

TEST(ConfigKeys, BadDocumentsAreRefused) {
    auto array = invoke_with_file(json::array());
    ASSERT_FALSE(array);
    EXPECT_TRUE(contains(array.error().message, "config: the document must be a JSON object"));
    std::string broken = write_file("broken.json", "{\"state_dir\": ");
    auto inv = invoke({"--config", broken});
    ASSERT_FALSE(inv);
    EXPECT_TRUE(contains(inv.error().message, "config " + broken + ": not valid JSON (invalid JSON at byte"))
        << inv.error().message;
    std::string twice = write_file("twice.json", R"({"interfaces": ["vnet*"], "interfaces": []})");
    auto dup = invoke({"--config", twice});
    ASSERT_FALSE(dup);
    EXPECT_TRUE(contains(dup.error().message, "duplicate key \"interfaces\" at /")) << dup.error().message;
    auto missing = invoke({"--config", "/nonexistent/smtpgovd.json"});
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message, "config /nonexistent/smtpgovd.json: No such file or directory");
}

TEST(ConfigKeys, HelpListsEveryKeyWithItsDefault) {
    auto inv = invoke({"--help"});
    ASSERT_TRUE(inv) << error_of(inv);
    EXPECT_EQ(inv->command, Command::Help);
    // boost wraps long help lines: compare with every run of white space made one space
    std::string usage = std::regex_replace(inv->usage, std::regex(R"(\s+)"), " ");
    for (const auto& k : config_keys()) {
        EXPECT_TRUE(contains(usage, "--" + flag_of(k.name) + " arg " + k.help)) << k.name;
        std::string fallback = default_text(k);
        if (!fallback.empty()) {
            EXPECT_TRUE(contains(usage, k.help + std::string(" (default ") + fallback + ")")) << k.name;
        }
    }
    for (const char* cmd : {"--help", "--version", "--check-config", "--remove", "--cleanup", "--config"})
        EXPECT_TRUE(contains(usage, cmd)) << cmd;
}

TEST(ConfigKeys, CommandsInPrecedence) {
    const std::vector<std::pair<std::vector<std::string>, Command>> cases{
        {{"-h"}, Command::Help},
        {{"--version", "--help"}, Command::Help},
        {{"--check-config", "--version"}, Command::Version},
        {{"--remove", "--check-config"}, Command::CheckConfig},
        {{"--cleanup"}, Command::Remove},
        {{"--state-dir", "/x"}, Command::Run},
    };
    for (const auto& [args, command] : cases) {
        auto inv = invoke(args);
        ASSERT_TRUE(inv) << error_of(inv);
        EXPECT_EQ(inv->command, command) << args.front();
    }
}
