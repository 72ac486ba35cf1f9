#include "svc/control_server.h"

#include "core/json_strict.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace smtpgov::svc {

using nlohmann::json;

namespace {

std::string dump_line(const json& j) {
    // replace: a VM id or reply sample with bad UTF-8 must not throw in the middle of a reply
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) return Error::msg("socket path too long: " + path);
    path.copy(addr.sun_path, path.size());
    return addr;
}

// mkdir -p with 0755 for the directories it creates (chmod: umask must not narrow them).
Status make_parent_dir(const std::string& path) {
    std::filesystem::path dir;
    for (const auto& part : std::filesystem::path(path).parent_path()) {
        dir /= part;
        if (::mkdir(dir.c_str(), 0755) == 0) {
            if (::chmod(dir.c_str(), 0755) != 0) return Error::from_errno("chmod " + dir.string());
        } else if (errno != EEXIST) {
            return Error::from_errno("mkdir " + dir.string());
        }
    }
    return ok_status();
}

// A socket file left by a dead server is replaced; one that still answers is not ours.
Status clear_stale(const std::string& path, const sockaddr_un& addr) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? ok_status() : Error::from_errno("stat " + path);
    if (!S_ISSOCK(st.st_mode)) return Error::msg(path + " exists and is not a socket");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
        return Error::msg("another server is listening on " + path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::from_errno("unlink stale " + path);
    return ok_status();
}

Result<UniqueFd> listen_on(const std::string& path) {
    auto addr = unix_address(path);
    if (!addr) return addr.error();
    if (auto s = make_parent_dir(path); !s) return s.error();
    if (auto s = clear_stale(path, *addr); !s) return s.error();
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Error::from_errno("socket");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
        return Error::from_errno("bind " + path);
    if (::chmod(path.c_str(), 0600) != 0) return Error::from_errno("chmod 0600 " + path);
    if (::listen(fd.get(), 256) != 0) return Error::from_errno("listen " + path);
    return fd;
}

constexpr uint64_t kListenTag = 0;
constexpr uint64_t kStopTag = 1;
constexpr int kAcceptBatch = 64;
constexpr int kListenPauseMs = 100;  // after EMFILE with nothing left to close

Status epoll_set(int epfd, int op, int fd, uint32_t events, uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (::epoll_ctl(epfd, op, fd, &ev) != 0) return Error::from_errno("epoll_ctl");
    return ok_status();
}

// Best effort, never blocks: error lines are short and the socket buffer is empty.
void send_now(int fd, const Reply& r) {
    std::string line = dump_line(r.body);
    [[maybe_unused]] auto n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

Reply ok_reply(json result) { return Reply{{{"ok", true}, {"result", std::move(result)}}, {}}; }

Reply error_reply(std::string_view kind, std::string message, const std::vector<Problem>& problems) {
    json body{{"ok", false}, {"error", std::move(message)}, {"kind", kind}};
    if (!problems.empty()) body["problems"] = to_json(problems);
    return Reply{std::move(body), {}};
}

Reply stream_reply(std::function<void(Writer&)> fn) { return Reply{{{"ok", true}, {"stream", true}}, std::move(fn)}; }

Writer::Writer(int fd, int stop_fd, const std::atomic<bool>& stopping, int write_timeout_ms)
    : fd_(fd), stop_fd_(stop_fd), stopping_(stopping), write_timeout_ms_(write_timeout_ms) {}

bool Writer::write_line(std::string_view line) {
    if (!open()) return false;
    std::string out(line);
    out += '\n';
    failed_ = send_all(fd_, out, mono_ms() + write_timeout_ms_, stop_fd_) != IoStatus::Ok;
    return !failed_;
}

bool Writer::write(const json& value) {
    std::string line = dump_line(value);
    line.pop_back();
    return write_line(line);
}

bool Writer::open() {
    if (failed_ || stopping_.load()) return false;
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) return !(failed_ = true);
    char sink[4096];  // a streaming client has nothing more to say; discard what it sends
    ssize_t n = ::recv(fd_, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) failed_ = true;
    return !failed_;
}

bool Writer::wait(int timeout_ms) {
    if (!open()) return false;
    pollfd p[2] = {{fd_, POLLRDHUP, 0}, {stop_fd_, POLLIN, 0}};
    ::poll(p, 2, timeout_ms);
    return open();
}

Result<std::unique_ptr<ControlServer>> ControlServer::start(ControlServerOptions opts, Handler handler) {
    auto listen_fd = listen_on(opts.path);
    if (!listen_fd) return listen_fd.error();
    UniqueFd stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd) return Error::from_errno("eventfd");
    UniqueFd epoll_fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_fd) return Error::from_errno("epoll_create1");
    for (auto [fd, tag] : {std::pair{listen_fd->get(), kListenTag}, {stop_fd.get(), kStopTag}})
        if (auto s = epoll_set(epoll_fd.get(), EPOLL_CTL_ADD, fd, EPOLLIN, tag); !s) return s.error();
    return std::unique_ptr<ControlServer>(new ControlServer(std::move(opts), std::move(handler),
                                                            std::move(*listen_fd), std::move(stop_fd),
                                                            std::move(epoll_fd)));
}

ControlServer::ControlServer(ControlServerOptions opts, Handler handler, UniqueFd listen_fd, UniqueFd stop_fd,
                             UniqueFd epoll_fd)
    : opts_(std::move(opts)), handler_(std::move(handler)), listen_fd_(std::move(listen_fd)),
      stop_fd_(std::move(stop_fd)), epoll_fd_(std::move(epoll_fd)) {
    io_ = std::thread([this] { io_loop(); });
}

ControlServer::~ControlServer() { stop(); }

size_t ControlServer::queued() {
    std::lock_guard lock(mu_);
    return queue_.size();
}

void ControlServer::stop() {
    if (stopping_.exchange(true)) return;
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_.get(), &one, sizeof one);
    io_.join();  // closes every pending connection
    {
        std::lock_guard lock(mu_);
        queue_.clear();  // closes them: the clients see the connection end without a reply
        queued_bytes_ = 0;
        for (auto& w : workers_)
            if (w.fd) ::shutdown(w.fd.get(), SHUT_RDWR);
    }
    reap(true);
    listen_fd_.reset();
    ::unlink(opts_.path.c_str());
}

void ControlServer::reap(bool all) {
    std::list<Worker> finished;
    {
        std::lock_guard lock(mu_);
        for (auto it = workers_.begin(); it != workers_.end();) {
            auto next = std::next(it);
            if (all || it->done.load()) finished.splice(finished.end(), workers_, it);
            it = next;
        }
    }
    for (auto& w : finished) w.thread.join();  // outside mu_: a worker takes it to finish
}

void ControlServer::io_loop() {
    epoll_event evs[64];
    while (!stopping_.load()) {
        if (opts_.on_io_wakeup) opts_.on_io_wakeup();
        int64_t now = mono_ms();
        int64_t next = now + 250;  // also bounds how long finished workers wait to be joined
        expire(now, next);
        if (listen_paused_until_ && listen_paused_until_ <= now) {
            listen_paused_until_ = 0;
            (void)epoll_set(epoll_fd_.get(), EPOLL_CTL_MOD, listen_fd_.get(), EPOLLIN, kListenTag);
        }
        if (listen_paused_until_) next = std::min(next, listen_paused_until_);
        int n = ::epoll_wait(epoll_fd_.get(), evs, 64, static_cast<int>(std::max<int64_t>(next - now, 0)));
        reap(false);
        for (int i = 0; i < n && !stopping_.load(); ++i) {
            uint64_t tag = evs[i].data.u64;
            if (tag == kListenTag) accept_some();
            else if (tag != kStopTag) on_input(tag);
        }
    }
    pending_.clear();
    buffered_ = 0;
}

// Answers requests that went silent or took too long, and ends drains.
void ControlServer::expire(int64_t now, int64_t& next) {
    for (auto it = pending_.begin(); it != pending_.end();) {
        auto cur = it++;
        Pending& p = cur->second;
        if (p.draining) {
            if (p.drain_until <= now) close_pending(cur->first);
            else next = std::min(next, p.drain_until);
            continue;
        }
        const int64_t silent_at = p.last_ms + opts_.read_timeout_ms;
        const int64_t late_at = p.accepted_ms + opts_.request_timeout_ms;
        // Bytes waiting unread mean this thread was held up (a stall of the machine, a
        // long copy of a large request), not that the client went silent: read them first.
        if (silent_at <= now && unread(p.fd.get()) == 0) {
            send_now(p.fd.get(), error_reply("usage", "incomplete request: nothing received within " +
                                                          std::to_string(opts_.read_timeout_ms) + " ms"));
            close_pending(cur->first);
        } else if (late_at <= now) {
            send_now(p.fd.get(), error_reply("usage", "request line not complete within " +
                                                          std::to_string(opts_.request_timeout_ms) + " ms"));
            close_pending(cur->first);
        } else {
            next = std::min({next, std::max(silent_at, now), late_at});
        }
    }
}

void ControlServer::accept_some() {
    for (int i = 0; i < kAcceptBatch; ++i) {
        UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) && evict_one()) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                // out of descriptors with nothing of ours to close: pause instead of spinning
                listen_paused_until_ = mono_ms() + kListenPauseMs;
                (void)epoll_set(epoll_fd_.get(), EPOLL_CTL_MOD, listen_fd_.get(), 0, kListenTag);
            }
            return;
        }
        admit(std::move(conn));
    }
}

void ControlServer::admit(UniqueFd conn) {
    while (pending_.size() >= opts_.max_pending && evict_one()) {}
    const int64_t now = mono_ms();
    const uint64_t id = next_id_++;
    if (!epoll_set(epoll_fd_.get(), EPOLL_CTL_ADD, conn.get(), EPOLLIN | EPOLLRDHUP, id)) return;
    Pending& p = pending_[id];
    p.fd = std::move(conn);
    p.accepted_ms = p.last_ms = now;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(p.fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != opts_.allowed_uid) {
        // Refused here, without a thread or a command slot; drained so that the client
        // reads the refusal after it wrote its request.
        refuse(id, p, error_reply("runtime", "permission denied: the control socket is for uid " +
                                                 std::to_string(opts_.allowed_uid) + " only"));
        return;
    }
    on_input(id);  // the request is often there already
}

void ControlServer::refuse(uint64_t, Pending& p, const Reply& r) {
    send_now(p.fd.get(), r);
    ::shutdown(p.fd.get(), SHUT_WR);
    buffered_ -= p.buf.size();
    std::string().swap(p.buf);
    p.draining = true;
    p.drain_until = mono_ms() + opts_.read_timeout_ms;
}

void ControlServer::close_pending(uint64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    buffered_ -= it->second.buf.size();
    pending_.erase(it);  // closing the fd takes it out of the epoll set
}

// Drops the connection that matters least: the oldest refused one being drained, else the
// request that has been silent longest (answered "busy"), so that a big request still
// arriving outlives idle ones. False when none is held.
bool ControlServer::evict_one() {
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
        if (it->second.draining) {
            close_pending(it->first);
            return true;
        }
    auto quiet = pending_.end();
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
        if (quiet == pending_.end() || it->second.last_ms < quiet->second.last_ms) quiet = it;
    if (quiet == pending_.end()) return false;
    send_now(quiet->second.fd.get(),
             error_reply("runtime", "server busy: too many connections sending requests, try again"));
    close_pending(quiet->first);
    return true;
}

void ControlServer::on_input(uint64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Pending& p = it->second;
    static thread_local char chunk[65536];
    // A bounded amount per wakeup, so that one fast sender cannot starve the others;
    // level-triggered epoll comes back for the rest.
    for (int round = 0; round < 16; ++round) {
        ssize_t n = ::recv(p.fd.get(), chunk, sizeof chunk, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            close_pending(id);  // gone before a complete line: nobody to answer
            return;
        }
        const int64_t now = mono_ms();
        const size_t got = static_cast<size_t>(n);
        if (p.draining) {
            // keep draining while the refused client is still sending, within the request bound
            p.drain_until = std::min(now + opts_.read_timeout_ms, p.accepted_ms + opts_.request_timeout_ms);
            continue;
        }
        p.last_ms = now;
        const char* nl = static_cast<const char*>(std::memchr(chunk, '\n', got));
        const size_t take = nl ? static_cast<size_t>(nl - chunk) : got;
        if (p.buf.size() + take > opts_.max_request_bytes) {
            refuse(id, p, error_reply("usage", "request larger than " + std::to_string(opts_.max_request_bytes) +
                                                   " bytes (the control socket's limit)"));
            continue;
        }
        if (buffered_ + queued_bytes_.load() + take > opts_.max_buffered_bytes) {
            refuse(id, p, error_reply("runtime", "server busy: " + std::to_string(opts_.max_buffered_bytes) +
                                                     " bytes of requests already being received, try again"));
            continue;
        }
        p.buf.append(chunk, take);
        buffered_ += take;
        if (nl) {
            std::string line = std::move(p.buf);
            buffered_ -= line.size();
            p.buf.clear();
            dispatch(id, std::move(line));
            return;
        }
    }
}

void ControlServer::dispatch(uint64_t id, std::string line) {
    auto it = pending_.find(id);
    UniqueFd fd = std::move(it->second.fd);
    pending_.erase(it);
    (void)epoll_set(epoll_fd_.get(), EPOLL_CTL_DEL, fd.get(), 0, 0);
    std::lock_guard lock(mu_);
    if (commands_ < opts_.max_commands) {
        ++commands_;
        spawn_locked(Job{std::move(fd), std::move(line)});
    } else if (queue_.size() < opts_.max_queued) {
        queued_bytes_ += line.size();
        queue_.push_back(Job{std::move(fd), std::move(line)});
    } else {
        send_now(fd.get(), error_reply("runtime", "server busy: " + std::to_string(opts_.max_commands) +
                                                      " requests being handled and " +
                                                      std::to_string(opts_.max_queued) + " waiting, try again"));
    }
}

void ControlServer::spawn_locked(Job job) {
    Worker& w = workers_.emplace_back();
    w.fd = std::move(job.fd);  // the worker closes it, under mu_, so stop() never shuts a reused number
    w.thread = std::thread([this, &w, l = std::move(job.line)]() mutable { work(w, std::move(l)); });
}

// Serves its first request, then queued ones until the queue is empty; a worker whose
// request turned into a stream stays with that stream.
void ControlServer::work(Worker& w, std::string line) {
    for (;;) {
        serve(w, std::move(line));
        std::lock_guard lock(mu_);
        w.fd.reset();
        if (w.stream) {
            --streams_;
            break;
        }
        if (queue_.empty() || stopping_.load()) {
            --commands_;
            break;
        }
        Job next = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= next.line.size();
        w.fd = std::move(next.fd);
        line = std::move(next.line);
    }
    w.done.store(true);
}

void ControlServer::serve(Worker& w, std::string line) {
    const int fd = w.fd.get();
    Reply reply = answer(line);
    std::string().swap(line);
    if (reply.stream) {
        std::lock_guard lock(mu_);
        if (streams_ >= opts_.max_streams) {
            reply = error_reply("runtime", "server busy: " + std::to_string(opts_.max_streams) +
                                               " event streams already open, try again");
        } else {
            // A stream waits for events for as long as the client stays: it leaves the
            // command slots, and a new worker takes over the queue.
            ++streams_;
            w.stream = true;
            if (!queue_.empty() && !stopping_.load()) {
                Job next = std::move(queue_.front());
                queue_.pop_front();
                queued_bytes_ -= next.line.size();
                spawn_locked(std::move(next));
            } else {
                --commands_;
            }
        }
    }
    bool sent = send_all(fd, dump_line(reply.body), mono_ms() + opts_.write_timeout_ms, stop_fd_.get()) == IoStatus::Ok;
    if (sent && reply.stream) {
        Writer writer(fd, stop_fd_.get(), stopping_, opts_.write_timeout_ms);
        try {
            reply.stream(writer);
        } catch (const std::exception&) {
            // the stream ends with the connection; nothing more can be said on it
        }
    }
}

std::variant<json, Reply> parse_request(std::string_view line) {
    auto req = parse_json_strict(line);
    if (!req) return error_reply("usage", "malformed JSON request: " + req.error().message);
    if (!req->is_object()) return error_reply("usage", "request must be a JSON object");
    auto cmd = req->find("cmd");
    if (cmd == req->end() || !cmd->is_string()) return error_reply("usage", "request needs a string \"cmd\"");
    return std::move(*req);
}

Reply ControlServer::answer(const std::string& line) {
    auto parsed = parse_request(line);
    if (auto* refused = std::get_if<Reply>(&parsed)) return std::move(*refused);
    try {
        return handler_(std::get<json>(parsed));
    } catch (const std::exception& e) {
        return error_reply("runtime", std::string("internal error: ") + e.what());
    }
}

}  // namespace smtpgov::svc
