#include "client.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace smtpgov::ctl {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) { g_interrupted.store(true); }

constexpr size_t kMaxLine = 16u << 20;  // answers carry at most a policy or a VM list

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

Result<int> connect_unix(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) return Error::msg("control socket path too long: " + path);
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::from_errno("socket");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        int err = errno;
        ::close(fd);
        return Error::from_errno("cannot reach smtpgovd at " + path, err);
    }
    return fd;
}

Status send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("send request to smtpgovd");
        off += size_t(n);
    }
    return ok_status();
}

// Buffered line reader over a socket with a per-line deadline (timeout_ms < 0: none).
class LineReader {
public:
    explicit LineReader(int fd) : fd_(fd) {}

    // A line without its '\n'; Error on timeout, EOF before a line, interrupt or I/O error.
    Result<std::string> next(int timeout_ms) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            if (auto nl = buf_.find('\n'); nl != std::string::npos) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return line;
            }
            if (buf_.size() > kMaxLine) return Error::msg("smtpgovd answer exceeds 16 MiB");
            if (g_interrupted.load()) return Error{EINTR, "interrupted"};
            int wait = 200;  // wake up regularly to notice Ctrl-C
            if (timeout_ms >= 0) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                deadline - std::chrono::steady_clock::now())
                                .count();
                if (left <= 0) return Error{ETIMEDOUT, "timed out waiting for smtpgovd"};
                wait = int(std::min<long long>(left, wait));
            }
            pollfd p{fd_, POLLIN, 0};
            int r = ::poll(&p, 1, wait);
            if (r < 0 && errno != EINTR) return Error::from_errno("poll control socket");
            if (r <= 0) continue;
            char chunk[65536];
            ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return Error::from_errno("read answer from smtpgovd");
            if (n == 0) {
                if (!buf_.empty()) {  // tolerate a final line without '\n'
                    std::string line;
                    line.swap(buf_);
                    return line;
                }
                return Error{EPIPE, "smtpgovd closed the connection"};
            }
            buf_.append(chunk, size_t(n));
        }
    }

private:
    int fd_;
    std::string buf_;
};

Result<nlohmann::json> parse_envelope(const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("ok") || !j["ok"].is_boolean())
        return Error::msg("malformed answer from smtpgovd: " + line.substr(0, 120));
    return j;
}

}  // namespace

Result<nlohmann::json> SocketTransport::call(const nlohmann::json& request) {
    auto fd = connect_unix(path_);
    if (!fd) return fd.error();
    Fd sock(*fd);
    if (auto st = send_all(sock.get(), request.dump() + "\n"); !st) return st.error();
    LineReader reader(sock.get());
    auto line = reader.next(timeout_ms_);
    if (!line) return line.error();
    return parse_envelope(*line);
}

Result<nlohmann::json> SocketTransport::stream(const nlohmann::json& request,
                                               const std::function<bool(const nlohmann::json&)>& on_line) {
    auto fd = connect_unix(path_);
    if (!fd) return fd.error();
    Fd sock(*fd);
    if (auto st = send_all(sock.get(), request.dump() + "\n"); !st) return st.error();
    LineReader reader(sock.get());
    auto first = reader.next(timeout_ms_);
    if (!first) return first.error();
    auto env = parse_envelope(*first);
    if (!env || !(*env)["ok"].get<bool>() || !env->value("stream", false)) return env;
    for (;;) {
        auto line = reader.next(-1);
        if (!line) {
            // the user stopping the stream, or the daemon ending it, is a normal end
            if (line.error().errnum == EINTR || line.error().errnum == EPIPE) return env;
            return line.error();
        }
        if (line->empty()) continue;
        auto j = nlohmann::json::parse(*line, nullptr, false);
        if (j.is_discarded()) return Error::msg("malformed stream line from smtpgovd: " + line->substr(0, 120));
        if (!on_line(j)) return env;
    }
}

void install_interrupt_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: poll/read return EINTR
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_interrupted.load(); }

}  // namespace smtpgov::ctl
