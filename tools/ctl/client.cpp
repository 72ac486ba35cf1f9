#include "client.h"

#include <signal.h>

#include <atomic>
#include <cerrno>

#include "svc/control_client.h"

namespace smtpgov::ctl {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) { g_interrupted.store(true); }

Error unreachable(const Error& e) { return Error{e.errnum, "cannot reach smtpgovd (" + e.message + ")"}; }

}  // namespace

Result<nlohmann::json> SocketTransport::call(const nlohmann::json& request) {
    auto env = svc::request(path_, request, timeout_ms_);
    if (!env) return unreachable(env.error());
    if (!env->contains("ok") || !(*env)["ok"].is_boolean())
        return Error{EPROTO, "malformed answer from smtpgovd: " + env->dump().substr(0, 120)};
    return env;
}

Result<nlohmann::json> SocketTransport::stream(const nlohmann::json& request,
                                               const std::function<bool(const nlohmann::json&)>& on_line) {
    auto env = svc::request_stream(path_, request, timeout_ms_, on_line);
    if (!env) {
        // Ctrl-C (or SIGTERM) ends a stream normally
        if (env.error().errnum == EINTR && interrupted()) return nlohmann::json{{"ok", true}, {"stream", true}};
        return unreachable(env.error());
    }
    if (!env->contains("ok") || !(*env)["ok"].is_boolean())
        return Error{EPROTO, "malformed answer from smtpgovd: " + env->dump().substr(0, 120)};
    return env;
}

void install_interrupt_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking reads return EINTR
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_interrupted.load(); }

}  // namespace smtpgov::ctl
