// smtpgov-libvirt's command line: one table that the parser, --help and the man page read.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"

namespace smtpgov::hv {

struct Options {
    std::string uri;                                // libvirt URI; "" = libvirt's default
    std::string socket = "/run/smtpgov/ctl.sock";   // smtpgovd's control socket
    int interval_s = 60;                            // full resend even without events
    bool once = false, print = false, help = false, man = false, hook = false;
    std::string hook_domain, hook_op;               // --hook DOMAIN OP [SUBOP [EXTRA]]
};

Result<Options> parse_options(const std::vector<std::string>& args);
std::string usage();
std::string man_page();  // troff, from the same table as usage()

}  // namespace smtpgov::hv
