#include "svc/policy_server.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/server_fds.h"
#include "core/unique_fd.h"
#include "svc/fd_io.h"

namespace smtpgov::svc {
namespace {

int64_t now_ms() { return static_cast<int64_t>(mono_ns() / 1'000'000); }

constexpr uint64_t kListenTag = 0, kWakeTag = 1, kFirstConnId = 2;

Result<UniqueFd> listen_on(const IpPrefix& addr, uint16_t port) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (addr.family == IpPrefix::Family::V4) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        std::memcpy(&in->sin_addr, addr.addr.data(), 4);
        len = sizeof *in;
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        std::memcpy(&in6->sin6_addr, addr.addr.data(), 16);
        len = sizeof *in6;
    }
    UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return Error::from_errno("bind");
    if (::listen(fd.get(), 256) != 0) return Error::from_errno("listen");
    return fd;
}


// Answers handed back from other threads; outlives the server (a late answer is dropped).
struct Outbox {
    std::mutex mu;
    struct Answer {
        uint64_t conn, request;
        std::string action;
    };
    std::vector<Answer> answers;
    UniqueFd wake;
    bool stopped = false;

    void post(uint64_t conn, uint64_t request, std::string action) {
        std::lock_guard lock(mu);
        if (stopped) return;
        answers.push_back({conn, request, std::move(action)});
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake.get(), &one, sizeof one);
    }
};

}  // namespace

struct PolicyServer::Impl {
    // Idle: between requests; Reading: part of a request is in; Waiting: the handler has
    // it; Writing: the answer is going out; Closing: the answer to an error, then close.
    enum class State { Idle, Reading, Waiting, Writing, Closing };

    struct Conn {
        UniqueFd fd;
        State state = State::Idle;
        int64_t deadline = 0;
        int64_t idle_since = 0;
        uint64_t request = 0;  // requests handed to the handler so far (answers name theirs)
        policy::Reader reader;
        std::string out;
        size_t sent = 0;
    };

    PolicyServerOptions opts;
    PolicyHandler handler;
    UniqueFd listen_fd, epoll_fd;
    std::shared_ptr<Outbox> outbox = std::make_shared<Outbox>();
    std::map<uint64_t, Conn> conns;
    uint64_t next_id = kFirstConnId;
    std::thread thread;
    bool stopped = false, quit = false;

    void run();
    void expire(int64_t now);
    void accept_some();
    bool evict_one();
    void on_event(uint64_t id, Conn& c, uint32_t events);
    void on_readable(uint64_t id, Conn& c);
    void take_request(uint64_t id, Conn& c);
    void send_answer(uint64_t id, Conn& c, std::string text, bool close_after);
    void on_writable(uint64_t id, Conn& c);
    void deliver_answers();
    void watch(uint64_t id, Conn& c, uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = id;
        ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    }
};

Result<std::unique_ptr<PolicyServer>> PolicyServer::start(PolicyServerOptions opts, PolicyHandler handler) {
    auto impl = std::make_unique<Impl>();
    auto fd = listen_on(opts.addr, opts.port);
    if (!fd) return fd.error();
    impl->listen_fd = std::move(*fd);
    auto fds = server_fds(impl->listen_fd.get(), kListenTag, kWakeTag);
    if (!fds) return fds.error();
    impl->outbox->wake = std::move(fds->wake);
    impl->epoll_fd = std::move(fds->epoll);
    impl->opts = std::move(opts);
    impl->handler = std::move(handler);
    const int port = bound_port(impl->listen_fd.get());
    std::unique_ptr<PolicyServer> server(new PolicyServer(std::move(impl)));
    server->port_ = port;
    Impl* p = server->impl_.get();
    p->thread = std::thread([p] { p->run(); });
    return server;
}

PolicyServer::PolicyServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PolicyServer::~PolicyServer() { stop(); }

void PolicyServer::stop() {
    if (!impl_ || impl_->stopped) return;
    impl_->stopped = true;
    {
        std::lock_guard lock(impl_->outbox->mu);
        impl_->outbox->stopped = true;
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(impl_->outbox->wake.get(), &one, sizeof one);
    }
    if (impl_->thread.joinable()) impl_->thread.join();
    impl_->conns.clear();
    impl_->listen_fd.reset();
}

void PolicyServer::Impl::run() {
    epoll_event evs[64];
    while (!quit) {
        if (opts.on_wakeup) opts.on_wakeup();
        const int64_t now = now_ms();
        expire(now);
        int64_t next = now + 1000;
        for (const auto& [id, c] : conns) next = std::min(next, c.deadline);
        int n = ::epoll_wait(epoll_fd.get(), evs, 64, static_cast<int>(std::max<int64_t>(next - now, 0)));
        if (n < 0 && errno != EINTR) return;
        for (int i = 0; i < n; ++i) {
            const uint64_t tag = evs[i].data.u64;
            if (tag == kListenTag) {
                accept_some();
                continue;
            }
            if (tag == kWakeTag) {
                deliver_answers();
                continue;
            }
            auto it = conns.find(tag);
            if (it != conns.end()) on_event(tag, it->second, evs[i].events);
        }
    }
}

void PolicyServer::Impl::on_event(uint64_t id, Conn& c, uint32_t events) {
    switch (c.state) {
    case State::Writing:
    case State::Closing: on_writable(id, c); return;
    case State::Waiting:
        // only hangups are watched meanwhile: a client that shut down its side after the
        // request still gets the answer; one that is gone entirely is closed
        if (events & (EPOLLHUP | EPOLLERR)) conns.erase(id);
        else watch(id, c, 0);
        return;
    case State::Idle:
    case State::Reading: on_readable(id, c); return;
    }
}

// Deadlines: an idle connection is closed; a request that does not complete, or an
// answer not taken, too; a handler that does not answer gets DEFER_IF_PERMIT for it.
// Bytes waiting unread spare an idle or reading connection this once: they arrived
// while this thread was held up, and are read in this same turn of the loop.
void PolicyServer::Impl::expire(int64_t now) {
    for (auto it = conns.begin(); it != conns.end();) {
        auto cur = it++;
        Conn& c = cur->second;
        if (c.deadline > now) continue;
        if (c.state == State::Waiting) {
            send_answer(cur->first, c, policy::answer("DEFER_IF_PERMIT smtpgov policy service busy"), false);
            continue;
        }
        if ((c.state == State::Idle || c.state == State::Reading) && unread(c.fd.get()) > 0) continue;
        conns.erase(cur);
    }
}

void PolicyServer::Impl::deliver_answers() {
    uint64_t v;
    while (::read(outbox->wake.get(), &v, sizeof v) == sizeof v) {
    }
    std::vector<Outbox::Answer> batch;
    {
        std::lock_guard lock(outbox->mu);
        if (outbox->stopped) {
            quit = true;
            return;
        }
        batch.swap(outbox->answers);
    }
    for (auto& a : batch) {
        auto it = conns.find(a.conn);
        // gone, or answered "busy" already (the connection may be waiting for a newer one)
        if (it == conns.end() || it->second.state != State::Waiting || it->second.request != a.request) continue;
        send_answer(a.conn, it->second, policy::answer(a.action), false);
    }
}

// Closes what matters least: the connection idle longest, else the oldest partial request.
bool PolicyServer::Impl::evict_one() {
    for (State s : {State::Idle, State::Reading}) {
        auto victim = conns.end();
        for (auto it = conns.begin(); it != conns.end(); ++it)
            if (it->second.state == s && (victim == conns.end() || it->second.idle_since < victim->second.idle_since))
                victim = it;
        if (victim != conns.end()) {
            conns.erase(victim);
            return true;
        }
    }
    return false;
}

void PolicyServer::Impl::accept_some() {
    for (int i = 0; i < 64; ++i) {
        UniqueFd fd(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && evict_one()) continue;
            return;
        }
        if (conns.size() >= opts.max_connections && !evict_one()) continue;  // all busy: refuse this one
        const uint64_t id = next_id++;
        Conn& c = conns[id];
        c.fd = std::move(fd);
        c.idle_since = now_ms();
        c.deadline = c.idle_since + opts.idle_timeout_ms;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = id;
        if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) conns.erase(id);
    }
}

void PolicyServer::Impl::on_readable(uint64_t id, Conn& c) {
    char buf[4096];
    ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {  // the client is gone or done
        conns.erase(id);
        return;
    }
    if (c.state == State::Idle) {
        c.state = State::Reading;
        c.deadline = now_ms() + opts.request_timeout_ms;
    }
    c.reader.feed(std::string_view(buf, static_cast<size_t>(n)));
    take_request(id, c);
}

// Hands the next complete request to the handler, answers a broken one and closes.
void PolicyServer::Impl::take_request(uint64_t id, Conn& c) {
    auto r = c.reader.next();
    if (!r) return;  // incomplete: wait for more
    if (!*r) {
        send_answer(id, c, policy::answer("DEFER_IF_PERMIT smtpgov: " + r->error().message), true);
        return;
    }
    c.state = State::Waiting;
    c.deadline = now_ms() + opts.answer_timeout_ms;
    const uint64_t seq = ++c.request;
    watch(id, c, EPOLLRDHUP);  // read nothing more until this one is answered
    handler(std::move(**r), [box = outbox, id, seq](std::string action) { box->post(id, seq, std::move(action)); });
}

void PolicyServer::Impl::send_answer(uint64_t id, Conn& c, std::string text, bool close_after) {
    c.out = std::move(text);
    c.sent = 0;
    c.state = close_after ? State::Closing : State::Writing;
    c.deadline = now_ms() + opts.write_timeout_ms;
    on_writable(id, c);
}

void PolicyServer::Impl::on_writable(uint64_t id, Conn& c) {
    while (c.sent < c.out.size()) {
        ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.sent += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(id, c, EPOLLOUT);
            return;
        }
        conns.erase(id);
        return;
    }
    if (c.state == State::Closing) {
        conns.erase(id);
        return;
    }
    c.out.clear();
    c.state = State::Idle;
    c.idle_since = now_ms();
    c.deadline = c.idle_since + opts.idle_timeout_ms;
    watch(id, c, EPOLLIN | EPOLLRDHUP);
    if (c.reader.buffered()) {  // a pipelined request is already in
        c.state = State::Reading;
        c.deadline = now_ms() + opts.request_timeout_ms;
        take_request(id, c);
    }
}

}  // namespace smtpgov::svc
