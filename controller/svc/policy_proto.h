// The policy service's protocol (docs/internals.md "Policy service"): Postfix's SMTPD
// policy delegation (SMTPD_POLICY_README), which the scanning proxy's Postfix and its
// verdict reporter both speak. A request is name=value lines ended by an empty line; the
// answer is one "action=..." line and an empty line; a connection carries any number of
// requests, one after the other. Pure: no sockets, no state beyond one stream's buffer.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/ip_prefix.h"
#include "core/result.h"

namespace smtpgov::svc::policy {

inline constexpr size_t kMaxRequestBytes = 16384;  // Postfix sends ~1 KiB; certificates may add a few
inline constexpr size_t kMaxAttributes = 128;      // Postfix 3.x sends ~45
inline constexpr size_t kMaxNameBytes = 64;

struct Request {
    std::vector<std::pair<std::string, std::string>> attrs;  // in the order received
    const std::string* get(std::string_view name) const;     // nullptr when absent
};

// Splits a byte stream into requests, with the limits above. After an error the stream
// cannot be resynchronised: the server answers it and closes the connection.
class Reader {
public:
    void feed(std::string_view bytes) { buf_.append(bytes); }
    // The next complete request, an error, or nullopt (wait for more bytes).
    std::optional<Result<Request>> next();
    size_t buffered() const { return buf_.size(); }

private:
    std::string buf_;
};

// What a request asks.
struct Query {
    enum class Kind { Access, Report, Other };
    Kind kind = Kind::Other;
    Endpoint client;          // client_address + client_port: the steered VM's side
    bool spam = false;        // Report: verdict=spam (else ham)
    std::string request;      // the request attribute as sent
    std::string problem;      // Access/Report: what is missing or malformed; "" when fine
};

// request=smtpd_access_policy (Postfix) -> Access; request=smtpgov_report (alias
// smtpgov_verdict) -> Report, which needs verdict=spam|ham; anything else -> Other.
// Access and Report need client_address and client_port.
Query interpret(const Request& r);

// The policy service's token (daemon config policy_service_token_file): when one is set,
// a spam or ham report counts only with token=<it>; Postfix's own requests need none.
// A token is 16..256 characters of A-Z a-z 0-9 - . _ ~ + / (openssl rand -hex 32).
inline constexpr size_t kMinTokenBytes = 16, kMaxTokenBytes = 256;
// Reads a token file: the token, one line. Refused: a file that any user may read (the
// token would be no secret), or one that is not a token by the rule above.
Result<std::string> read_token_file(const std::string& path);
// False only for a report (request=smtpgov_report or smtpgov_verdict) without the token,
// when a token is set; the comparison takes the same time wherever a guess goes wrong.
bool authorised(const Request& r, std::string_view token);

// "action=<text>\n\n"; newlines in text are replaced (an answer is one line).
std::string answer(std::string_view action);
// "FILTER smtp:[ADDR]:PORT" for the original destination of a steered flow.
std::string filter_action(const Endpoint& original);

}  // namespace smtpgov::svc::policy
