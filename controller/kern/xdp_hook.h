// The smtpgov XDP program on one interface: a pinned bpf_link (single-program
// mode), or a program behind libxdp's multi-program dispatcher when the kernel
// lets libxdp use one (freplace).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "kern/datapath.h"
#include "core/unique_fd.h"

struct xdp_program;

namespace smtpgov::kern {

enum class XdpMode { Native, Generic, Auto };
std::optional<XdpMode> parse_xdp_mode(std::string_view s);
std::string_view to_string(XdpMode m);

struct XdpProgramCloser {
    void operator()(xdp_program* p) const;
};

class XdpHook {
public:
    enum class Kind { Link, Libxdp };

    // Adopts the pinned link <bpffs>/links/xdp-<ifname> and swaps it to dp's program.
    // Error ENOENT: no pin, or the pinned link belonged to a vanished interface (pin removed).
    static Result<XdpHook> adopt_link(const Datapath& dp, const std::string& ifname, int ifindex);
    // A new bpf_link (not pinned yet: pin() after the rest of the attach succeeded).
    static Result<XdpHook> create_link(const Datapath& dp, int ifindex, XdpMode mode);
    // Through libxdp. Error EOPNOTSUPP when libxdp could not use its dispatcher here
    // (it falls back to a plain netlink attach, which this undoes: such a program can
    // neither be pinned nor swapped atomically).
    static Result<XdpHook> create_libxdp(const Datapath& dp, int ifindex, XdpMode mode);
    // Finds an smtpgov program behind a libxdp dispatcher (left by an earlier run) and
    // puts dp's program in its place. Error ENOENT when there is none.
    static Result<XdpHook> adopt_libxdp(const Datapath& dp, int ifindex, XdpMode mode);

    XdpHook(XdpHook&&) noexcept = default;
    XdpHook& operator=(XdpHook&&) noexcept = default;
    ~XdpHook();

    Status pin(const std::string& path) const;
    // Atomically runs dp's program instead of the current one (bpf_link_update);
    // behind libxdp: the dispatcher is rebuilt with the new program, then the old one.
    Status update(const Datapath& dp);
    // Explicit removal (smtpgovd --remove, interface dropped from the config).
    Status detach();

    Kind kind() const { return kind_; }
    int ifindex() const { return ifindex_; }
    uint32_t link_id() const { return link_id_; }
    uint32_t prog_id() const;
    std::string_view mode() const { return mode_; }  // "native" | "generic"
    bool adopted() const { return adopted_; }

private:
    XdpHook() = default;
    Kind kind_ = Kind::Link;
    int ifindex_ = 0;
    UniqueFd link_;
    uint32_t link_id_ = 0;
    std::string mode_;
    bool adopted_ = false;
    unsigned attach_mode_ = 0;  // enum xdp_attach_mode, libxdp kind
    BpfObjectPtr obj_;          // libxdp kind: the object copy the program came from
    std::unique_ptr<xdp_program, XdpProgramCloser> prog_;
};

// Removes every smtpgov program that libxdp dispatchers in this network namespace run.
Status detach_libxdp_programs();

}  // namespace smtpgov::kern
