// smtpgov-flood's options: the one table that the parser, --help and the man page
// (smtpgov-man smtpgov-flood) read. Options of one mode say so in their help ("syn: ...").
#pragma once

#include <boost/program_options.hpp>

namespace flood {

inline constexpr const char* kUsage = "smtpgov-flood [syn|smtp|vlan-tag] [options]";

boost::program_options::options_description options();

} // namespace flood
