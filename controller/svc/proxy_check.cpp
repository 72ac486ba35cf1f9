#include "svc/proxy_check.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/clock.h"
#include "core/unique_fd.h"

namespace smtpgov::svc {
namespace {

int64_t ms_now() { return static_cast<int64_t>(mono_ns() / 1'000'000); }

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, int64_t deadline) {
    for (;;) {
        const int64_t left = deadline - ms_now();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, static_cast<int>(left));
        if (n > 0) return true;
        if (n < 0 && errno != EINTR) return false;
    }
}

socklen_t to_sockaddr(const Endpoint& e, sockaddr_storage& ss) {
    ss = {};
    if (e.addr.family == IpPrefix::Family::V4) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        in->sin_port = htons(e.port);
        std::memcpy(&in->sin_addr, e.addr.addr.data(), 4);
        return sizeof *in;
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(e.port);
    std::memcpy(&in6->sin6_addr, e.addr.addr.data(), 16);
    return sizeof *in6;
}

Status connect_by(int fd, const Endpoint& e, int64_t deadline, int timeout_ms) {
    sockaddr_storage ss;
    const socklen_t len = to_sockaddr(e, ss);
    const std::string what = "connect " + e.to_string();
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) return ok_status();
    if (errno != EINPROGRESS) return Error::from_errno(what);
    if (!wait_for(fd, POLLOUT, deadline)) return Error::msg(what + ": no answer within " + std::to_string(timeout_ms) + " ms");
    int err = 0;
    socklen_t elen = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err) return Error::from_errno(what, err);
    return ok_status();
}

// The first line the server sends (without CRLF), at most 512 bytes.
Result<std::string> greeting(int fd, int64_t deadline, int timeout_ms) {
    std::string line;
    char buf[512];
    while (line.find('\n') == std::string::npos && line.size() < sizeof buf) {
        if (!wait_for(fd, POLLIN, deadline))
            return Error::msg("no greeting within " + std::to_string(timeout_ms) + " ms");
        ssize_t n = ::recv(fd, buf, sizeof buf - line.size(), MSG_DONTWAIT);
        if (n == 0) return Error::msg("closed before its greeting");
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return Error::from_errno("read the greeting");
        }
        line.append(buf, static_cast<size_t>(n));
    }
    line = line.substr(0, line.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

}  // namespace

Status probe_smtp(const Endpoint& e, int timeout_ms) {
    const int64_t deadline = ms_now() + timeout_ms;
    const int family = e.addr.family == IpPrefix::Family::V4 ? AF_INET : AF_INET6;
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket");
    if (auto s = connect_by(fd.get(), e, deadline, timeout_ms); !s) return s;
    auto g = greeting(fd.get(), deadline, timeout_ms);
    if (!g) return Error::msg(e.to_string() + ": " + g.error().message);
    if (!g->starts_with("220")) {
        std::string shown = g->substr(0, 80);
        for (char& c : shown)
            if (static_cast<unsigned char>(c) < 0x20 || c == '"') c = '?';
        return Error::msg(e.to_string() + ": greeting \"" + shown + "\" is not 220");
    }
    [[maybe_unused]] auto n = ::send(fd.get(), "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
    return ok_status();
}

ProxyChecker::ProxyChecker(Report report, int timeout_ms)
    : report_(std::move(report)), timeout_ms_(timeout_ms), thread_([this] { run(); }) {}

ProxyChecker::~ProxyChecker() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void ProxyChecker::configure(std::vector<Endpoint> targets, uint32_t interval_s) {
    {
        std::lock_guard lock(mu_);
        if (targets == targets_ && interval_s == interval_s_) return;
        targets_ = std::move(targets);
        interval_s_ = interval_s ? interval_s : 1;
        changed_ = true;
    }
    cv_.notify_all();
}

void ProxyChecker::run() {
    std::unique_lock lock(mu_);
    auto next = std::chrono::steady_clock::now();
    for (;;) {
        cv_.wait_until(lock, next, [this] { return stop_ || changed_; });
        if (stop_) return;
        if (!changed_ && std::chrono::steady_clock::now() < next) continue;
        changed_ = false;
        const std::vector<Endpoint> targets = targets_;
        next = std::chrono::steady_clock::now() + std::chrono::seconds(interval_s_);
        lock.unlock();
        for (const Endpoint& e : targets) {
            Status s = probe_smtp(e, timeout_ms_);
            report_(e, s.ok(), s ? "220 greeting from " + e.to_string() : s.error().message);
        }
        lock.lock();
    }
}

}  // namespace smtpgov::svc
