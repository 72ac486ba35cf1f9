// Interface name patterns of the config (`interfaces`, `gateway_interfaces`): shell
// globs as fnmatch(3) reads them.
#pragma once

#include <fnmatch.h>

#include <string>
#include <vector>

namespace smtpgov {

inline bool name_matches(const std::vector<std::string>& patterns, const std::string& name) {
    for (const auto& p : patterns)
        if (::fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
    return false;
}

}  // namespace smtpgov
