// JSON for documents people write (policy, config): like nlohmann::json::parse, but a
// key given twice in one object is an error naming its JSON path, not a silent
// last-wins ({"vms": [...], "vms": []} must not remove every VM).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov {

// Error message: "invalid JSON at byte N: ..." or "duplicate key \"vms\" at /".
Result<nlohmann::json> parse_json_strict(std::string_view text);

}  // namespace smtpgov
