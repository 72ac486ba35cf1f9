// smtpgovctl's command handlers: request building, daemon error mapping, output.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "args.h"
#include "client.h"

namespace smtpgov::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // daemon unreachable, not_found, runtime errors
inline constexpr int kExitUsage = 2;    // bad arguments, validation errors

// Runs a parsed command (not --help). Output on out, one-line reasons on err.
int run(const Invocation& inv, Transport& daemon, std::ostream& out, std::ostream& err);

// Whether the command named ("vm list") has a handler; every spec entry must.
bool has_handler(const std::string& name);

// The control-socket request for a daemon command, e.g. {"cmd":"vm.set_tier","id":..}.
nlohmann::json build_request(const Invocation& inv);

// The exit status for a daemon error kind ("usage"/"validation" -> 2, else 1).
int exit_code_for_kind(const std::string& kind);

// Sends req; on success returns the envelope's "result". On failure prints the reason
// (and any problems as PATH: reason) to err, stores the exit status in code.
std::optional<nlohmann::json> request(Transport& daemon, const nlohmann::json& req, std::ostream& err, int& code);

// top: refreshing table of the busiest VMs (top.cpp).
int run_top(const Invocation& inv, Transport& daemon, std::ostream& out, std::ostream& err);

}  // namespace smtpgov::ctl
