#include "client.h"

#include <signal.h>

#include <atomic>
#include <cerrno>

#include "svc/commands.h"
#include "svc/control_client.h"

namespace smtpgov::ctl {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) { g_interrupted.store(true); }

Error unreachable(const Error& e) { return Error{e.errnum, "cannot reach smtpgovd (" + e.message + ")"}; }

std::string duration_text(int ms) {
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

// How to see whether a state change that got no answer happened anyway.
std::string check_hint(const nlohmann::json& request) {
    std::string cmd = request.value("cmd", std::string());
    if (cmd == svc::cmd::kPolicyApply) return "check with 'smtpgovctl policy get'";
    std::string id = request.value("id", std::string());
    return id.empty() ? "check with 'smtpgovctl status'" : "check with 'smtpgovctl vm show " + id + "'";
}

}  // namespace

Result<nlohmann::json> SocketTransport::call(const nlohmann::json& request) {
    const std::string cmd = request.value("cmd", std::string());
    const bool changes = svc::cmd::changes_state(cmd);
    if (changes) install_interrupt_handler();  // Ctrl-C says what may have happened
    svc::RequestOptions o;
    o.send_timeout_ms = send_timeout_ms_;
    o.reply_timeout_ms = changes ? -1 : reply_timeout_ms_;
    o.stop_on_eintr = true;
    auto ex = svc::exchange(path_, request, o);
    if (!ex.reply) {
        const Error& e = ex.reply.error();
        if (!ex.sent && e.errnum == EINTR)
            return Error{e.errnum, "interrupted before smtpgovd had the whole request: nothing was done"};
        if (!ex.sent) return unreachable(e);  // the daemon never had the whole request
        if (e.errnum == ETIMEDOUT)
            return Error{e.errnum, "smtpgovd did not answer " + cmd + " within " + duration_text(reply_timeout_ms_)};
        if (!changes) return unreachable(e);
        if (e.errnum == EINTR)
            return Error{e.errnum, "interrupted while smtpgovd works on " + cmd +
                                       ": the daemon may still apply it (" + check_hint(request) + ")"};
        return Error{e.errnum, "no answer from smtpgovd to " + cmd + " (" + e.message +
                                   "): it may or may not have been applied (" + check_hint(request) + ")"};
    }
    auto& env = *ex.reply;
    if (!env.contains("ok") || !env["ok"].is_boolean())
        return Error{EPROTO, "malformed answer from smtpgovd: " + env.dump().substr(0, 120)};
    return env;
}

Result<nlohmann::json> SocketTransport::stream(const nlohmann::json& request,
                                               const std::function<bool(const nlohmann::json&)>& on_line) {
    auto env = svc::request_stream(path_, request, reply_timeout_ms_, on_line);
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
