#include "daemon/daemon.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <fcntl.h>
#include <net/if.h>
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/log.h"
#include "metrics/exporter.h"

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

Status arm_periodic(int tfd, uint64_t interval_ns) {
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

Result<Policy> load_policy_file(const std::string& path, const std::string& what) {
    std::ifstream in(path);
    if (!in) return Error::from_errno(what + " " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    ParseOutcome po = parse_policy_text(ss.str());
    if (!po.problems.empty()) {
        std::string msg = what + " " + path + " is invalid:";
        for (const auto& p : po.problems) msg += "\n  " + (p.path.empty() ? "/" : p.path) + ": " + p.reason;
        return Error{EINVAL, msg};
    }
    return std::move(*po.policy);
}

}  // namespace

uint64_t mono_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Daemon::~Daemon() {
    {
        std::lock_guard lock(queue_mu_);
        closing_ = true;
        for (Pending& p : queue_) p.reply.set_value(svc::error_reply("runtime", "smtpgovd is shutting down"));
        queue_.clear();
    }
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
    if (rep_) persist_reputation();
}

Result<std::unique_ptr<Daemon>> Daemon::start(const Config& cfg) {
    std::unique_ptr<Daemon> d(new Daemon());
    d->cfg_ = cfg;
    d->xdp_mode_ = *kern::parse_xdp_mode(cfg.xdp_mode);
    d->started_ms_ = d->clock_.now_ms();
    if (::geteuid() != 0) return Error{EPERM, "loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN)"};
    std::error_code ec;
    std::filesystem::create_directories(cfg.state_dir, ec);
    if (ec) return Error{ec.value(), "state_dir " + cfg.state_dir + ": " + ec.message()};
    ::chmod(cfg.state_dir.c_str(), 0700);
    if (auto s = d->init_policy(); !s) return s.error();
    if (auto s = d->init_datapath(); !s) return s.error();
    if (auto s = d->init_services(); !s) return s.error();
    d->sweep();
    ::malloc_trim(0);  // parsing a large policy leaves a lot of freed heap behind
    d->notify_status();
    sd_notify(0, "READY=1");
    log::notice("ready: " + std::to_string(d->policy_.vms.size()) + " VMs, " +
                std::to_string(d->attacher_->interfaces().size()) + " interfaces, sweep every " +
                std::to_string(cfg.sweep_interval_ms) + " ms");
    return d;
}

Status Daemon::init_policy() {
    const std::string persisted = cfg_.state_dir + "/policy.json";
    if (std::filesystem::exists(persisted)) {
        auto p = load_policy_file(persisted, "persisted policy");
        if (!p) return p.error();
        policy_ = std::move(*p);
        log::info("restored the persisted policy (" + std::to_string(policy_.vms.size()) + " VMs)");
    } else if (!cfg_.policy.empty()) {
        auto p = load_policy_file(cfg_.policy, "policy");
        if (!p) return p.error();
        policy_ = std::move(*p);
        log::info("applying policy " + cfg_.policy + " (" + std::to_string(policy_.vms.size()) + " VMs)");
    } else {
        log::warning("no policy: every source gets the default limits until one is applied");
    }
    auto saved_slots = read_json_file(cfg_.state_dir + "/slots.json");
    if (!saved_slots) return saved_slots.error();
    slots_ = SlotTable(cfg_.max_vms);
    if (*saved_slots) {
        auto t = SlotTable::from_json(**saved_slots, cfg_.max_vms);
        if (!t) return t.error();
        slots_ = std::move(*t);
    }
    auto saved_rep = read_json_file(cfg_.state_dir + "/reputation.json");
    if (!saved_rep) return saved_rep.error();
    if (*saved_rep) {
        auto r = Reputation::load(**saved_rep, clock_, policy_.reputation);
        if (!r) return Error::msg("reputation.json: " + r.error().message);
        rep_ = std::make_unique<Reputation>(std::move(*r));
    } else {
        rep_ = std::make_unique<Reputation>(clock_, policy_.reputation);
    }
    return ok_status();
}

Status Daemon::init_datapath() {
    kern::PinLayout pins(cfg_.bpffs);
    if (auto s = kern::prepare_bpffs(pins); !s) return s;
    bpffs_lock_.reset(::open(cfg_.bpffs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!bpffs_lock_ || ::flock(bpffs_lock_.get(), LOCK_EX | LOCK_NB) != 0)
        return Error::from_errno("lock " + cfg_.bpffs + " (is another smtpgovd running on it?)");
    auto dp = kern::Datapath::load({cfg_.bpffs, cfg_.max_vms, policy_.smtp_ports});
    if (!dp) return dp.error();
    dp_.emplace(std::move(*dp));
    log::info(std::string(dp_->adopted() ? "adopted the pinned maps" : "created new maps") + " under " + cfg_.bpffs);
    kern::Attacher::prune_defunct_links(pins);
    attacher_ = std::make_unique<kern::Attacher>(xdp_mode_);
    // The policy goes into the maps before any program is attached, so that a fresh
    // attach never runs against empty limits; slots new to slots.json start from zero.
    SlotTable before = slots_;
    std::vector<std::string> ids;
    for (const Vm& vm : policy_.vms) ids.push_back(vm.id);
    if (auto s = slots_.assign(ids); !s) return s;
    sync_policy_pins();
    MapPlan plan = plan_maps(plan_inputs(policy_, slots_, policy_pins_));
    for (const auto& [id, slot] : slots_.slots())
        if (before.find(id) != slot) plan.reset.insert(slot);
    for (const auto& [id, slot] : before.slots())
        if (!slots_.find(id)) plan.deactivate.insert(slot);
    if (auto s = apply_plan(*dp_, plan); !s) return Error{s.error().errnum, "write policy to maps: " + s.error().message};
    iface_entries_ = plan.ifaces.size();
    v4_entries_ = plan.v4.size();
    v6_entries_ = plan.v6.size();
    index_policy();
    attach_matching();
    // Commit point: maps created by this start are pinned only now. Auto entries
    // escalated before a restart keep their sg_auto_policy entries.
    if (auto s = dp_->commit_pins(); !s) return s;
    return persist_policy();
}

Status Daemon::init_services() {
    auto ev = svc::EventLog::open(cfg_.state_dir);
    if (!ev) return ev.error();
    events_ = std::move(*ev);
    if (!cfg_.webhook_url.empty()) webhook_ = std::make_unique<svc::Webhook>(svc::WebhookOptions{.url = cfg_.webhook_url});
    if (!cfg_.metrics_listen.empty()) {
        metrics::MetricsOptions mo;
        mo.max_vm_series = cfg_.metrics_max_vm_series;
        auto m = metrics::MetricsExporter::start(cfg_.metrics_listen, mo);
        if (!m) return m.error();
        metrics_ = std::move(*m);
        publisher_ = std::thread([this] { publisher_loop(); });
    }
    auto ring = kern::EventRing::open(*dp_, [this](const sg_event& e) { on_event(e); });
    if (!ring) return ring.error();
    ring_.emplace(std::move(*ring));
    auto links = kern::LinkWatcher::open();
    if (!links) return links.error();
    links_.emplace(std::move(*links));

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
    if (auto s = arm_periodic(sweep_timer_.get(), uint64_t{cfg_.sweep_interval_ms} * 1'000'000); !s) return s;
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
        if (kern::iface_matches(cfg_.interfaces, l.name)) govern(l.name, l.ifindex);
}

void Daemon::govern(const std::string& name, int ifindex) {
    if (attacher_->attached(name)) {
        for (const auto& s : attacher_->interfaces())
            if (s.name == name && s.ifindex == ifindex) return;
    }
    const bool probing = attacher_->libxdp_unavailable().empty();
    Status attached = ok_status();
    {
        std::optional<log::QuietLibraries> quiet;
        if (probing) quiet.emplace();  // libxdp's dispatcher probe may fail; handled below
        attached = attacher_->attach(*dp_, name, ifindex);
    }
    if (!attached) {
        log::error(attached.error().message);
        return;
    }
    if (probing && !attacher_->libxdp_unavailable().empty())
        log::info("libxdp cannot multiplex XDP here (" + attacher_->libxdp_unavailable() +
                  "): using one pinned bpf_link per interface");
    for (const auto& s : attacher_->interfaces())
        if (s.name == name)
            log::info("governing " + name + " (ifindex " + std::to_string(ifindex) + ", xdp " + s.mode + " via " +
                      s.xdp_via + ", tc via " + s.tc_via + (s.adopted ? ", adopted" : "") + ")");
    write_iface_entry(name, ifindex);
}

void Daemon::write_iface_entry(const std::string& name, int ifindex) {
    auto e = iface_entry(plan_inputs(policy_, slots_, policy_pins_), name);
    uint32_t key = static_cast<uint32_t>(ifindex);
    Status s = e ? kern::map_update(*dp_, kern::MapId::Ifaces, &key, &*e) : kern::map_delete(*dp_, kern::MapId::Ifaces, &key);
    if (!s) log::error("interface " + name + ": " + s.error().message);
}

void Daemon::on_links() {
    auto batch = links_->read();
    if (!batch) {
        log::error(batch.error().message);
        return;
    }
    for (const auto& ev : batch->events) {
        if (ev.name.empty()) continue;
        bool ours = attacher_->attached(ev.name);
        if (ev.kind == kern::LinkEvent::Kind::Removed) {
            if (ours || kern::iface_matches(cfg_.interfaces, ev.name)) {
                uint32_t key = static_cast<uint32_t>(ev.ifindex);
                if (auto s = kern::map_delete(*dp_, kern::MapId::Ifaces, &key); !s) log::error(s.error().message);
            }
            if (ours) {
                if (auto s = attacher_->forget(ev.name); !s) log::warning(s.error().message);
                log::info("interface " + ev.name + " is gone");
            }
            continue;
        }
        if (kern::iface_matches(cfg_.interfaces, ev.name)) govern(ev.name, ev.ifindex);
    }
    if (batch->resync) attach_matching();
}

int Daemon::run() {
    while (!stop_) loop_once(-1);
    sd_notify(0, "STOPPING=1");
    log::notice("stopping; enforcement stays in the kernel (pins under " + cfg_.bpffs + ")");
    persist_reputation();
    return 0;
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
            hot_tick();
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
}

void Daemon::notify_status() {
    std::array<size_t, 4> tiers{};
    for (const Vm& vm : policy_.vms) tiers[static_cast<size_t>(rep_->tier(vm.id))]++;
    std::string st = "STATUS=" + std::to_string(policy_.vms.size()) + " VMs (" + std::to_string(tiers[1]) +
                     " throttled, " + std::to_string(tiers[2]) + " steered, " + std::to_string(tiers[3]) +
                     " blocked), last sweep " + std::to_string(static_cast<int>(last_sweep_ms_)) + " ms";
    sd_notify(0, st.c_str());
}

}  // namespace smtpgov::daemon
