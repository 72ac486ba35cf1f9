#include "daemon/daemon.h"

#include <malloc.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "daemon/log.h"
#include "metrics/exporter.h"
#include "svc/commands.h"

namespace smtpgov::daemon {
namespace {

enum : uint64_t { kSweepTag = 1, kHotTag, kRingTag, kLinkTag, kWakeTag, kSignalTag };

Status epoll_add(int ep, int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return Error::from_errno("epoll_ctl");
    return ok_status();
}

Status arm_timer(int tfd, uint64_t interval_ns) {  // 0: disarm
    itimerspec its{};
    its.it_interval.tv_sec = static_cast<time_t>(interval_ns / 1'000'000'000);
    its.it_interval.tv_nsec = static_cast<long>(interval_ns % 1'000'000'000);
    its.it_value = its.it_interval;
    if (::timerfd_settime(tfd, 0, &its, nullptr) != 0) return Error::from_errno("timerfd_settime");
    return ok_status();
}

void drain_fd(int fd) {
    uint64_t v;
    while (::read(fd, &v, sizeof(v)) == sizeof(v)) {
    }
}

}  // namespace

Daemon::~Daemon() {
    {
        std::lock_guard lock(queue_mu_);
        closing_ = true;
        for (Pending& p : queue_) p.reply.set_value(svc::error_reply("runtime", "smtpgovd is shutting down"));
        queue_.clear();
    }
    dnsbl_.reset();
    fleet_.reset();  // their threads hand work to the loop: stopped first
    policy_server_.reset();
    checker_.reset();
    if (server_) server_->stop();
    if (publisher_.joinable()) {
        {
            std::lock_guard lock(pub_mu_);
            pub_stop_ = true;
        }
        pub_cv_.notify_one();
        publisher_.join();
    }
    if (webhook_) webhook_->stop();
    if (ctl_) (void)ctl_->persist_reputation();
}

Result<std::unique_ptr<Daemon>> Daemon::start(const Config& cfg) {
    std::unique_ptr<Daemon> d(new Daemon());
    d->cfg_ = cfg;
    if (::geteuid() != 0) return Error{EPERM, "loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN)"};
    std::error_code ec;
    std::filesystem::create_directories(cfg.state_dir, ec);
    if (ec) return Error{ec.value(), "state_dir " + cfg.state_dir + ": " + ec.message()};
    ::chmod(cfg.state_dir.c_str(), 0700);
    ControllerOptions co{cfg.state_dir, cfg.policy, cfg.max_vms, cfg.sweep_interval_ms, cfg.xdp_mode,
                         cfg.gateway_interfaces, cfg.auto_hold_s, {}, {}, cfg.address_taint_days, {}};
    if (auto f = fleet_options(cfg); f && f->enabled()) co.fleet_host = f->host;
    auto rules = hv::parse_interface_rules(cfg.interface_rules);
    if (!rules) return Error{EINVAL, "config: " + rules.error().message};
    co.interface_rules = std::move(*rules);
    co.address_taint_days = cfg.address_taint_days;
    auto dnsbl = dnsbl::parse_options(cfg.dnsbl);
    if (!dnsbl) return Error{EINVAL, "config: " + dnsbl.error().message};
    co.dnsbl = std::move(*dnsbl);
    auto ctl = Controller::load(co, d->clock_);
    if (!ctl) return ctl.error();
    d->ctl_ = std::move(*ctl);
    if (auto s = d->init_datapath(); !s) return s.error();
    if (auto s = d->init_services(); !s) return s.error();
    if (auto s = d->init_fleet_reader(); !s) return s.error();
    if (auto s = d->init_loop(); !s) return s.error();
    if (auto s = d->init_steering(); !s) return s.error();
    if (auto s = d->init_fleet(); !s) return s.error();
    if (auto s = d->init_dnsbl(); !s) return s.error();
    d->sweep();
    ::malloc_trim(0);  // parsing a large policy leaves a lot of freed heap behind
    d->notify_status();
    sd_notify(0, "READY=1");
    log::write(log::Entry(log::Level::Notice, log::Event::DaemonStart,
                          "ready: " + std::to_string(d->ctl_->policy().vms.size()) + " VMs, " +
                              std::to_string(d->host_->interface_count()) + " interfaces, sweep every " +
                              std::to_string(cfg.sweep_interval_ms) + " ms"));
    return d;
}

Status Daemon::init_datapath() {
    auto host = KernelHost::open(cfg_, ctl_->policy().smtp_ports);
    if (!host) return host.error();
    host_ = std::move(*host);
    // The policy goes into the maps before any program is attached, so that a fresh
    // attach never runs against empty limits.
    if (auto s = ctl_->start(host_->maps(), *host_); !s) return s;
    attach_matching();
    // Commit point: maps created by this start are pinned only now.
    return host_->commit_pins();
}

Status Daemon::init_services() {
    if (!cfg_.webhook_url.empty()) {
        webhook_ = std::make_unique<svc::Webhook>(svc::WebhookOptions{.url = cfg_.webhook_url});
        ctl_->subscribe([w = webhook_.get()](const TierChange& ch) {
            if (!ch.ticket) return;
            svc::Event t = ch.event;
            t.type = "ticket";
            w->post(svc::to_json(t));
        });
    }
    if (!cfg_.metrics_listen.empty()) {
        metrics::MetricsOptions mo;
        mo.max_vm_series = cfg_.metrics_max_vm_series;
        auto m = metrics::MetricsExporter::start(cfg_.metrics_listen, mo);
        if (!m) return m.error();
        metrics_ = std::move(*m);
        publisher_ = std::thread([this] { publisher_loop(); });
        ctl_->subscribe([m = metrics_.get()](const TierChange& ch) {
            if (ch.ticket)
                m->count_ticket(ch.event.type == "dnsbl_listed"   ? "dnsbl_listed"
                                : ch.event.to > ch.event.from ? "escalated"
                                                              : "recovered");
            if (ch.event.type == "proxy_down" || ch.event.type == "proxy_up")
                m->count_proxy_transition(ch.event.type == "proxy_up" ? "steer" : ch.event.evidence.value("fail_mode", ""));
        });
        ctl_->on_snapshot = [this](Snapshot s) { publish(std::move(s)); };
        ctl_->on_blocklist = [m = metrics_.get()](const std::string& name) { m->count_blocklist_sample(name); };
    }
    auto ring = kern::EventRing::open(host_->datapath(), [this](const sg_event& e) { ctl_->on_event(e); });
    if (!ring) return ring.error();
    ring_.emplace(std::move(*ring));
    auto links = kern::LinkWatcher::open();
    if (!links) return links.error();
    links_.emplace(std::move(*links));
    return ok_status();
}

Status Daemon::init_loop() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    sweep_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    hot_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    signals_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!epoll_ || !sweep_timer_ || !hot_timer_ || !wake_ || !signals_) return Error::from_errno("event loop fds");
    for (auto [fd, tag] : {std::pair{sweep_timer_.get(), kSweepTag}, {hot_timer_.get(), kHotTag},
                           {ring_->fd(), kRingTag}, {links_->fd(), kLinkTag}, {wake_.get(), kWakeTag},
                           {signals_.get(), kSignalTag}})
        if (auto s = epoll_add(epoll_.get(), fd, tag); !s) return s;
    if (auto s = arm_timer(sweep_timer_.get(), uint64_t{cfg_.sweep_interval_ms} * 1'000'000); !s) return s;
    // A link that appeared between the first listing and the watcher: list once more.
    attach_matching();
    svc::ControlServerOptions so;
    so.path = cfg_.socket;
    auto server = svc::ControlServer::start(so, [this](const nlohmann::json& req) { return submit(req); });
    if (!server) return server.error();
    server_ = std::move(*server);
    return ok_status();
}

void Daemon::attach_matching() {
    for (const auto& l : kern::LinkWatcher::list())
        if (host_->matches(l.name) && host_->govern(l.name, l.ifindex)) ctl_->iface_up(l.name, l.ifindex);
}

void Daemon::on_links() {
    auto batch = links_->read();
    if (!batch) {
        log::error(batch.error().message);
        return;
    }
    for (const auto& ev : batch->events) {
        if (ev.name.empty()) continue;
        if (ev.kind == kern::LinkEvent::Kind::Removed) {
            bool ours = host_->forget(ev.name);
            if (ours || host_->matches(ev.name)) ctl_->iface_down(ev.ifindex);
            continue;
        }
        // A governed interface stays governed when renamed, even out of the patterns
        // (fail closed); it is re-announced under its new name.
        if ((host_->matches(ev.name) || host_->governs(ev.ifindex)) && host_->govern(ev.name, ev.ifindex))
            ctl_->iface_up(ev.name, ev.ifindex);
    }
    if (batch->resync) attach_matching();
}

int Daemon::run() {
    while (!stop_) loop_once(-1);
    sd_notify(0, "STOPPING=1");
    log::write(log::Entry(log::Level::Notice, log::Event::DaemonStop,
                          "stopping; enforcement stays in the kernel (pins under " + cfg_.bpffs + ")"));
    (void)ctl_->persist_reputation();
    return 0;
}

void Daemon::sweep() {
    ctl_->sweep();
    fleet_tick();
    if (++sweeps_ % 10 == 0) {
        notify_status();
        ::malloc_trim(0);  // per-sweep snapshots of large fleets leave freed heap in the arenas
    }
}

void Daemon::arm_hot_timer() {
    const bool want = ctl_->hot();
    if (want == hot_armed_) return;
    if (auto s = arm_timer(hot_timer_.get(), want ? Sweeper::kHotIntervalNs : 0); !s) {
        log::error("hot timer: " + s.error().message);
        return;
    }
    hot_armed_ = want;
}

void Daemon::loop_once(int timeout_ms) {
    epoll_event evs[8];
    int n = ::epoll_wait(epoll_.get(), evs, 8, timeout_ms);
    if (n < 0 && errno != EINTR) {
        log::error(Error::from_errno("epoll_wait").message);
        stop_ = true;
        return;
    }
    for (int i = 0; i < n; ++i) {
        switch (evs[i].data.u64) {
        case kRingTag:
            if (auto r = ring_->consume(); !r) log::error(r.error().message);
            break;
        case kHotTag:
            drain_fd(hot_timer_.get());
            ctl_->hot_tick();
            break;
        case kSweepTag:
            drain_fd(sweep_timer_.get());
            sweep();
            break;
        case kLinkTag: on_links(); break;
        case kWakeTag:
            drain_fd(wake_.get());
            drain_commands();
            break;
        case kSignalTag: {
            signalfd_siginfo si{};
            while (::read(signals_.get(), &si, sizeof(si)) == sizeof(si)) {
                log::info(std::string("got ") + strsignal(static_cast<int>(si.ssi_signo)));
                stop_ = true;
            }
            break;
        }
        }
    }
    arm_hot_timer();
}

void Daemon::notify_status() {
    const auto t = ctl_->tier_counts();
    std::string st = "STATUS=" + std::to_string(t[0] + t[1] + t[2] + t[3]) + " VMs (" + std::to_string(t[1]) +
                     " throttled, " + std::to_string(t[2]) + " steered, " + std::to_string(t[3]) +
                     " blocked), last sweep " + std::to_string(static_cast<int>(ctl_->last_sweep_ms())) + " ms";
    sd_notify(0, st.c_str());
}

svc::Reply Daemon::submit(const nlohmann::json& req) {
    std::future<svc::Reply> answer;
    {
        std::lock_guard lock(queue_mu_);
        if (closing_) return svc::error_reply("runtime", "smtpgovd is shutting down");
        queue_.push_back(Pending{req, {}});
        answer = queue_.back().reply.get_future();
    }
    uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one)) return svc::error_reply("runtime", "cannot wake the daemon loop");
    // A change is answered when it is done, however long that takes (a fleet-size
    // policy): giving up would not undo it. Shutting down answers every queued request.
    const bool change = req.contains("cmd") && req["cmd"].is_string() &&
                        svc::cmd::changes_state(req["cmd"].get<std::string>());
    if (!change && answer.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
        return svc::error_reply("runtime", "smtpgovd did not answer within 30 s");
    return with_fleet_addresses(req, answer.get());  // ip.check / ip.show in a fleet (daemon_fleet.cpp)
}

void Daemon::drain_commands() {
    std::deque<Pending> batch;
    std::deque<std::function<void()>> tasks;
    {
        std::lock_guard lock(queue_mu_);
        batch.swap(queue_);
        tasks.swap(tasks_);
    }
    for (auto& t : tasks) t();
    for (Pending& p : batch) {
        try {
            p.reply.set_value(ctl_->handle(p.request));
        } catch (const std::exception& e) {
            log::error(std::string("control request failed: ") + e.what());
            p.reply.set_value(svc::error_reply("runtime", e.what()));
        }
    }
    if (!batch.empty()) configure_checker();  // a policy may have moved the proxy
}

void Daemon::publish(Snapshot snap) {
    {
        std::lock_guard lock(pub_mu_);
        pub_next_ = std::move(snap);
    }
    pub_cv_.notify_one();
}

void Daemon::publisher_loop() {
    std::unique_lock lock(pub_mu_);
    for (;;) {
        pub_cv_.wait(lock, [this] { return pub_stop_ || pub_next_; });
        if (pub_stop_) return;
        Snapshot snap = std::move(*pub_next_);
        pub_next_.reset();
        lock.unlock();
        metrics_->update(snap);
        lock.lock();
    }
}

}  // namespace smtpgov::daemon
