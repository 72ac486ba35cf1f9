#include "metrics/http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <thread>

#include "core/clock.h"
#include "core/server_fds.h"
#include "core/unique_fd.h"

namespace smtpgov::metrics {

namespace {

int64_t now_ms() { return static_cast<int64_t>(mono_ns() / 1'000'000); }

constexpr uint64_t kListenTag = 0;
constexpr uint64_t kStopTag = 1;
constexpr uint64_t kFirstConnId = 2;
constexpr int kAcceptBatch = 64;
constexpr int kListenPauseMs = 100;  // after EMFILE with nothing left to close

Result<UniqueFd> listen_on(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) return Error::msg("expected HOST:PORT");
    std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos)
        return Error::msg("expected HOST:PORT");
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res); rc != 0)
        return Error::msg(std::string("resolve: ") + ::gai_strerror(rc));
    Error last = Error::msg("no address");
    UniqueFd fd;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        UniqueFd s(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
        if (!s) {
            last = Error::from_errno("socket");
            continue;
        }
        int one = 1;
        ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(s.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            last = Error::from_errno("bind");
            continue;
        }
        if (::listen(s.get(), 1024) != 0) {  // clamped to net.core.somaxconn
            last = Error::from_errno("listen");
            continue;
        }
        fd = std::move(s);
        break;
    }
    ::freeaddrinfo(res);
    if (!fd) return last;
    return fd;
}


std::string status_head(int code, const char* reason, size_t length, const std::string& extra) {
    return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Length: " + std::to_string(length) +
           "\r\n" + extra + "Connection: close\r\n\r\n";
}

}  // namespace

struct HttpServer::Impl {
    enum class State { Reading, Writing, Lingering };

    struct Conn {
        UniqueFd fd;
        State state = State::Reading;
        int64_t deadline = 0;
        std::string in;         // the request head so far (Reading)
        std::string head;       // response status line and headers (Writing)
        HttpBody body;          // response body, may be null (Writing)
        size_t sent = 0;        // bytes of head + body sent
    };

    HttpServerOptions opts;
    std::function<HttpBody()> render;
    UniqueFd listen_fd, stop_fd, epoll_fd;
    std::map<uint64_t, Conn> conns;  // by id: ids grow, so begin() is the oldest
    uint64_t next_id = kFirstConnId;
    int64_t listen_paused_until = 0;
    std::thread thread;
    bool stopped = false;

    void run();
    void accept_some();
    bool evict_one();
    void close_conn(uint64_t id) { conns.erase(id); }  // UniqueFd closes; epoll forgets closed fds
    void on_readable(uint64_t id, Conn& c);
    void respond(Conn& c);
    void on_writable(uint64_t id, Conn& c);
    void linger(Conn& c);
    void set_events(int fd, uint32_t events, uint64_t tag) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = tag;
        ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_MOD, fd, &ev);
    }
};

Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerOptions opts, std::function<HttpBody()> render) {
    auto impl = std::make_unique<Impl>();
    auto fd = listen_on(opts.listen);
    if (!fd) return fd.error();
    impl->listen_fd = std::move(*fd);
    auto fds = server_fds(impl->listen_fd.get(), kListenTag, kStopTag);
    if (!fds) return fds.error();
    impl->stop_fd = std::move(fds->wake);
    impl->epoll_fd = std::move(fds->epoll);
    impl->opts = std::move(opts);
    impl->render = std::move(render);
    int port = bound_port(impl->listen_fd.get());
    auto server = std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
    server->port_ = port;
    Impl* p = server->impl_.get();
    p->thread = std::thread([p] { p->run(); });
    return server;
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
    if (!impl_ || impl_->stopped) return;
    impl_->stopped = true;
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(impl_->stop_fd.get(), &one, sizeof one);
    if (impl_->thread.joinable()) impl_->thread.join();
    impl_->conns.clear();
    impl_->listen_fd.reset();
}

void HttpServer::Impl::run() {
    epoll_event evs[64];
    for (;;) {
        int64_t now = now_ms();
        int64_t next = now + 1000;
        for (auto it = conns.begin(); it != conns.end();) {
            auto cur = it++;
            if (cur->second.deadline <= now) {
                close_conn(cur->first);  // idle head, stalled reader or the end of lingering
                continue;
            }
            next = std::min(next, cur->second.deadline);
        }
        if (listen_paused_until && listen_paused_until <= now) {
            listen_paused_until = 0;
            set_events(listen_fd.get(), EPOLLIN, kListenTag);
        }
        if (listen_paused_until) next = std::min(next, listen_paused_until);
        int n = ::epoll_wait(epoll_fd.get(), evs, 64, static_cast<int>(std::max<int64_t>(next - now, 0)));
        if (n < 0 && errno != EINTR) return;
        for (int i = 0; i < n; ++i) {
            uint64_t tag = evs[i].data.u64;
            if (tag == kStopTag) return;
            if (tag == kListenTag) {
                accept_some();
                continue;
            }
            auto it = conns.find(tag);
            if (it == conns.end()) continue;  // closed earlier in this batch
            Conn& c = it->second;
            if (c.state == State::Writing)
                on_writable(tag, c);  // only EPOLLOUT (or an error) is polled for while writing
            else
                on_readable(tag, c);
        }
    }
}

// Closes the connection that matters least: lingering ones first, then the oldest still
// sending its head, then the oldest being answered. False when none is held.
bool HttpServer::Impl::evict_one() {
    for (State s : {State::Lingering, State::Reading, State::Writing})
        for (auto it = conns.begin(); it != conns.end(); ++it)
            if (it->second.state == s) {
                close_conn(it->first);
                return true;
            }
    return false;
}

void HttpServer::Impl::accept_some() {
    for (int i = 0; i < kAcceptBatch; ++i) {
        UniqueFd fd(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) && evict_one()) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                // out of descriptors with nothing of ours to close: stop polling the
                // listener for a moment instead of spinning on it
                listen_paused_until = now_ms() + kListenPauseMs;
                set_events(listen_fd.get(), 0, kListenTag);
            }
            return;
        }
        while (conns.size() >= opts.max_connections && evict_one()) {}
        uint64_t id = next_id++;
        Conn& c = conns[id];
        c.fd = std::move(fd);
        c.deadline = now_ms() + opts.request_timeout_ms;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = id;
        if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) {
            close_conn(id);
            continue;
        }
        on_readable(id, c);  // a scraper's request is usually there already
    }
}

void HttpServer::Impl::on_readable(uint64_t id, Conn& c) {
    char buf[16384];
    // a bounded amount per wakeup: a client pouring data in must not starve the others
    // (level-triggered epoll comes back for the rest)
    for (int round = 0; round < 16; ++round) {
        ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            // the client is done (or gone); a response being written is written anyway
            if (c.state != State::Writing) close_conn(id);
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (c.state != State::Reading) continue;  // lingering: discard
        size_t scan_from = c.in.size() >= 3 ? c.in.size() - 3 : 0;
        c.in.append(buf, static_cast<size_t>(n));
        size_t end = c.in.find("\r\n\r\n", scan_from);
        size_t lf = c.in.find("\n\n", scan_from);
        if (end == std::string::npos && lf == std::string::npos) {
            if (c.in.size() > opts.max_request_bytes) {
                c.in.clear();
                std::string text = "request head larger than " + std::to_string(opts.max_request_bytes) + " bytes\n";
                c.head = status_head(431, "Request Header Fields Too Large", text.size(), "") + text;
                c.body.reset();
                c.state = State::Writing;
                c.sent = 0;
                c.deadline = now_ms() + opts.write_timeout_ms;
                on_writable(id, c);
                return;
            }
            continue;
        }
        respond(c);
        on_writable(id, c);
        return;
    }
}

// Builds the response to the complete request head in c.in.
void HttpServer::Impl::respond(Conn& c) {
    std::string line = c.in.substr(0, c.in.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    c.in.clear();
    c.in.shrink_to_fit();
    c.state = State::Writing;
    c.sent = 0;
    c.body.reset();
    c.deadline = now_ms() + opts.write_timeout_ms;
    auto text = [&](int code, const char* reason, const std::string& msg, const std::string& extra = "") {
        std::string body = msg + "\n";
        c.head = status_head(code, reason, body.size(), "Content-Type: text/plain; charset=utf-8\r\n" + extra) + body;
    };
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    if (sp1 == 0 || sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0 ||
        line.find(' ', sp2 + 1) != std::string::npos)
        return text(400, "Bad Request", "malformed request line");
    std::string method = line.substr(0, sp1);
    std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string path = target.substr(0, target.find('?'));
    if (path != opts.path) return text(404, "Not Found", "only " + opts.path + " is served here");
    if (method != "GET" && method != "HEAD")
        return text(405, "Method Not Allowed", opts.path + " is read-only: GET or HEAD", "Allow: GET, HEAD\r\n");
    HttpBody body;
    try {
        body = render();
    } catch (const std::exception& e) {
        return text(500, "Internal Server Error", std::string("rendering metrics failed: ") + e.what());
    }
    size_t length = body ? body->size() : 0;
    c.head = status_head(200, "OK", length, "Content-Type: " + opts.content_type + "\r\n");
    if (method == "GET") c.body = std::move(body);
}

void HttpServer::Impl::on_writable(uint64_t id, Conn& c) {
    const size_t body_size = c.body ? c.body->size() : 0;
    const size_t total = c.head.size() + body_size;
    while (c.sent < total) {
        iovec iov[2];
        int cnt = 0;
        if (c.sent < c.head.size()) iov[cnt++] = {c.head.data() + c.sent, c.head.size() - c.sent};
        size_t body_off = c.sent > c.head.size() ? c.sent - c.head.size() : 0;
        if (body_size > body_off) iov[cnt++] = {const_cast<char*>(c.body->data()) + body_off, body_size - body_off};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<size_t>(cnt);
        ssize_t n = ::sendmsg(c.fd.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.sent += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            // not EPOLLIN/EPOLLRDHUP: a half-closed client would make them fire forever
            set_events(c.fd.get(), EPOLLOUT, id);
            return;
        }
        close_conn(id);
        return;
    }
    linger(c);
    set_events(c.fd.get(), EPOLLIN | EPOLLRDHUP, id);
}

void HttpServer::Impl::linger(Conn& c) {
    c.head.clear();
    c.head.shrink_to_fit();
    c.body.reset();
    c.state = State::Lingering;
    c.deadline = now_ms() + opts.linger_ms;
    ::shutdown(c.fd.get(), SHUT_WR);
}

}  // namespace smtpgov::metrics
