// Command-line parsing for smtpgovctl: argv -> Invocation, driven by the spec table.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "spec.h"

namespace smtpgov::ctl {

// Bad arguments: exit status 2, message printed as one line on stderr.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Invocation {
    const CommandSpec* command = nullptr;   // nullptr only when help was asked for a group
    std::vector<std::string> words;         // command words given ("vm" for `vm --help`)
    std::map<std::string, std::string> args;   // by ArgSpec::name
    std::map<std::string, std::string> opts;   // valued options given, by name
    std::vector<std::string> flags;            // flags given (command-specific)
    std::string socket = kDefaultSocket;
    bool json = false;
    bool help = false;

    bool flag(const std::string& name) const;
    std::optional<std::string> opt(const std::string& name) const;
    // Value of a UInt option, or the default from the spec (0 when none).
    uint64_t uint_opt(const std::string& name) const;
    // Value of a Seconds option, or its spec default; nullopt when neither.
    std::optional<double> seconds_opt(const std::string& name) const;
    const std::string& arg(const std::string& name) const;
};

// argv without the program name. Throws UsageError.
Invocation parse_args(const std::vector<std::string>& argv);

// Parses "123" strictly (digits only, no sign, fits). Throws UsageError naming what.
uint64_t parse_uint(const std::string& s, const std::string& what);
// The largest number of seconds any option takes: 10 years. A longer pin (vm set-tier
// --for) is refused here, so no absurd duration (1e300) reaches the daemon; smtpgovd
// applies the same bound (svc::cmd::kMaxPinSeconds).
inline constexpr double kMaxSeconds = 10.0 * 365 * 86400;  // 315,360,000

// Parses a number of seconds from 0 to kMaxSeconds ("30", "0.5"). Throws UsageError
// naming what.
double parse_seconds(const std::string& s, const std::string& what);

}  // namespace smtpgov::ctl
