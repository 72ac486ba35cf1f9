// Which interfaces run the smtpgov programs: attach (adopting pinned links from an
// earlier run), atomic upgrade of every attachment to a new program instance,
// forget/detach, and the full removal behind `smtpgovd --remove`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "kern/datapath.h"
#include "kern/tc_hook.h"
#include "kern/xdp_hook.h"

namespace smtpgov::kern {

struct IfaceState {
    std::string name;
    int ifindex = 0;
    bool attached = false;
    std::string mode;          // "native" | "generic" ("" when not attached)
    std::string xdp_via;       // "link" | "libxdp"
    std::string tc_via;        // "tcx" | "clsact"
    bool adopted = false;      // taken over from a previous run
    uint32_t xdp_link_id = 0, tc_link_id = 0, xdp_prog_id = 0, tc_prog_id = 0;
    std::string error;         // last attach failure
};

class Attacher {
public:
    explicit Attacher(XdpMode mode, bool allow_tcx = true) : mode_(mode), allow_tcx_(allow_tcx) {}

    // Adopts or creates the XDP and TC hooks of one interface. New link pins are
    // written only when both hooks are in place; a half attach is rolled back.
    Status attach(const Datapath& dp, const std::string& ifname, int ifindex);
    // The interface is gone: drop its hooks (the kernel already detached them) and pins.
    Status forget(const std::string& ifname);
    // The interface held as `from` was renamed `to`: hooks and pins follow (attach()
    // does this by itself when it meets a known ifindex under a new name).
    Status rename(const std::string& from, const std::string& to);
    // The name an attached ifindex is held under, or nullptr.
    const std::string* name_of(int ifindex) const;
    // Explicitly detach one interface and remove its pins.
    Status detach(const std::string& ifname);
    // Swap every attachment to `next`'s programs; on a failure the ones already
    // swapped go back to `current`'s, and the error is returned.
    Status upgrade(const Datapath& current, const Datapath& next);

    std::vector<IfaceState> interfaces() const;
    bool attached(const std::string& ifname) const;
    // Why libxdp is not used ("" while it is usable or untried).
    const std::string& libxdp_unavailable() const { return libxdp_error_; }

    // Unpins links whose interface disappeared while no daemon ran.
    static void prune_defunct_links(const PinLayout& pins);
    // `smtpgovd --remove`: detach every smtpgov program (pinned links, libxdp
    // dispatcher entries, clsact filters in this namespace) and remove all pins.
    static Status remove_everything(const PinLayout& pins);

private:
    struct Entry {
        int ifindex = 0;
        std::optional<XdpHook> xdp;
        std::optional<TcHook> tc;
        std::string error;
    };
    Result<XdpHook> attach_xdp(const Datapath& dp, const std::string& ifname, int ifindex);
    Result<TcHook> attach_tc(const Datapath& dp, const std::string& ifname, int ifindex);

    XdpMode mode_;
    bool allow_tcx_;
    std::string libxdp_error_;
    std::map<std::string, Entry> ifaces_;
    PinLayout pins_{""};
};

}  // namespace smtpgov::kern
