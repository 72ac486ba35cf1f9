#include "svc/fd_io.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "core/clock.h"

namespace smtpgov::svc {

int64_t mono_ms() { return static_cast<int64_t>(mono_ns() / 1'000'000); }

size_t unread(int fd) {
    int n = 0;
    return ::ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? static_cast<size_t>(n) : 0;
}

int poll_timeout(int64_t deadline_ms) {
    if (deadline_ms < 0) return -1;
    int64_t left = deadline_ms - mono_ms();
    return left <= 0 ? 0 : static_cast<int>(left);
}

namespace {

IoStatus wait_for(int fd, short events, int64_t deadline_ms, int wake_fd, bool stop_on_eintr) {
    pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(p, wake_fd >= 0 ? 2 : 1, poll_timeout(deadline_ms));
    if (n < 0 && errno == EINTR) return stop_on_eintr ? IoStatus::Interrupted : IoStatus::Ok;
    if (n < 0) return IoStatus::Error;
    if (wake_fd >= 0 && (p[1].revents & POLLIN)) return IoStatus::Woken;
    if (n == 0) return IoStatus::Timeout;
    return IoStatus::Ok;  // readable, writable or hung up: the next syscall tells which
}

}  // namespace

IoStatus send_all(int fd, std::string_view data, int64_t deadline_ms, int wake_fd, bool stop_on_eintr) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data.remove_prefix(static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return IoStatus::Error;
        if (IoStatus s = wait_for(fd, POLLOUT, deadline_ms, wake_fd, stop_on_eintr); s != IoStatus::Ok) return s;
    }
    return IoStatus::Ok;
}

IoStatus read_line(int fd, std::string& buf, std::string& line, size_t max, int64_t deadline_ms, int wake_fd,
                   bool stop_on_eintr) {
    size_t scanned = 0;
    for (;;) {
        if (auto nl = buf.find('\n', scanned); nl != std::string::npos) {
            if (nl > max) return IoStatus::TooLong;
            line.assign(buf, 0, nl);
            buf.erase(0, nl + 1);
            return IoStatus::Ok;
        }
        scanned = buf.size();
        if (buf.size() > max) return IoStatus::TooLong;
        char chunk[65536];
        ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            buf.append(chunk, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) return IoStatus::Eof;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return IoStatus::Error;
        if (IoStatus s = wait_for(fd, POLLIN, deadline_ms, wake_fd, stop_on_eintr); s != IoStatus::Ok) return s;
    }
}

}  // namespace smtpgov::svc
