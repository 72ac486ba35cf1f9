// Authentication-Results header fields (RFC 8601), for deciding who may report into a
// feedback loop: the operator's own MTA checks each arriving message's DKIM signatures
// and prepends one such field naming itself (its authserv-id); smtpgovctl report arf
// --authserv-id ID --reporters DOMAINS then trusts a report only when the topmost field
// naming ID says dkim=pass for a signing domain (header.d) that is one of DOMAINS or
// under one. Fields further down, or naming another authserv-id, were in the message
// when it arrived and are anyone's to write. (The MTA must also remove arriving fields
// that name its own authserv-id, as RFC 8601 section 5 asks: README of deploy/fbl.)
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpgov::arf {

struct AuthResults {
    std::string authserv_id;  // lower case
    struct Result {
        std::string method, result;                 // lower case: "dkim", "pass"
        std::map<std::string, std::string> props;   // "header.d" -> "example.com" (keys lower case)
    };
    std::vector<Result> results;  // empty for "none"
};

// One field's value (comments, quoted strings, folding and spaces around '=' allowed);
// nullopt when it is not one (no authserv-id, a result without '=').
std::optional<AuthResults> parse_auth_results(std::string_view value);

// The signing domain of a dkim=pass among `ar`'s results that is one of `domains` (lower
// case) or under one ("mail.yahoo.com" under "yahoo.com"), else "".
std::string trusted_signer(const AuthResults& ar, const std::vector<std::string>& domains);

}  // namespace smtpgov::arf
