// Client side of the control socket, for smtpgovctl and tests.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::svc {

// Sends one request and returns the reply envelope ({"ok":true,"result":...} or
// {"ok":false,...}); an Error when the daemon cannot be reached, times out or answers
// something that is not one JSON object. timeout_ms bounds the connect and send, and
// then the wait for the reply.
Result<nlohmann::json> request(const std::string& socket_path, const nlohmann::json& req, int timeout_ms);

struct RequestOptions {
    int send_timeout_ms = 10000;   // connect and send the request line
    int reply_timeout_ms = 10000;  // from the request sent to the reply line; -1: no limit
    bool stop_on_eintr = false;    // a signal (EINTR) ends the wait with errnum EINTR
};

// One request, telling apart what happened before the daemon had the whole request
// (nothing can have been done) and after (it may be acting on it).
struct Exchange {
    Result<nlohmann::json> reply = Error::msg("not sent");
    bool sent = false;  // the whole request line was written to the daemon
};
Exchange exchange(const std::string& socket_path, const nlohmann::json& req, const RequestOptions& opts);

// For streaming requests (events with follow): returns the first envelope once the stream
// is over. When it is {"ok":true,"stream":true}, every following line is parsed and passed
// to on_line until on_line returns false or the server closes. timeout_ms bounds the
// connect and the first reply, not the stream. A signal during the stream (EINTR) ends it
// with an Error whose errnum is EINTR.
Result<nlohmann::json> request_stream(const std::string& socket_path, const nlohmann::json& req, int timeout_ms,
                                      const std::function<bool(const nlohmann::json& line)>& on_line);

}  // namespace smtpgov::svc
