// The daemon's side of steering: the proxy health checker's thread and the policy
// service's thread hand their work to the loop thread (post), where the Controller
// decides and answers; neither touches the Controller itself.
#include <unistd.h>

#include "core/ip_prefix.h"
#include "daemon/daemon.h"
#include "daemon/log.h"

namespace smtpgov::daemon {

void Daemon::post(std::function<void()> task) {
    {
        std::lock_guard lock(queue_mu_);
        if (closing_) return;
        tasks_.push_back(std::move(task));
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

void Daemon::configure_checker() {
    if (!checker_) return;
    const auto t = ctl_->proxy_targets();
    checker_->configure(t.endpoints, t.interval_s);
}

Status Daemon::init_steering() {
    checker_ = std::make_unique<svc::ProxyChecker>([this](const Endpoint& e, bool up, const std::string& detail) {
        post([this, e, up, detail] { ctl_->proxy_health(e, up, detail); });
    });
    configure_checker();
    if (cfg_.policy_service_listen.empty()) return ok_status();
    auto at = Endpoint::parse(cfg_.policy_service_listen);  // checked with the config
    if (!at) return Error{EINVAL, "policy_service_listen: " + at.error().message};
    std::string token;
    if (!cfg_.policy_service_token_file.empty()) {
        auto t = svc::policy::read_token_file(cfg_.policy_service_token_file);
        if (!t) return Error{EINVAL, "policy_service_token_file: " + t.error().message};
        token = std::move(*t);
    } else {
        log::warning("policy service: spam reports are taken from any client that reaches " +
                     cfg_.policy_service_listen + " (set policy_service_token_file)");
    }
    svc::PolicyServerOptions o;
    o.addr = at->addr;
    o.port = at->port;
    // a report without the token is refused here, on the server's thread: it never
    // reaches the loop, so nothing it names is looked up or charged
    auto server = svc::PolicyServer::start(o, [this, token](svc::policy::Request r, svc::PolicyDone done) {
        if (!svc::policy::authorised(r, token)) return done("REJECT smtpgov: a report needs the policy service's token");
        post([this, r = std::move(r), done = std::move(done)] { done(ctl_->policy_answer(r)); });
    });
    if (!server)
        return Error{server.error().errnum, "policy service on " + cfg_.policy_service_listen + ": " + server.error().message};
    policy_server_ = std::move(*server);
    log::info("policy service on " + cfg_.policy_service_listen);
    return ok_status();
}

}  // namespace smtpgov::daemon
