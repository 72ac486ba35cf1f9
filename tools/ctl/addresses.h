// smtpgovctl's address reputation commands (DESIGN.md "Address reputation contract"):
// report arf, ip show, ip check; their handlers and human rendering.
#pragma once

#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "args.h"
#include "client.h"

namespace smtpgov::ctl {

inline constexpr int kExitTainted = 3;  // ip check: the address is tainted

int cmd_report_arf(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err);
int cmd_ip_show(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err);
int cmd_ip_check(const Invocation& inv, Transport& d, std::ostream& out, std::ostream& err);
void ip_fields(const Invocation& inv, nlohmann::json& r);  // {"addr": ADDR}

std::string render_ip_show(const nlohmann::json& ip);
std::string render_ip_check(const nlohmann::json& ip);
// DNSBL listings (the "dnsbl" of ip show and of vm show) as a table, "  none" when empty.
std::string render_dnsbl(const nlohmann::json& listings, bool host_column = false);

}  // namespace smtpgov::ctl
