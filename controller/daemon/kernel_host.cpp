#include "daemon/kernel_host.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/file.h>

#include "daemon/log.h"
#include "kern/link_watcher.h"

namespace smtpgov::daemon {

Result<std::unique_ptr<KernelHost>> KernelHost::open(const Config& cfg, const std::vector<uint16_t>& smtp_ports) {
    std::unique_ptr<KernelHost> h(new KernelHost());
    h->cfg_ = cfg;
    kern::PinLayout pins(cfg.bpffs);
    if (auto s = kern::prepare_bpffs(pins); !s) return s.error();
    h->bpffs_lock_.reset(::open(cfg.bpffs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!h->bpffs_lock_ || ::flock(h->bpffs_lock_.get(), LOCK_EX | LOCK_NB) != 0)
        return Error::from_errno("lock " + cfg.bpffs + " (is another smtpgovd running on it?)");
    auto dp = kern::Datapath::load({cfg.bpffs, cfg.max_vms, smtp_ports});
    if (!dp) return dp.error();
    h->dp_.emplace(std::move(*dp));
    log::info(std::string(h->dp_->adopted() ? "adopted the pinned maps" : "created new maps") + " under " + cfg.bpffs);
    kern::Attacher::prune_defunct_links(pins);
    h->attacher_ = std::make_unique<kern::Attacher>(*kern::parse_xdp_mode(cfg.xdp_mode));
    h->maps_ = std::make_unique<KernelMaps>(*h->dp_);
    return h;
}

bool KernelHost::matches(const std::string& name) const { return kern::iface_matches(cfg_.interfaces, name); }

void KernelHost::attach_matching() {
    for (const auto& l : kern::LinkWatcher::list())
        if (matches(l.name)) govern(l.name, l.ifindex);
}

bool KernelHost::govern(const std::string& name, int ifindex) {
    for (const auto& s : attacher_->interfaces())
        if (s.name == name && s.ifindex == ifindex && s.attached) return true;
    const bool probing = attacher_->libxdp_unavailable().empty();
    Status attached = ok_status();
    {
        std::optional<log::QuietLibraries> quiet;
        if (probing) quiet.emplace();  // libxdp's dispatcher probe may fail; handled below
        attached = attacher_->attach(*dp_, name, ifindex);
    }
    if (!attached) {
        log::error(attached.error().message);
        return false;
    }
    if (probing && !attacher_->libxdp_unavailable().empty())
        log::info("libxdp cannot multiplex XDP here (" + attacher_->libxdp_unavailable() +
                  "): using one pinned bpf_link per interface");
    for (const auto& s : attacher_->interfaces())
        if (s.name == name)
            log::info("governing " + name + " (ifindex " + std::to_string(ifindex) + ", xdp " + s.mode + " via " +
                      s.xdp_via + ", tc via " + s.tc_via + (s.adopted ? ", adopted" : "") + ")");
    return true;
}

bool KernelHost::forget(const std::string& name) {
    if (!attacher_->attached(name)) return false;
    if (auto s = attacher_->forget(name); !s) log::warning(s.error().message);
    log::info("interface " + name + " is gone");
    return true;
}

int KernelHost::ifindex(const std::string& name) const { return static_cast<int>(if_nametoindex(name.c_str())); }

std::string KernelHost::ifname(uint32_t ifindex) const {
    char name[IF_NAMESIZE] = {};
    return if_indextoname(ifindex, name) ? std::string(name) : std::string();
}

std::vector<std::pair<std::string, int>> KernelHost::governed() const {
    std::vector<std::pair<std::string, int>> out;
    for (const auto& l : kern::LinkWatcher::list())
        if (matches(l.name)) out.emplace_back(l.name, l.ifindex);
    return out;
}

Status KernelHost::load_ports(const std::vector<uint16_t>& ports) {
    auto r = dp_->reload(ports);
    if (!r) return r.error();
    next_.emplace(std::move(*r));
    return ok_status();
}

Status KernelHost::swap_ports() {
    if (!next_) return Error::msg("no programs loaded for the new smtp_ports");
    if (auto s = attacher_->upgrade(*dp_, *next_); !s) return s;
    dp_ = std::move(next_);  // the old instance's programs are no longer attached anywhere
    next_.reset();
    maps_->rebind(*dp_);
    return ok_status();
}

nlohmann::json KernelHost::status() const {
    nlohmann::json ifaces = nlohmann::json::array();
    for (const auto& s : attacher_->interfaces()) {
        nlohmann::json i = {{"name", s.name}, {"ifindex", s.ifindex}, {"mode", s.mode}, {"attached", s.attached},
                            {"xdp_via", s.xdp_via}, {"tc_via", s.tc_via}, {"adopted", s.adopted},
                            {"xdp_link_id", s.xdp_link_id}, {"tc_link_id", s.tc_link_id},
                            {"xdp_prog_id", s.xdp_prog_id}, {"tc_prog_id", s.tc_prog_id}};
        if (!s.error.empty()) i["error"] = s.error;
        ifaces.push_back(std::move(i));
    }
    return {{"interfaces", ifaces},
            {"programs", {{"xdp_prog_id", dp_->xdp_prog_id()}, {"tc_prog_id", dp_->tc_prog_id()}}},
            {"libxdp", attacher_->libxdp_unavailable().empty() ? "usable or untried" : attacher_->libxdp_unavailable()}};
}

}  // namespace smtpgov::daemon
