// Client side of the control socket, for smtpgovctl and tests.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::svc {

// Sends one request and returns the reply envelope ({"ok":true,"result":...} or
// {"ok":false,...}); an Error when the daemon cannot be reached, times out or answers
// something that is not one JSON object.
Result<nlohmann::json> request(const std::string& socket_path, const nlohmann::json& req, int timeout_ms);

// For streaming requests (events with follow): returns the first envelope once the stream
// is over. When it is {"ok":true,"stream":true}, every following line is parsed and passed
// to on_line until on_line returns false or the server closes. timeout_ms bounds the
// connect and the first reply, not the stream. A signal during the stream (EINTR) ends it
// with an Error whose errnum is EINTR.
Result<nlohmann::json> request_stream(const std::string& socket_path, const nlohmann::json& req, int timeout_ms,
                                      const std::function<bool(const nlohmann::json& line)>& on_line);

}  // namespace smtpgov::svc
