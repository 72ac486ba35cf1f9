// Real SMTP sessions at a target rate: connect, EHLO, MAIL FROM, RCPT TO, DATA,
// QUIT, with non-blocking sockets on one epoll loop and a bounded number in flight.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/unique_fd.h"
#include "flood.h"
#include "pacer.h"

namespace flood {
namespace {

enum class Step { Connect, Greeting, Ehlo, Mail, Rcpt, Data, Body, Quit };
enum class Outcome { Ok, Reset, Timeout, Rejected, Error };

struct Session {
    smtpgov::UniqueFd fd;
    uint64_t id = 0;
    Step step = Step::Connect;
    double deadline = 0, started = 0;
    std::string in, out;
    bool accepted = false;        // the server took the message (250 after the body)
    int reply_code = 0;
};

struct Tally {
    uint64_t started = 0, ok = 0, reset = 0, timeout = 0, rejected = 0, error = 0, late_starts = 0;  // started > 50 ms after due (in-flight bound)
    std::vector<double> latency_ms;
    std::map<std::string, uint64_t> errors;   // errno text or "4xx"/"5xx" line class
};

sockaddr_storage sockaddr_of(const Addr& a, uint16_t port, socklen_t& len)
{
    sockaddr_storage ss{};
    if (a.family == AF_INET) {
        auto* s = (sockaddr_in*)&ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        std::memcpy(&s->sin_addr, a.b.data(), 4);
        len = sizeof *s;
    } else {
        auto* s = (sockaddr_in6*)&ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        std::memcpy(&s->sin6_addr, a.b.data(), 16);
        len = sizeof *s;
    }
    return ss;
}

class Engine {
public:
    explicit Engine(const SmtpOptions& o) : o_(o), ep_(epoll_create1(EPOLL_CLOEXEC))
    {
        if (!ep_)
            fail_errno("epoll_create1", errno);
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    nlohmann::json run();
    nlohmann::json summary(double elapsed);

private:
    void start(uint64_t k);
    void on_event(Session& s, uint32_t ev);
    void on_reply(Session& s);
    void send(Session& s, std::string data);
    void flush(Session& s);
    void finish(Session& s, Outcome oc, const std::string& why = "");

    const SmtpOptions& o_;
    smtpgov::UniqueFd ep_;
    std::map<int, std::unique_ptr<Session>> live_;   // by fd; a session owns (closes) its fd
    Tally t_;
};

void Engine::start(uint64_t k)
{
    const Addr& dst = o_.dst[k % o_.dst.size()];
    uint16_t port = o_.dports[k % o_.dports.size()];
    auto s = std::make_unique<Session>();
    s->id = k;
    s->started = now_s();
    s->deadline = s->started + o_.timeout;
    t_.started++;
    s->fd.reset(socket(dst.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s->fd) {
        t_.error++;
        t_.errors[std::string("socket: ") + std::strerror(errno)]++;
        return;
    }
    int one = 1;
    setsockopt(s->fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    socklen_t len;
    if (o_.src && o_.src->family == dst.family) {
        sockaddr_storage src = sockaddr_of(*o_.src, 0, len);
        if (bind(s->fd.get(), (sockaddr*)&src, len) < 0)
            fail_errno("bind " + o_.src->str(), errno);
    }
    sockaddr_storage ss = sockaddr_of(dst, port, len);
    int fd = s->fd.get();
    Session& ref = *s;
    live_[fd] = std::move(s);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.fd = fd;
    epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev);
    if (connect(fd, (sockaddr*)&ss, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        finish(ref, (e == ECONNREFUSED || e == ECONNRESET) ? Outcome::Reset : Outcome::Error,
               std::string("connect: ") + std::strerror(e));
    }
}

void Engine::finish(Session& s, Outcome oc, const std::string& why)
{
    switch (oc) {
    case Outcome::Ok: t_.ok++; t_.latency_ms.push_back((now_s() - s.started) * 1e3); break;
    case Outcome::Reset: t_.reset++; break;
    case Outcome::Timeout: t_.timeout++; break;
    case Outcome::Rejected: t_.rejected++; break;
    case Outcome::Error: t_.error++; break;
    }
    if (!why.empty())
        t_.errors[why]++;
    int fd = s.fd.get();
    epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
    live_.erase(fd);   // destroys s, closing fd
}

void Engine::send(Session& s, std::string data)
{
    s.out += data;
    flush(s);
}

void Engine::flush(Session& s)
{
    while (!s.out.empty()) {
        ssize_t n = ::send(s.fd.get(), s.out.data(), s.out.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0)
            return;   // the error surfaces on the next read or EPOLLERR
        s.out.erase(0, (size_t)n);
    }
}

void Engine::on_reply(Session& s)
{
    int code = s.reply_code;
    auto expect = [&](int want) { return code / 100 == want / 100; };
    if (s.step == Step::Quit) {
        finish(s, s.accepted ? Outcome::Ok : Outcome::Rejected);
        return;
    }
    bool good = s.step == Step::Greeting ? code == 220
              : s.step == Step::Data     ? code == 354
                                         : expect(250);
    if (!good) {
        s.step = Step::Quit;
        send(s, "QUIT\r\n");
        t_.errors[std::to_string(code / 100) + "xx reply"]++;
        return;   // finish() on the 221 (or EOF): the message was not accepted
    }
    switch (s.step) {
    case Step::Greeting:
        s.step = Step::Ehlo;
        send(s, "EHLO " + o_.helo + "\r\n");
        break;
    case Step::Ehlo:
        s.step = Step::Mail;
        send(s, "MAIL FROM:<" + o_.from + ">\r\n");
        break;
    case Step::Mail:
        s.step = Step::Rcpt;
        send(s, "RCPT TO:<" + o_.rcpt + ">\r\n");
        break;
    case Step::Rcpt:
        s.step = Step::Data;
        send(s, "DATA\r\n");
        break;
    case Step::Data: {
        s.step = Step::Body;
        std::string msg = "From: <" + o_.from + ">\r\nTo: <" + o_.rcpt + ">\r\nSubject: smtpgov-flood message " +
                          std::to_string(s.id) + "\r\nMessage-ID: <" + std::to_string(s.id) + "." +
                          std::to_string(getpid()) + "@smtpgov-flood>\r\n\r\n";
        std::string line(70, 'x');
        for (size_t n = 0; n < o_.body_bytes; n += 72)
            msg += line + "\r\n";
        send(s, msg + ".\r\n");
        break;
    }
    case Step::Body:
        s.accepted = true;
        s.step = Step::Quit;
        send(s, "QUIT\r\n");
        break;
    default:
        break;
    }
}

void Engine::on_event(Session& s, uint32_t ev)
{
    if (s.step == Step::Connect) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(s.fd.get(), SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            finish(s, (err == ECONNREFUSED || err == ECONNRESET) ? Outcome::Reset : Outcome::Error,
                   std::string("connect: ") + std::strerror(err));
            return;
        }
        if (!(ev & (EPOLLOUT | EPOLLIN)))
            return;
        s.step = Step::Greeting;
        epoll_event e{};
        e.events = EPOLLIN;
        e.data.fd = s.fd.get();
        epoll_ctl(ep_.get(), EPOLL_CTL_MOD, s.fd.get(), &e);
    }
    flush(s);
    char buf[4096];
    for (;;) {
        ssize_t n = recv(s.fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            int e = errno;
            // at QUIT the outcome is decided (accepted, or refused with a 4xx/5xx); a server
            // that hung up after refusing answers our QUIT with a reset
            if (s.step == Step::Quit)
                finish(s, s.accepted ? Outcome::Ok : Outcome::Rejected);
            else
                finish(s, e == ECONNRESET ? Outcome::Reset : Outcome::Error, std::string("recv: ") + std::strerror(e));
            return;
        }
        if (n == 0) {
            if (s.step == Step::Quit)
                finish(s, s.accepted ? Outcome::Ok : Outcome::Rejected);
            else
                finish(s, Outcome::Reset, "closed by server");
            return;
        }
        s.in.append(buf, (size_t)n);
        // a reply is complete at a line "ddd text" (a '-' after the code continues it)
        size_t eol;
        while ((eol = s.in.find("\r\n")) != std::string::npos) {
            std::string line = s.in.substr(0, eol);
            s.in.erase(0, eol + 2);
            if (line.size() < 3)
                continue;
            if (line.size() > 3 && line[3] == '-')
                continue;
            s.reply_code = std::atoi(line.substr(0, 3).c_str());
            int fd = s.fd.get();
            on_reply(s);
            if (!live_.count(fd))
                return;   // finished
        }
    }
}

nlohmann::json Engine::run()
{
    double rate = o_.bounds.rate;
    uint64_t count = o_.bounds.count ? o_.bounds.count
                     : rate > 0     ? (uint64_t)std::llround(rate * o_.bounds.duration)
                                    : 1000;
    double t0 = now_s(), end = t0 + o_.bounds.duration;
    uint64_t next = 0;
    epoll_event evs[64];
    while ((next < count && now_s() < end && !g_stop) || !live_.empty()) {
        double now = now_s();
        // start every session that is due, as long as the in-flight bound allows
        while (next < count && now < end && !g_stop && (rate <= 0 || t0 + (double)next / rate <= now)) {
            if (live_.size() >= o_.concurrency)
                break;
            if (rate > 0 && now - (t0 + (double)next / rate) > 0.05)
                t_.late_starts++;
            start(next++);
        }
        double wake = now + 0.1;
        if (next < count && rate > 0 && live_.size() < o_.concurrency)
            wake = std::min(wake, t0 + (double)next / rate);
        for (auto& [fd, s] : live_)
            wake = std::min(wake, s->deadline);
        int ms = (int)std::ceil(std::max(0.0, wake - now_s()) * 1e3);
        int n = epoll_wait(ep_.get(), evs, 64, ms);
        if (n < 0 && errno != EINTR)
            fail_errno("epoll_wait", errno);
        for (int i = 0; i < n; i++) {
            auto it = live_.find(evs[i].data.fd);
            if (it != live_.end())
                on_event(*it->second, evs[i].events);
        }
        now = now_s();
        std::vector<int> expired;
        for (auto& [fd, s] : live_)
            if (s->deadline <= now)
                expired.push_back(fd);
        for (int fd : expired)
            finish(*live_[fd], Outcome::Timeout, "session timed out");
    }
    return summary(now_s() - t0);
}

nlohmann::json Engine::summary(double elapsed)
{
    const double rate = o_.bounds.rate;
    std::sort(t_.latency_ms.begin(), t_.latency_ms.end());
    auto pct = [&](double p) {
        return t_.latency_ms.empty() ? 0.0 : t_.latency_ms[(size_t)(p * (double)(t_.latency_ms.size() - 1))];
    };
    nlohmann::json dsts = nlohmann::json::array();
    for (const Addr& d : o_.dst)
        dsts.push_back(d.str());
    return {
        {"mode", "smtp"},
        {"dst", dsts},
        {"target_rate", rate > 0 ? nlohmann::json(rate) : nlohmann::json("max")},
        {"sessions", t_.started},
        {"ok", t_.ok},
        {"reset", t_.reset},
        {"timed_out", t_.timeout},
        {"rejected", t_.rejected},
        {"error", t_.error},
        {"late_starts", t_.late_starts},
        {"duration_s", elapsed},
        {"rate", elapsed > 0 ? (double)t_.started / elapsed : 0.0},
        {"latency_ms", {{"p50", pct(0.5)}, {"p99", pct(0.99)}, {"max", pct(1.0)}}},
        {"reasons", t_.errors},
    };
}

} // namespace

nlohmann::json run_smtp(const SmtpOptions& o)
{
    if (o.dst.empty())
        throw std::invalid_argument("--dst: at least one destination address");
    if (o.concurrency == 0)
        throw std::invalid_argument("--concurrency must be at least 1");
    Engine e(o);
    return e.run();
}

} // namespace flood
