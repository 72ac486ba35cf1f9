#include "svc/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>

#include "svc/fd_io.h"

namespace smtpgov::svc {

using nlohmann::json;

namespace {

constexpr size_t kMaxReplyLine = 64u << 20;  // a vm list of 100k VMs is tens of MB

Error io_error(IoStatus s, const std::string& what) {
    switch (s) {
    case IoStatus::Timeout: return Error{ETIMEDOUT, what + ": timed out"};
    case IoStatus::Eof: return Error{ECONNRESET, what + ": connection closed by smtpgovd"};
    case IoStatus::TooLong: return Error{EMSGSIZE, what + ": reply line too long"};
    case IoStatus::Interrupted: return Error{EINTR, what + ": interrupted"};
    default: return Error::from_errno(what);
    }
}

struct Connection {
    UniqueFd fd;
    std::string buf;
};

Result<Connection> connect_and_send(const std::string& path, const json& req, int64_t deadline,
                                    bool stop_on_eintr = true) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path) return Error{ENAMETOOLONG, "socket path: " + path};
    path.copy(addr.sun_path, path.size());
    Connection c{UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)), {}};
    if (!c.fd) return Error::from_errno("socket");
    if (::connect(c.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return Error::from_errno("connect " + path);
    std::string line = req.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    if (IoStatus s = send_all(c.fd.get(), line, deadline, -1, stop_on_eintr); s != IoStatus::Ok)
        return io_error(s, "send to " + path);
    return c;
}

Result<json> read_json_line(Connection& c, int64_t deadline, const std::string& what, bool stop_on_eintr = true) {
    std::string line;
    if (IoStatus s = read_line(c.fd.get(), c.buf, line, kMaxReplyLine, deadline, -1, stop_on_eintr); s != IoStatus::Ok)
        return io_error(s, what);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Error{EPROTO, what + ": not a JSON object"};
    return j;
}

}  // namespace

Result<json> request(const std::string& socket_path, const json& req, int timeout_ms) {
    int64_t deadline = mono_ms() + timeout_ms;
    auto conn = connect_and_send(socket_path, req, deadline);
    if (!conn) return conn.error();
    return read_json_line(*conn, deadline, "reply from " + socket_path);
}

Exchange exchange(const std::string& socket_path, const json& req, const RequestOptions& opts) {
    Exchange ex;
    auto deadline = [](int ms) { return ms < 0 ? int64_t{-1} : mono_ms() + ms; };
    auto conn = connect_and_send(socket_path, req, deadline(opts.send_timeout_ms), opts.stop_on_eintr);
    if (!conn) {
        ex.reply = conn.error();
        return ex;
    }
    ex.sent = true;
    ex.reply = read_json_line(*conn, deadline(opts.reply_timeout_ms), "reply from " + socket_path, opts.stop_on_eintr);
    return ex;
}

Result<json> request_stream(const std::string& socket_path, const json& req, int timeout_ms,
                            const std::function<bool(const json& line)>& on_line) {
    int64_t deadline = mono_ms() + timeout_ms;
    auto conn = connect_and_send(socket_path, req, deadline);
    if (!conn) return conn.error();
    auto head = read_json_line(*conn, deadline, "reply from " + socket_path);
    if (!head || !head->value("ok", false) || !head->value("stream", false)) return head;
    for (;;) {
        auto line = read_json_line(*conn, -1, "stream from " + socket_path);
        if (!line) {
            if (line.error().errnum == ECONNRESET) return head;  // the server ended the stream
            return line.error();
        }
        if (!on_line(*line)) return head;
    }
}

}  // namespace smtpgov::svc
