// Help, man page and bash completion, all generated from the spec table.
#pragma once

#include <string>
#include <vector>

#include "spec.h"

namespace smtpgov::ctl {

// `smtpgovctl --help`, or `smtpgovctl vm --help` for a group (prefix {"vm"}).
std::string general_help(const std::vector<std::string>& prefix);
std::string command_help(const CommandSpec& cmd);
std::string man_page();         // roff, section 8
std::string bash_completion();  // a script for /usr/share/bash-completion/completions/smtpgovctl

}  // namespace smtpgov::ctl
