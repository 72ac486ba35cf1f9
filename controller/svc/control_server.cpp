#include "svc/control_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
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
    if (::listen(fd.get(), 64) != 0) return Error::from_errno("listen " + path);
    return fd;
}

// Reads and discards input until EOF, the deadline or stop.
void drain(int fd, int64_t deadline_ms, int stop_fd) {
    char sink[65536];
    for (;;) {
        ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0) continue;
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) return;
        pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
        if (::poll(p, 2, poll_timeout(deadline_ms)) <= 0 || (p[1].revents & POLLIN)) return;
    }
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
    return std::unique_ptr<ControlServer>(
        new ControlServer(std::move(opts), std::move(handler), std::move(*listen_fd), std::move(stop_fd)));
}

ControlServer::ControlServer(ControlServerOptions opts, Handler handler, UniqueFd listen_fd, UniqueFd stop_fd)
    : opts_(std::move(opts)), handler_(std::move(handler)), listen_fd_(std::move(listen_fd)),
      stop_fd_(std::move(stop_fd)) {
    acceptor_ = std::thread([this] { accept_loop(); });
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() {
    if (stopping_.exchange(true)) return;
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_.get(), &one, sizeof one);
    acceptor_.join();
    {
        std::lock_guard lock(mu_);
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

void ControlServer::accept_loop() {
    while (!stopping_.load()) {
        pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
        ::poll(p, 2, 250);  // the timeout bounds how long finished workers wait to be joined
        reap(false);
        if (stopping_.load() || !(p[0].revents & POLLIN)) continue;
        UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn) continue;
        size_t active;
        {
            std::lock_guard lock(mu_);
            active = workers_.size();
        }
        if (active >= opts_.max_connections) {
            send_all(conn.get(), dump_line(error_reply("runtime", "server busy, try again").body), mono_ms() + 100);
            continue;
        }
        spawn(std::move(conn));
    }
}

void ControlServer::spawn(UniqueFd conn) {
    std::lock_guard lock(mu_);
    Worker& w = workers_.emplace_back();
    w.fd = std::move(conn);  // the worker closes it, under mu_, so stop() never shuts a reused number
    w.thread = std::thread([this, &w] { serve(w); });
}

void ControlServer::serve(Worker& w) {
    const int fd = w.fd.get();
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == opts_.allowed_uid) {
        converse(fd);
    } else {
        auto r = error_reply("runtime", "permission denied: the control socket is for uid " +
                                            std::to_string(opts_.allowed_uid) + " only");
        send_all(fd, dump_line(r.body), mono_ms() + opts_.write_timeout_ms, stop_fd_.get());
        ::shutdown(fd, SHUT_WR);  // see converse(): the refusal must not be lost to a reset
        drain(fd, mono_ms() + opts_.read_timeout_ms, stop_fd_.get());
    }
    {
        std::lock_guard lock(mu_);
        w.fd.reset();
    }
    w.done.store(true);
}

void ControlServer::converse(int fd) {
    bool unread_input = false;
    if (auto reply = answer(fd, unread_input)) {
        bool sent =
            send_all(fd, dump_line(reply->body), mono_ms() + opts_.write_timeout_ms, stop_fd_.get()) == IoStatus::Ok;
        if (sent && reply->stream) {
            Writer writer(fd, stop_fd_.get(), stopping_, opts_.write_timeout_ms);
            try {
                reply->stream(writer);
            } catch (const std::exception&) {
                // the stream ends with the connection; nothing more can be said on it
            }
        }
    }
    if (unread_input) {
        // Closing with unread input resets the connection and the client could lose the
        // reply: let it finish writing and read the reply first.
        ::shutdown(fd, SHUT_WR);
        drain(fd, mono_ms() + opts_.read_timeout_ms, stop_fd_.get());
    }
}

std::optional<Reply> ControlServer::answer(int fd, bool& unread_input) {
    std::string buf, line;
    switch (read_line(fd, buf, line, opts_.max_request_bytes, mono_ms() + opts_.read_timeout_ms, stop_fd_.get())) {
    case IoStatus::Ok: break;
    case IoStatus::TooLong:
        unread_input = true;
        return error_reply("usage", "request larger than " + std::to_string(opts_.max_request_bytes) + " bytes");
    case IoStatus::Timeout:
        return error_reply("usage", "no complete request line within " + std::to_string(opts_.read_timeout_ms) + " ms");
    default: return std::nullopt;  // peer gone, or we are stopping
    }
    json req = json::parse(line, nullptr, false);
    if (req.is_discarded()) return error_reply("usage", "malformed JSON request");
    if (!req.is_object()) return error_reply("usage", "request must be a JSON object");
    auto cmd = req.find("cmd");
    if (cmd == req.end() || !cmd->is_string()) return error_reply("usage", "request needs a string \"cmd\"");
    try {
        return handler_(req);
    } catch (const std::exception& e) {
        return error_reply("runtime", std::string("internal error: ") + e.what());
    }
}

}  // namespace smtpgov::svc
