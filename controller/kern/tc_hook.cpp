#include "kern/tc_hook.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>

#include "kern/if_names.h"

namespace smtpgov::kern {
namespace {

// Not in the 6.1 uapi headers libbpf 1.1 is built against; stable kernel ABI since 6.6.
constexpr unsigned kBpfTcxEgress = 47;       // BPF_TCX_EGRESS
constexpr unsigned kBpfLinkTypeTcx = 11;     // BPF_LINK_TYPE_TCX
constexpr __u32 kTcHandle = 0x5347;           // "SG"
constexpr __u32 kTcPriority = 1;

struct LinkInfoTcx {  // bpf_link_info prefix with the tcx union member (uapi >= 6.6)
    __u32 type, id, prog_id, pad;
    __u32 ifindex, attach_type;
    __u8 rest[64];
};

Result<LinkInfoTcx> tcx_info(int fd) {
    LinkInfoTcx info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return Error::from_errno("inspect tc link", errno);
    return info;
}

std::string prog_name(__u32 id) {
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    if (!fd) return {};
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    return bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 ? info.name : "";
}

bpf_tc_hook egress_hook(int ifindex) {
    bpf_tc_hook h{};
    h.sz = sizeof(h);
    h.ifindex = ifindex;
    h.attach_point = BPF_TC_EGRESS;
    return h;
}

bpf_tc_opts our_filter(int prog_fd, __u32 flags) {
    bpf_tc_opts o{};
    o.sz = sizeof(o);
    o.handle = kTcHandle;
    o.priority = kTcPriority;
    o.prog_fd = prog_fd;
    o.flags = flags;
    return o;
}

// Our clsact filter's program id, 0 when there is none.
__u32 clsact_prog(int ifindex) {
    bpf_tc_hook hook = egress_hook(ifindex);
    bpf_tc_opts q = our_filter(0, 0);
    if (bpf_tc_query(&hook, &q) != 0) return 0;
    // bpf_prog_info.name holds at most 15 characters of the program name
    return kTcProgName.starts_with(prog_name(q.prog_id)) ? q.prog_id : 0;
}

Status clsact_attach(int ifindex, int prog_fd) {
    bpf_tc_hook hook = egress_hook(ifindex);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST) return Error::from_errno("create clsact qdisc", -err);
    bpf_tc_opts o = our_filter(prog_fd, BPF_TC_F_REPLACE);
    if ((err = bpf_tc_attach(&hook, &o))) return Error::from_errno("attach tc egress filter", -err);
    return ok_status();
}

}  // namespace

Result<TcHook> TcHook::adopt(const Datapath& dp, const std::string& ifname, int ifindex) {
    std::string path = dp.pins().tc_link(ifname);
    auto fd = open_pin(path);
    if (fd) {
        auto info = tcx_info(fd->get());
        if (!info) return info.error();
        if (info->type != kBpfLinkTypeTcx) return Error::msg(path + " is not a TCX link");
        if (static_cast<int>(info->ifindex) == ifindex) {
            if (bpf_link_update(fd->get(), dp.tc_prog_fd(), nullptr) != 0)
                return Error::from_errno("update tc link " + path, errno);
            TcHook h;
            h.kind_ = Kind::Tcx;
            h.ifindex_ = ifindex;
            h.link_ = std::move(*fd);
            h.link_id_ = info->id;
            h.adopted_ = true;
            return h;
        }
        if (auto s = unpin(path); !s) return s.error();  // defunct: its interface is gone
    } else if (fd.error().errnum != ENOENT) {
        return fd.error();
    }
    if (clsact_prog(ifindex)) {
        if (auto s = clsact_attach(ifindex, dp.tc_prog_fd()); !s) return s.error();
        TcHook h;
        h.kind_ = Kind::Clsact;
        h.ifindex_ = ifindex;
        h.adopted_ = true;
        return h;
    }
    return Error{ENOENT, "no smtpgov tc program on this interface"};
}

Result<TcHook> TcHook::create(const Datapath& dp, int ifindex, bool allow_tcx) {
    if (allow_tcx) {
        LIBBPF_OPTS(bpf_link_create_opts, lo);
        int fd = bpf_link_create(dp.tc_prog_fd(), ifindex, static_cast<bpf_attach_type>(kBpfTcxEgress), &lo);
        if (fd >= 0) {
            TcHook h;
            h.kind_ = Kind::Tcx;
            h.ifindex_ = ifindex;
            h.link_.reset(fd);
            auto info = tcx_info(fd);
            h.link_id_ = info ? info->id : 0;
            return h;
        }
        if (errno != EINVAL) return Error::from_errno("tcx egress link", errno);
        // EINVAL: a kernel without TCX; fall through to clsact
    }
    if (auto s = clsact_attach(ifindex, dp.tc_prog_fd()); !s) return s.error();
    TcHook h;
    h.kind_ = Kind::Clsact;
    h.ifindex_ = ifindex;
    return h;
}

Status TcHook::pin(const std::string& path) const {
    if (kind_ != Kind::Tcx) return ok_status();
    return pin_fd(link_.get(), path);
}

Status TcHook::update(const Datapath& dp) {
    if (kind_ == Kind::Clsact) return clsact_attach(ifindex_, dp.tc_prog_fd());
    if (bpf_link_update(link_.get(), dp.tc_prog_fd(), nullptr) != 0) return Error::from_errno("update tc link", errno);
    return ok_status();
}

Status TcHook::detach() {
    if (kind_ == Kind::Tcx) {
        if (link_ && bpf_link_detach(link_.get()) != 0 && errno != ENOLINK)
            return Error::from_errno("detach tc link", errno);
        return ok_status();
    }
    bpf_tc_hook hook = egress_hook(ifindex_);
    bpf_tc_opts o = our_filter(0, 0);
    if (int err = bpf_tc_detach(&hook, &o); err && err != -ENOENT)
        return Error::from_errno("detach tc egress filter", -err);
    return ok_status();
}

uint32_t TcHook::prog_id() const {
    if (kind_ == Kind::Clsact) return clsact_prog(ifindex_);
    auto info = tcx_info(link_.get());
    return info ? info->prog_id : 0;
}

Status detach_clsact_filters() {
    auto names = list_interfaces();
    if (!names) return Error::from_errno("list interfaces");
    Status result = ok_status();
    for (auto* n = names.get(); n->if_index; ++n) {
        int ifindex = static_cast<int>(n->if_index);
        if (!clsact_prog(ifindex)) continue;
        bpf_tc_hook hook = egress_hook(ifindex);
        bpf_tc_opts o = our_filter(0, 0);
        if (int err = bpf_tc_detach(&hook, &o); err && err != -ENOENT)
            result = Error::from_errno(std::string("detach tc filter from ") + n->if_name, -err);
    }
    return result;
}

}  // namespace smtpgov::kern
