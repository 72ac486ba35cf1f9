// The smtpgov TC return-path program on one interface's egress (towards the VM).
// Preferred: a TCX bpf_link (kernel >= 6.6), pinned like the XDP link and swapped
// with bpf_link_update. libbpf 1.1 has no TCX API, so the link is made with the raw
// attach type. Older kernels: a clsact egress filter (bpf_tc_attach); such a filter
// is held by the kernel qdisc, not by a bpffs pin, and is swapped in place with
// BPF_TC_F_REPLACE on the same handle and priority.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"
#include "kern/datapath.h"
#include "core/unique_fd.h"

namespace smtpgov::kern {

class TcHook {
public:
    enum class Kind { Tcx, Clsact };

    // Adopts <bpffs>/links/tc-<ifname>, or an existing clsact filter of ours, and swaps
    // it to dp's program. Error ENOENT when there is neither.
    static Result<TcHook> adopt(const Datapath& dp, const std::string& ifname, int ifindex);
    // TCX link when the kernel has TCX, else a clsact filter. `allow_tcx` false forces clsact.
    static Result<TcHook> create(const Datapath& dp, int ifindex, bool allow_tcx = true);

    TcHook(TcHook&&) noexcept = default;
    TcHook& operator=(TcHook&&) noexcept = default;

    Status pin(const std::string& path) const;  // TCX only: clsact filters live in the qdisc
    Status update(const Datapath& dp);
    Status detach();

    Kind kind() const { return kind_; }
    uint32_t link_id() const { return link_id_; }
    uint32_t prog_id() const;
    bool adopted() const { return adopted_; }

private:
    TcHook() = default;
    Kind kind_ = Kind::Tcx;
    int ifindex_ = 0;
    UniqueFd link_;
    uint32_t link_id_ = 0;
    bool adopted_ = false;
};

// Removes smtpgov clsact filters from every interface of this network namespace.
Status detach_clsact_filters();

}  // namespace smtpgov::kern
