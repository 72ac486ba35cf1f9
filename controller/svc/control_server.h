// The daemon's control socket (docs/internals.md "Control socket protocol"): a Unix stream
// socket, root peers only, one JSON request line per connection, one JSON reply line, or
// a stream of lines that the handler writes (events --follow).
// Other peers are refused at accept, without a thread; streams do not take a command slot.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
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

// One request line screened as the server does before calling the handler: strict JSON
// (a key given twice is refused), an object, with a string "cmd". Else the usage reply.
std::variant<nlohmann::json, Reply> parse_request(std::string_view line);

// Called on a worker thread, possibly on several at once: it must be thread-safe.
// request is a JSON object with a string "cmd". Exceptions become runtime errors.
using Handler = std::function<Reply(const nlohmann::json& request)>;

// Limits (docs/internals.md, "Control socket protocol"). One I/O thread reads every
// request (epoll, non-blocking), so a slow, silent or huge request holds only its own
// buffer; a complete request line goes to a thread of its own for the handler.
struct ControlServerOptions {
    std::string path = "/run/smtpgov/ctl.sock";
    uid_t allowed_uid = 0;              // SO_PEERCRED uid that may talk to us
    int read_timeout_ms = 2000;         // silence allowed while a request line arrives
    int request_timeout_ms = 120000;    // for the whole request line, however it trickles
    int write_timeout_ms = 5000;        // per reply line
    // A 100,000-VM policy with addresses is tens of MB; 256 MiB leaves room for more.
    size_t max_request_bytes = size_t{256} << 20;
    size_t max_buffered_bytes = size_t{512} << 20;  // all requests being read, together
    // Connections still sending their request (and refused ones being drained). Past it
    // the oldest is dropped: refused ones first, then the oldest unfinished request.
    size_t max_pending = 128;
    size_t max_commands = 16;           // requests handled at once; more wait in a queue
    size_t max_queued = 256;            // requests waiting for a handler; more get "busy"
    size_t max_streams = 64;            // event streams at once, apart from max_commands
    // Tests only: called on the I/O thread at each of its wakeups, before the timeouts
    // are checked (a test holds the thread up there, as a stall of the machine would).
    std::function<void()> on_io_wakeup;
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
    // Requests waiting for a handler now (a test waits on it rather than sleeping).
    size_t queued();

private:
    // A connection the I/O thread holds: reading its request, or refused and draining.
    struct Pending {
        UniqueFd fd;
        std::string buf;          // the request line so far
        int64_t accepted_ms = 0;
        int64_t last_ms = 0;      // last byte received
        bool draining = false;    // answered with an error; input is discarded until EOF
        int64_t drain_until = 0;
    };
    struct Job {
        UniqueFd fd;
        std::string line;            // the complete request line
    };
    struct Worker {
        std::thread thread;
        UniqueFd fd;                 // guarded by mu_; empty once the worker closed it
        std::atomic<bool> done{false};
        bool stream = false;         // guarded by mu_: counts against max_streams
    };

    ControlServer(ControlServerOptions opts, Handler handler, UniqueFd listen_fd, UniqueFd stop_fd,
                  UniqueFd epoll_fd);
    void io_loop();
    void expire(int64_t now, int64_t& next);
    void accept_some();
    void admit(UniqueFd conn);
    void on_input(uint64_t id);
    void refuse(uint64_t id, Pending& p, const Reply& r);
    void close_pending(uint64_t id);
    bool evict_one();
    void dispatch(uint64_t id, std::string line);
    void spawn_locked(Job job);  // caller holds mu_ and counted the worker in commands_
    void work(Worker& w, std::string line);
    void serve(Worker& w, std::string line);
    Reply answer(const std::string& line);
    void reap(bool all);

    ControlServerOptions opts_;
    Handler handler_;
    UniqueFd listen_fd_;
    UniqueFd stop_fd_;                     // eventfd, readable forever once stop() wrote it
    UniqueFd epoll_fd_;
    std::atomic<bool> stopping_{false};
    std::thread io_;
    // I/O thread only:
    std::map<uint64_t, Pending> pending_;  // by id; ids grow, so begin() is the oldest
    uint64_t next_id_ = 2;                 // 0 and 1 tag the listener and stop_fd
    size_t buffered_ = 0;                  // bytes in all pending_ buffers
    int64_t listen_paused_until_ = 0;
    // Shared with workers:
    std::mutex mu_;
    std::list<Worker> workers_;
    std::deque<Job> queue_;                // guarded by mu_
    size_t commands_ = 0, streams_ = 0;    // guarded by mu_: workers on commands, on streams
    std::atomic<size_t> queued_bytes_{0};  // in queue_, counted against max_buffered_bytes
};

}  // namespace smtpgov::svc
