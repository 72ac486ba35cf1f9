#include "kern/link_watcher.h"

#include "core/glob.h"

#include <fnmatch.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "kern/if_names.h"

namespace smtpgov::kern {

Result<LinkWatcher> LinkWatcher::open() {
    LinkWatcher w;
    w.fd_.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!w.fd_) return Error::from_errno("netlink socket");
    int rcvbuf = 1 << 20;
    ::setsockopt(w.fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (::bind(w.fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        return Error::from_errno("bind netlink RTMGRP_LINK");
    return w;
}

Result<LinkBatch> LinkWatcher::read() {
    LinkBatch batch;
    alignas(nlmsghdr) char buf[32768];
    for (;;) {
        ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) {
                batch.resync = true;
                continue;
            }
            return Error::from_errno("read netlink");
        }
        int len = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(len));
             h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) continue;
            auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
            LinkEvent ev;
            ev.kind = h->nlmsg_type == RTM_NEWLINK ? LinkEvent::Kind::Added : LinkEvent::Kind::Removed;
            ev.ifindex = ifi->ifi_index;
            int alen = static_cast<int>(IFLA_PAYLOAD(h));
            for (auto* a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
                if (a->rta_type == IFLA_IFNAME)
                    ev.name.assign(static_cast<const char*>(RTA_DATA(a)), strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
            batch.events.push_back(std::move(ev));
        }
    }
    return batch;
}

std::vector<LinkEvent> LinkWatcher::list() {
    std::vector<LinkEvent> out;
    auto names = list_interfaces();
    if (!names) return out;
    for (auto* n = names.get(); n->if_index; ++n)
        out.push_back(LinkEvent{LinkEvent::Kind::Added, static_cast<int>(n->if_index), n->if_name});
    return out;
}

bool iface_matches(const std::vector<std::string>& patterns, const std::string& name) {
    return name_matches(patterns, name);
}

}  // namespace smtpgov::kern
