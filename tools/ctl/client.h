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

// How long smtpgovctl waits (docs/internals.md, "Control socket protocol"):
// - connecting and sending a request: up to kSendTimeoutMs (smtpgovd gives a request
//   line as long, request_timeout_ms; a policy of 100,000 VMs is sent in about a second);
// - the answer to a command that changes state (svc::cmd::changes_state: policy apply,
//   vm set-tier, vm clear, report): for as long as the daemon works on it. Giving up would
//   not undo it, and a timeout used to report a failure for a policy that was applied.
//   Ctrl-C stops waiting with exit 1 and "the daemon may still apply it";
// - the answer to a command that changes nothing: kReplyTimeoutMs, then exit 1.
inline constexpr int kSendTimeoutMs = 120'000;
inline constexpr int kReplyTimeoutMs = 30'000;

// Unix-socket transport to smtpgovd's control socket (svc::exchange / request_stream).
class SocketTransport : public Transport {
public:
    explicit SocketTransport(std::string path, int reply_timeout_ms = kReplyTimeoutMs,
                             int send_timeout_ms = kSendTimeoutMs)
        : path_(std::move(path)), reply_timeout_ms_(reply_timeout_ms), send_timeout_ms_(send_timeout_ms) {}
    Result<nlohmann::json> call(const nlohmann::json& request) override;
    Result<nlohmann::json> stream(const nlohmann::json& request,
                                  const std::function<bool(const nlohmann::json&)>& on_line) override;

private:
    std::string path_;
    int reply_timeout_ms_;
    int send_timeout_ms_;
};

// SIGINT/SIGTERM set a flag (without SA_RESTART, so blocking calls return EINTR).
void install_interrupt_handler();
bool interrupted();

}  // namespace smtpgov::ctl
