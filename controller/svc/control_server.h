// The daemon's control socket (docs/internals.md "Control socket protocol"): a Unix stream
// socket, root peers only, one JSON request line per connection, one JSON reply line, or
// a stream of lines that the handler writes (events --follow).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/policy.h"
#include "core/result.h"
#include "svc/fd_io.h"

namespace smtpgov::svc {

// A streaming handler's hold on its connection. Lines go out as they are written.
class Writer {
public:
    Writer(int fd, int stop_fd, const std::atomic<bool>& stopping, int write_timeout_ms);

    bool write_line(std::string_view line);     // appends '\n'; false once closed
    bool write(const nlohmann::json& value);    // one compact JSON line
    // False once the peer hung up, a write failed or the server is stopping; a stream must
    // return soon after that (check at least every few hundred ms, or use wait()).
    bool open();
    // Sleeps up to timeout_ms, waking early when the peer hangs up or the server stops.
    // Returns open().
    bool wait(int timeout_ms);

private:
    int fd_, stop_fd_;
    const std::atomic<bool>& stopping_;
    int write_timeout_ms_;
    bool failed_ = false;
};

struct Reply {
    nlohmann::json body;                     // the one reply line
    std::function<void(Writer&)> stream;     // set: after body, the handler owns the connection
};

Reply ok_reply(nlohmann::json result);
// kind: usage | validation | runtime | not_found (smtpgovctl exits 2 for the first two).
Reply error_reply(std::string_view kind, std::string message, const std::vector<Problem>& problems = {});
// Answers {"ok":true,"stream":true}, then runs fn on the connection.
Reply stream_reply(std::function<void(Writer&)> fn);

// Called on a worker thread, possibly on several at once: it must be thread-safe.
// request is a JSON object with a string "cmd". Exceptions become runtime errors.
using Handler = std::function<Reply(const nlohmann::json& request)>;

struct ControlServerOptions {
    std::string path = "/run/smtpgov/ctl.sock";
    uid_t allowed_uid = 0;              // SO_PEERCRED uid that may talk to us
    int read_timeout_ms = 2000;         // for the whole request line
    int write_timeout_ms = 5000;        // per reply line
    size_t max_request_bytes = 1 << 20;
    size_t max_connections = 16;        // handled at once, streams included; more get "busy"
};

class ControlServer {
public:
    // Creates the parent directory (0755) if needed, replaces a stale socket (refuses when
    // a live server answers on it), binds, chmods 0600 and starts accepting.
    static Result<std::unique_ptr<ControlServer>> start(ControlServerOptions opts, Handler handler);
    ~ControlServer();  // stop()
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Stops accepting, ends every connection (streams included), joins all threads and
    // removes the socket file. Idempotent.
    void stop();
    const std::string& path() const { return opts_.path; }

private:
    struct Worker {
        std::thread thread;
        UniqueFd fd;                 // guarded by mu_; empty once the worker closed it
        std::atomic<bool> done{false};
    };

    ControlServer(ControlServerOptions opts, Handler handler, UniqueFd listen_fd, UniqueFd stop_fd);
    void accept_loop();
    void spawn(UniqueFd conn);
    void serve(Worker& w);
    void converse(int fd);
    std::optional<Reply> answer(int fd, bool& unread_input);  // nullopt: nobody to answer
    void reap(bool all);

    ControlServerOptions opts_;
    Handler handler_;
    UniqueFd listen_fd_;
    UniqueFd stop_fd_;                     // eventfd, readable forever once stop() wrote it
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    std::mutex mu_;
    std::list<Worker> workers_;
};

}  // namespace smtpgov::svc
