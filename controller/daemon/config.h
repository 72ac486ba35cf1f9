// smtpgovd settings: the JSON config file (--config) with every key also a flag of the
// same name (state_dir -> --state-dir); flags override the file. Every key is one entry
// of the table in config.cpp (config_keys()): its field, default, help and check; the file
// parser, the flags, check_config, to_json and --help are all generated from it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::daemon {

// Defaults and meanings: the key table in config.cpp (and smtpgovd --help).
struct Config {
    Config();  // every key at its default

    std::vector<std::string> interfaces;
    std::string xdp_mode;
    std::string bpffs;
    std::string state_dir;
    std::string socket;
    std::string metrics_listen;
    std::string policy_service_listen;
    std::string policy_service_token_file;
    std::string policy;
    uint32_t sweep_interval_ms;
    uint32_t max_vms;
    std::string webhook_url;
    std::string log_level;
    std::string log_target;
    uint32_t metrics_max_vm_series;
    std::vector<std::string> gateway_interfaces;
    uint32_t auto_hold_s;
    uint32_t address_taint_days;
    nlohmann::json interface_rules;
    nlohmann::json fleet;  // core/fleet.h Options; {} = not in a fleet
    nlohmann::json dnsbl;  // core/dnsbl.h Options; {} = no DNSBL monitoring

    bool operator==(const Config&) const = default;
};

// One config key. A check returns "" when the value is fine, else the reason, which
// check_config prints after the key ("must be an absolute path").
struct ConfigKey {
    using Check = std::string (*)(const std::string&);
    struct Text {  // a JSON string, a flag taking one value
        std::string Config::*field;
        const char* fallback;
        Check check;
    };
    struct Count {  // a JSON non-negative integer, a flag taking a uint32
        uint32_t Config::*field;
        uint32_t fallback, min, max;
    };
    struct List {  // a JSON array of strings, a repeatable flag; items may be comma-separated
        std::vector<std::string> Config::*field;
        Check check_item;  // default: empty list
    };

    struct Doc {  // a JSON value of any shape (a list of objects); the flag takes JSON text
        nlohmann::json Config::*field;
        const char* fallback;  // JSON text
        std::string (*check)(const nlohmann::json&);
    };

    const char* name;  // file key; the flag is --name with '-' for '_'
    const char* help;  // --help text; " (default X)" is appended when there is one
    std::variant<Text, Count, List, Doc> value;
};

std::span<const ConfigKey> config_keys();
std::string flag_of(std::string_view key);              // "state_dir" -> "state-dir"
std::string default_text(const ConfigKey& key);          // as --help shows it; "" when none

enum class Command { Run, CheckConfig, Remove, Help, Version };

// A command flag of smtpgovd (--help, --check-config, ...): --help and the man page list
// them from this table; the first one given wins, in its order.
struct CommandFlag {
    const char* option;  // boost spelling: "help,h"
    const char* help;
    Command command;
};
std::span<const CommandFlag> command_flags();

struct Invocation {
    Command command = Command::Run;
    std::string config_file;
    Config config;
    std::string usage;  // --help text
};

// Parses argv and the config file. Errors are usage errors (exit 2).
Result<Invocation> parse_invocation(int argc, char** argv);

// Every problem of a config, one line each ("sweep_interval_ms: must be 10..60000").
std::vector<std::string> check_config(const Config& c);

nlohmann::json to_json(const Config& c);

}  // namespace smtpgov::daemon
