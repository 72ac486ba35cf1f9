// How smtpgovctl talks to smtpgovd: one JSON request per connection on the control
// socket (docs/internals.md). The Transport interface lets tests replace the daemon.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::ctl {

class Transport {
public:
    virtual ~Transport() = default;
    // Sends one request; returns the daemon's response envelope ({"ok": ...}), or an
    // Error when the daemon cannot be reached or answers garbage.
    virtual Result<nlohmann::json> call(const nlohmann::json& request) = 0;
    // Sends a streaming request. Returns the first envelope; when it is
    // {"ok":true,"stream":true}, on_line is called for each following JSON line until it
    // returns false, the daemon closes the stream, or the user interrupts (Ctrl-C).
    virtual Result<nlohmann::json> stream(const nlohmann::json& request,
                                          const std::function<bool(const nlohmann::json&)>& on_line) = 0;
};

// Unix-socket transport to smtpgovd's control socket (svc::request / request_stream).
class SocketTransport : public Transport {
public:
    explicit SocketTransport(std::string path, int timeout_ms = 10000)
        : path_(std::move(path)), timeout_ms_(timeout_ms) {}
    Result<nlohmann::json> call(const nlohmann::json& request) override;
    Result<nlohmann::json> stream(const nlohmann::json& request,
                                  const std::function<bool(const nlohmann::json&)>& on_line) override;

private:
    std::string path_;
    int timeout_ms_;
};

// SIGINT/SIGTERM set a flag (without SA_RESTART, so blocking calls return EINTR).
void install_interrupt_handler();
bool interrupted();

}  // namespace smtpgov::ctl
