#include "kern/attacher.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace smtpgov::kern {
namespace {

// XDP and TCX link infos both carry the target ifindex right after the common header;
// it reads 0 once the interface is gone and the kernel has detached the link.
int link_ifindex(int fd) {
    struct {
        __u32 type, id, prog_id, pad;
        __u32 ifindex;
        __u8 rest[64];
    } info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return -1;
    return static_cast<int>(info.ifindex);
}

Error with_context(const std::string& what, const Error& e) { return Error{e.errnum, what + ": " + e.message}; }

// Rollback steps cannot change the outcome; their failures are appended to the error.
void note_failure(const Status& s, std::string& notes) {
    if (!s) notes += " " + s.error().message + ";";
}

}  // namespace

Result<XdpHook> Attacher::attach_xdp(const Datapath& dp, const std::string& ifname, int ifindex) {
    auto adopted = XdpHook::adopt_link(dp, ifname, ifindex);
    if (adopted || adopted.error().errnum != ENOENT) return adopted;
    auto behind_libxdp = XdpHook::adopt_libxdp(dp, ifindex, mode_);
    if (behind_libxdp || behind_libxdp.error().errnum != ENOENT) return behind_libxdp;
    if (libxdp_error_.empty()) {
        auto via_libxdp = XdpHook::create_libxdp(dp, ifindex, mode_);
        if (via_libxdp) return via_libxdp;
        // Remembered: every later attach goes straight to a bpf_link.
        libxdp_error_ = via_libxdp.error().message;
    }
    return XdpHook::create_link(dp, ifindex, mode_);
}

Result<TcHook> Attacher::attach_tc(const Datapath& dp, const std::string& ifname, int ifindex) {
    auto adopted = TcHook::adopt(dp, ifname, ifindex);
    if (adopted || adopted.error().errnum != ENOENT) return adopted;
    return TcHook::create(dp, ifindex, allow_tcx_);
}

// The interface we hold under `from` is now called `to` (same ifindex): its hooks and
// pins follow the name, so renaming an interface and giving its old name to a new one
// keeps both governed.
Status Attacher::rename(const std::string& from, const std::string& to) {
    auto it = ifaces_.find(from);
    if (it == ifaces_.end() || from == to) return ok_status();
    if (ifaces_.count(to))
        if (auto s = forget(to); !s) return s;  // a stale entry of an interface gone under that name
    std::string notes;
    for (auto [old_path, new_path] : {std::pair{pins_.xdp_link(from), pins_.xdp_link(to)},
                                      std::pair{pins_.tc_link(from), pins_.tc_link(to)}})
        if (::rename(old_path.c_str(), new_path.c_str()) != 0 && errno != ENOENT)
            notes += " move pin " + old_path + ": " + std::strerror(errno) + ";";
    ifaces_[to] = std::move(it->second);
    ifaces_.erase(from);
    if (!notes.empty()) return Error::msg("rename " + from + " to " + to + ":" + notes);
    return ok_status();
}

const std::string* Attacher::name_of(int ifindex) const {
    for (const auto& [name, e] : ifaces_)
        if (e.ifindex == ifindex) return &name;
    return nullptr;
}

Status Attacher::attach(const Datapath& dp, const std::string& ifname, int ifindex) {
    pins_ = dp.pins();
    if (const std::string* old = name_of(ifindex); old && *old != ifname)
        if (auto s = rename(std::string(*old), ifname); !s) return s;
    if (auto it = ifaces_.find(ifname); it != ifaces_.end()) {
        if (it->second.ifindex == ifindex && it->second.xdp && it->second.tc) return ok_status();
        // recreated under the same name, or an earlier failure: start over
        if (auto s = forget(ifname); !s) return s;
    }
    Entry& e = ifaces_[ifname];
    e.ifindex = ifindex;
    auto fail = [&](const std::string& what, const Error& err, std::string rollback) {
        Error out = with_context(what, err);
        if (!rollback.empty()) out.message += " (rollback:" + rollback + ")";
        e.error = out.message;
        return out;
    };
    auto xdp = attach_xdp(dp, ifname, ifindex);
    if (!xdp) return fail("attach xdp to " + ifname, xdp.error(), "");
    auto tc = attach_tc(dp, ifname, ifindex);
    if (!tc) {
        std::string notes;
        if (!xdp->adopted()) note_failure(xdp->detach(), notes);
        return fail("attach tc to " + ifname, tc.error(), notes);
    }
    // Commit point: pins for the hooks that did not come from pins.
    Status pinned = ok_status();
    if (!xdp->adopted()) pinned = xdp->pin(dp.pins().xdp_link(ifname));
    if (pinned && !tc->adopted()) pinned = tc->pin(dp.pins().tc_link(ifname));
    if (!pinned) {
        std::string notes;
        if (!xdp->adopted()) {
            note_failure(xdp->detach(), notes);
            note_failure(unpin(dp.pins().xdp_link(ifname)), notes);
        }
        if (!tc->adopted()) note_failure(tc->detach(), notes);
        return fail("attach " + ifname, pinned.error(), notes);
    }
    e.xdp = std::move(*xdp);
    e.tc = std::move(*tc);
    e.error.clear();
    return ok_status();
}

Status Attacher::forget(const std::string& ifname) {
    auto it = ifaces_.find(ifname);
    if (it == ifaces_.end()) return ok_status();
    ifaces_.erase(it);
    std::string notes;
    note_failure(unpin(pins_.xdp_link(ifname)), notes);
    note_failure(unpin(pins_.tc_link(ifname)), notes);
    if (!notes.empty()) return Error::msg("forget " + ifname + ":" + notes);
    return ok_status();
}

Status Attacher::detach(const std::string& ifname) {
    auto it = ifaces_.find(ifname);
    if (it == ifaces_.end()) return ok_status();
    std::string notes;
    if (it->second.xdp) note_failure(it->second.xdp->detach(), notes);
    if (it->second.tc) note_failure(it->second.tc->detach(), notes);
    note_failure(forget(ifname), notes);
    if (!notes.empty()) return Error::msg("detach " + ifname + ":" + notes);
    return ok_status();
}

Status Attacher::upgrade(const Datapath& current, const Datapath& next) {
    std::vector<Entry*> done;
    for (auto& [name, e] : ifaces_) {
        if (!e.xdp || !e.tc) continue;
        std::string notes;
        Status s = e.xdp->update(next);
        if (s) {
            s = e.tc->update(next);
            if (!s) note_failure(e.xdp->update(current), notes);
        }
        if (!s) {
            for (Entry* d : done) {
                note_failure(d->xdp->update(current), notes);
                note_failure(d->tc->update(current), notes);
            }
            Error err = with_context("upgrade programs on " + name, s.error());
            if (!notes.empty()) err.message += " (rollback:" + notes + ")";
            return err;
        }
        done.push_back(&e);
    }
    return ok_status();
}

std::vector<IfaceState> Attacher::interfaces() const {
    std::vector<IfaceState> out;
    for (const auto& [name, e] : ifaces_) {
        IfaceState s;
        s.name = name;
        s.ifindex = e.ifindex;
        s.attached = e.xdp && e.tc;
        s.error = e.error;
        if (e.xdp) {
            s.mode = e.xdp->mode();
            s.xdp_via = e.xdp->kind() == XdpHook::Kind::Link ? "link" : "libxdp";
            s.xdp_link_id = e.xdp->link_id();
            s.xdp_prog_id = e.xdp->prog_id();
            s.adopted = e.xdp->adopted();
        }
        if (e.tc) {
            s.tc_via = e.tc->kind() == TcHook::Kind::Tcx ? "tcx" : "clsact";
            s.tc_link_id = e.tc->link_id();
            s.tc_prog_id = e.tc->prog_id();
        }
        out.push_back(std::move(s));
    }
    return out;
}

bool Attacher::attached(const std::string& ifname) const {
    auto it = ifaces_.find(ifname);
    return it != ifaces_.end() && it->second.xdp && it->second.tc;
}

void Attacher::prune_defunct_links(const PinLayout& pins) {
    for (const auto& name : list_pins(pins.links_dir())) {
        std::string path = pins.links_dir() + "/" + name;
        auto fd = open_pin(path);
        if (fd && link_ifindex(fd->get()) == 0) (void)unpin(path);  // best effort: re-tried next start
    }
}

Status Attacher::remove_everything(const PinLayout& pins) {
    Status result = ok_status();
    auto keep = [&](Status s) {
        if (!s && result) result = std::move(s);
    };
    for (const auto& name : list_pins(pins.links_dir())) {
        std::string path = pins.links_dir() + "/" + name;
        if (auto fd = open_pin(path); fd && bpf_link_detach(fd->get()) != 0 && errno != ENOLINK && errno != EINVAL)
            keep(Error::from_errno("detach " + path, errno));
        keep(unpin(path));
    }
    keep(detach_libxdp_programs());
    keep(detach_clsact_filters());
    keep(Datapath::remove_map_pins(pins));
    for (const std::string& dir : {pins.links_dir(), pins.maps_dir(), pins.root()})
        if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) keep(Error::from_errno("remove " + dir));
    return result;
}

}  // namespace smtpgov::kern
