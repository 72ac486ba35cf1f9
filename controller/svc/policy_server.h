// smtpgovd's policy service (daemon config policy_service_listen): a TCP server speaking
// the policy delegation protocol (svc/policy_proto.h) for the scanning proxy's Postfix
// and verdict reporter. They do not run as root, so any local user may connect: the
// server holds at most max_connections (past that the one idle longest is closed), a
// request must fit in policy::kMaxRequestBytes and arrive within request_timeout_ms of
// its first byte, a connection idle longer than idle_timeout_ms is closed, and each
// connection has at most one request in the handler at a time (the next one is read
// when it is answered). One thread, one epoll set, every socket non-blocking.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/ip_prefix.h"
#include "core/result.h"
#include "svc/policy_proto.h"

namespace smtpgov::svc {

struct PolicyServerOptions {
    IpPrefix addr;                      // a host address (0.0.0.0 / :: for all)
    uint16_t port = 10040;              // 0: ephemeral (tests)
    size_t max_connections = 256;
    int request_timeout_ms = 10'000;    // from a request's first byte to its empty line
    int idle_timeout_ms = 330'000;      // between requests (Postfix drops its own after 300 s)
    int answer_timeout_ms = 20'000;     // the handler's answer; then DEFER_IF_PERMIT
    int write_timeout_ms = 5'000;
    // Tests only: called on the server thread at each of its wakeups, before the deadlines
    // are checked (a test holds the thread up there, as a stall of the machine would).
    std::function<void()> on_wakeup;
};

// The answer to one request: call exactly once, from any thread, with the action text
// ("DUNNO", "FILTER smtp:[192.0.2.1]:25"). Safe after the server stopped (it is dropped).
using PolicyDone = std::function<void(std::string action)>;
// Runs on the server thread for each complete request; it must not block (hand the
// request to whoever answers it and return).
using PolicyHandler = std::function<void(policy::Request request, PolicyDone done)>;

class PolicyServer {
public:
    static Result<std::unique_ptr<PolicyServer>> start(PolicyServerOptions opts, PolicyHandler handler);
    ~PolicyServer();  // stop()
    PolicyServer(const PolicyServer&) = delete;
    PolicyServer& operator=(const PolicyServer&) = delete;

    void stop();  // closes every connection and joins the thread; idempotent
    int port() const { return port_; }

    struct Impl;

private:
    explicit PolicyServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    int port_ = 0;
};

}  // namespace smtpgov::svc
