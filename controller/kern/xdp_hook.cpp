#include "kern/xdp_hook.h"

#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <vector>

#include "kern/if_names.h"

namespace smtpgov::kern {
namespace {

Result<bpf_link_info> link_info(int fd) {
    bpf_link_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return Error::from_errno("inspect link", errno);
    return info;
}

std::string_view query_mode(int ifindex) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) == 0 && q.attach_mode == XDP_ATTACHED_SKB) return "generic";
    return "native";
}

std::vector<xdp_attach_mode> libxdp_modes(XdpMode m) {
    switch (m) {
    case XdpMode::Native: return {XDP_MODE_NATIVE};
    case XdpMode::Generic: return {XDP_MODE_SKB};
    case XdpMode::Auto: break;
    }
    return {XDP_MODE_NATIVE, XDP_MODE_SKB};
}

// Runs fn(mp) on the interface's libxdp dispatcher; false when there is none.
template <typename Fn>
bool with_dispatcher(int ifindex, Fn&& fn) {
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (libxdp_get_error(mp) || !mp) return false;
    bool usable = !xdp_multiprog__is_legacy(mp);
    if (usable) fn(mp);
    xdp_multiprog__close(mp);
    return usable;
}

}  // namespace

void XdpProgramCloser::operator()(xdp_program* p) const { xdp_program__close(p); }

std::optional<XdpMode> parse_xdp_mode(std::string_view s) {
    if (s == "native") return XdpMode::Native;
    if (s == "generic") return XdpMode::Generic;
    if (s == "auto") return XdpMode::Auto;
    return std::nullopt;
}

std::string_view to_string(XdpMode m) {
    switch (m) {
    case XdpMode::Native: return "native";
    case XdpMode::Generic: return "generic";
    case XdpMode::Auto: return "auto";
    }
    return "auto";
}

XdpHook::~XdpHook() = default;

Result<XdpHook> XdpHook::adopt_link(const Datapath& dp, const std::string& ifname, int ifindex) {
    std::string path = dp.pins().xdp_link(ifname);
    auto fd = open_pin(path);
    if (!fd) return fd.error();
    auto info = link_info(fd->get());
    if (!info) return info.error();
    if (info->type != BPF_LINK_TYPE_XDP) return Error::msg(path + " is not an XDP link");
    if (static_cast<int>(info->xdp.ifindex) != ifindex) {
        // The interface it was made for is gone (or was recreated): the link is defunct.
        if (auto s = unpin(path); !s) return s.error();
        return Error{ENOENT, path + ": link of a vanished interface, unpinned"};
    }
    if (bpf_link_update(fd->get(), dp.xdp_prog_fd(), nullptr) != 0)
        return Error::from_errno("update xdp link " + path, errno);
    XdpHook h;
    h.kind_ = Kind::Link;
    h.ifindex_ = ifindex;
    h.link_ = std::move(*fd);
    h.link_id_ = info->id;
    h.mode_ = query_mode(ifindex);
    h.adopted_ = true;
    return h;
}

Result<XdpHook> XdpHook::create_link(const Datapath& dp, int ifindex, XdpMode mode) {
    std::vector<std::pair<__u32, const char*>> tries;
    if (mode != XdpMode::Generic) tries.emplace_back(XDP_FLAGS_DRV_MODE, "native");
    if (mode != XdpMode::Native) tries.emplace_back(XDP_FLAGS_SKB_MODE, "generic");
    Error last = Error::msg("no xdp mode to try");
    for (auto [flags, name] : tries) {
        LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = flags);
        int fd = bpf_link_create(dp.xdp_prog_fd(), ifindex, BPF_XDP, &lo);
        if (fd < 0) {
            last = Error::from_errno(std::string("xdp link (") + name + ")", errno);
            if (errno == EBUSY) last.message += " (another XDP program is attached without libxdp/bpf_link)";
            continue;
        }
        XdpHook h;
        h.kind_ = Kind::Link;
        h.ifindex_ = ifindex;
        h.link_.reset(fd);
        auto info = link_info(fd);
        h.link_id_ = info ? info->id : 0;
        h.mode_ = name;
        return h;
    }
    return last;
}

Result<XdpHook> XdpHook::create_libxdp(const Datapath& dp, int ifindex, XdpMode mode) {
    auto obj = dp.open_clone();
    if (!obj) return obj.error();
    DECLARE_LIBXDP_OPTS(xdp_program_opts, po, .obj = obj->get(), .prog_name = kXdpProgName.data());
    std::unique_ptr<xdp_program, XdpProgramCloser> prog(xdp_program__create(&po));
    if (long err = libxdp_get_error(prog.get()); err || !prog) {
        prog.release();
        return Error::from_errno("libxdp program", err ? static_cast<int>(-err) : EINVAL);
    }
    int err = -EINVAL;
    xdp_attach_mode used = XDP_MODE_UNSPEC;
    for (xdp_attach_mode m : libxdp_modes(mode)) {
        err = xdp_program__attach(prog.get(), ifindex, m, 0);
        if (err == 0) {
            used = m;
            break;
        }
    }
    if (err) return Error::from_errno("libxdp attach", -err);
    if (!with_dispatcher(ifindex, [](xdp_multiprog*) {})) {
        xdp_program__detach(prog.get(), ifindex, used, 0);
        return Error{EOPNOTSUPP, "libxdp attach: no multi-program dispatcher on this kernel"};
    }
    XdpHook h;
    h.kind_ = Kind::Libxdp;
    h.ifindex_ = ifindex;
    h.mode_ = used == XDP_MODE_SKB ? "generic" : "native";
    h.attach_mode_ = used;
    h.obj_ = std::move(*obj);
    h.prog_ = std::move(prog);
    return h;
}

Result<XdpHook> XdpHook::adopt_libxdp(const Datapath& dp, int ifindex, XdpMode mode) {
    uint32_t old_id = 0;
    xdp_attach_mode old_mode = XDP_MODE_UNSPEC;
    with_dispatcher(ifindex, [&](xdp_multiprog* mp) {
        for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
            if (kXdpProgName == xdp_program__name(p)) old_id = xdp_program__id(p);
        old_mode = xdp_multiprog__attach_mode(mp);
    });
    if (!old_id) return Error{ENOENT, "no smtpgov program behind a libxdp dispatcher"};
    auto fresh = create_libxdp(dp, ifindex, old_mode == XDP_MODE_SKB ? XdpMode::Generic
                                            : old_mode == XDP_MODE_NATIVE ? XdpMode::Native : mode);
    if (!fresh) return fresh.error();
    std::unique_ptr<xdp_program, XdpProgramCloser> old(xdp_program__from_id(old_id));
    if (libxdp_get_error(old.get()) || !old) {
        old.release();
        return Error{ESRCH, "libxdp: old smtpgov program vanished"};
    }
    if (int err = xdp_program__detach(old.get(), ifindex, old_mode, 0); err)
        return Error::from_errno("libxdp detach old program", -err);
    fresh->adopted_ = true;
    return fresh;
}

Status XdpHook::pin(const std::string& path) const {
    if (kind_ != Kind::Link) return ok_status();  // libxdp pins its dispatcher itself
    return pin_fd(link_.get(), path);
}

Status XdpHook::update(const Datapath& dp) {
    if (kind_ == Kind::Link) {
        if (bpf_link_update(link_.get(), dp.xdp_prog_fd(), nullptr) != 0)
            return Error::from_errno("update xdp link", errno);
        return ok_status();
    }
    auto fresh = create_libxdp(dp, ifindex_, attach_mode_ == XDP_MODE_SKB ? XdpMode::Generic : XdpMode::Native);
    if (!fresh) return fresh.error();
    if (int err = xdp_program__detach(prog_.get(), ifindex_, static_cast<xdp_attach_mode>(attach_mode_), 0); err) {
        Error e = Error::from_errno("libxdp detach old program", -err);
        if (auto undo = fresh->detach(); !undo) e.message += " (rollback: " + undo.error().message + ")";
        return e;
    }
    *this = std::move(*fresh);
    return ok_status();
}

Status XdpHook::detach() {
    if (kind_ == Kind::Link) {
        if (link_ && bpf_link_detach(link_.get()) != 0 && errno != ENOLINK)
            return Error::from_errno("detach xdp link", errno);
        return ok_status();
    }
    if (int err = xdp_program__detach(prog_.get(), ifindex_, static_cast<xdp_attach_mode>(attach_mode_), 0); err)
        return Error::from_errno("libxdp detach", -err);
    return ok_status();
}

uint32_t XdpHook::prog_id() const {
    if (kind_ == Kind::Libxdp) return prog_ ? xdp_program__id(prog_.get()) : 0;
    auto info = link_info(link_.get());
    return info ? info->prog_id : 0;
}

Status detach_libxdp_programs() {
    auto names = list_interfaces();
    if (!names) return Error::from_errno("list interfaces");
    Status result = ok_status();
    for (auto* n = names.get(); n->if_index; ++n) {
        for (;;) {  // one program per pass: the dispatcher is rebuilt by each detach
            uint32_t id = 0;
            xdp_attach_mode mode = XDP_MODE_UNSPEC;
            with_dispatcher(static_cast<int>(n->if_index), [&](xdp_multiprog* mp) {
                for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
                    if (kXdpProgName == xdp_program__name(p)) id = xdp_program__id(p);
                mode = xdp_multiprog__attach_mode(mp);
            });
            if (!id) break;
            xdp_program* p = xdp_program__from_id(id);
            int err = libxdp_get_error(p) ? -ESRCH : xdp_program__detach(p, static_cast<int>(n->if_index), mode, 0);
            if (!libxdp_get_error(p)) xdp_program__close(p);
            if (err) {
                result = Error::from_errno(std::string("libxdp detach from ") + n->if_name, -err);
                break;
            }
        }
    }
    return result;
}

}  // namespace smtpgov::kern
