// smtpgovd settings: the JSON config file (--config) with every key also a flag of the
// same name (state_dir -> --state-dir); flags override the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::daemon {

struct Config {
    std::vector<std::string> interfaces;          // names or fnmatch globs
    std::string xdp_mode = "auto";                // native | generic | auto
    std::string bpffs = "/sys/fs/bpf/smtpgov";
    std::string state_dir = "/var/lib/smtpgov";
    std::string socket = "/run/smtpgov/ctl.sock";
    std::string metrics_listen = "127.0.0.1:9464";  // "" = no metrics endpoint
    std::string policy;                           // applied at start when none is persisted
    uint32_t sweep_interval_ms = 1000;
    uint32_t max_vms = 16384;
    std::string webhook_url;                      // "" = no webhook
    std::string log_level = "info";
    uint32_t metrics_max_vm_series = 1000;        // 0 = unlimited
};

enum class Command { Run, CheckConfig, Remove, Help, Version };

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
