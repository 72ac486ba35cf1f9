// What the two TCP servers (metrics/http_server, svc/policy_server) set up the same way
// around their listening socket: an epoll set holding it and a wake eventfd, each under
// its tag, and the port the socket was bound to. File-descriptor plumbing only (no
// policy), next to UniqueFd so both libraries share it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <utility>

#include "core/result.h"
#include "core/unique_fd.h"

namespace smtpgov {

struct ServerFds {
    UniqueFd wake, epoll;
};

inline Result<ServerFds> server_fds(int listen_fd, uint64_t listen_tag, uint64_t wake_tag) {
    ServerFds s;
    s.wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    s.epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!s.wake || !s.epoll) return Error::from_errno("eventfd/epoll");
    for (auto [f, tag] : {std::pair{listen_fd, listen_tag}, {s.wake.get(), wake_tag}}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = tag;
        if (::epoll_ctl(s.epoll.get(), EPOLL_CTL_ADD, f, &ev) != 0) return Error::from_errno("epoll_ctl");
    }
    return s;
}

// The port a listening socket is bound to (0 when it cannot tell).
inline int bound_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return 0;
}

}  // namespace smtpgov
