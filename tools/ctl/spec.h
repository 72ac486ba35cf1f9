// smtpgovctl's command and option definitions: the one table that drives argument
// parsing, --help, the man page and bash completion.
#pragma once

#include <string>
#include <vector>

namespace smtpgov::ctl {

enum class ValueKind { Flag, String, UInt, Seconds, File, Choice };

struct OptionSpec {
    std::string name;         // long name without dashes: "follow"
    ValueKind kind = ValueKind::Flag;
    std::string value_name;   // "N", "SECONDS" (unused for flags)
    std::string help;
    std::vector<std::string> choices;  // ValueKind::Choice
    std::string default_value;         // shown in help; "" = none
};

struct ArgSpec {
    std::string name;         // "ID", "FILE"
    ValueKind kind = ValueKind::String;
    std::string help;
    std::vector<std::string> choices;
};

struct CommandSpec {
    std::vector<std::string> path;  // {"vm", "list"}
    std::string summary;            // one line
    std::string description;        // a paragraph for --help and the man page
    std::vector<ArgSpec> args;
    std::vector<OptionSpec> options;
    bool needs_daemon = true;       // talks to smtpgovd over the control socket

    std::string name() const;       // "vm list"
    std::string usage() const;      // "vm list [--tier TIER] [--tenant NAME]"
};

inline constexpr const char* kDefaultSocket = "/run/smtpgov/ctl.sock";

const std::vector<OptionSpec>& global_options();
const std::vector<CommandSpec>& commands();
// The command named by path, or nullptr.
const CommandSpec* find_command(const std::vector<std::string>& path);
// Distinct words that can follow prefix ({} -> {"status", "policy", "vm", ...}).
std::vector<std::string> next_words(const std::vector<std::string>& prefix);

}  // namespace smtpgov::ctl
