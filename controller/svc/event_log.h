// Tier changes and tickets (docs/internals.md "Event"): appended as JSON lines to
// <state_dir>/events.jsonl, the newest kept in memory for `events`, `vm show` and followers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "core/tier.h"
#include "svc/control_server.h"
#include "svc/fd_io.h"

namespace smtpgov::svc {

struct Event {
    int64_t ts_ms = 0;               // Unix ms; 0 = stamped by append()
    std::string type = "tier_change";  // "tier_change" | "ticket"
    std::string vm, tenant;
    Tier from = Tier::Ok, to = Tier::Ok;
    double score = 0;
    std::string reason;
    nlohmann::json evidence = nlohmann::json::object();  // {rate, syn, spoofed, replies, samples}
};

// {ts_ms, time, type, vm, tenant, from, to, score, reason, evidence}
nlohmann::json to_json(const Event& e);
std::string rfc3339_ms(int64_t unix_ms);  // "2026-01-02T03:04:05.678Z"

class EventLog {
    struct Shared;

public:
    static constexpr uint64_t kDefaultMaxBytes = 64ull << 20;

    // Opens (creating) <state_dir>/events.jsonl and loads its last tail_size events.
    // When the file would grow past max_bytes it is renamed to events.jsonl.1 (replacing
    // the previous generation) and a new file is started, so the log never fills the disk.
    static Result<std::unique_ptr<EventLog>> open(const std::string& state_dir, size_t tail_size = 1000,
                                                  uint64_t max_bytes = kDefaultMaxBytes);
    ~EventLog();  // wakes followers, which then see closed()

    // Writes one line (flushed, not fsynced) and publishes it to the tail and followers.
    // Thread-safe. On a write error the event is still published, and the error returned.
    Status append(const Event& e);
    // The newest `limit` events (of one VM when vm is not empty), oldest first.
    std::vector<nlohmann::json> recent(size_t limit, const std::string& vm = "") const;
    const std::string& path() const { return path_; }

    // Sees every event appended after follow() was called. May outlive the EventLog.
    class Follower {
    public:
        // The next event, or nullopt after timeout_ms or once the log is closed.
        std::optional<nlohmann::json> next(int timeout_ms);
        bool closed() const;
        uint64_t lost() const { return lost_; }  // events that left the tail before it caught up

    private:
        friend class EventLog;
        explicit Follower(std::shared_ptr<Shared> s, uint64_t cursor) : shared_(std::move(s)), cursor_(cursor) {}
        std::shared_ptr<Shared> shared_;
        uint64_t cursor_;
        uint64_t lost_ = 0;
    };
    Follower follow();

private:
    struct Shared {
        mutable std::mutex mu;
        std::condition_variable cv;
        std::deque<nlohmann::json> tail;  // tail[i] has sequence number first_seq + i
        uint64_t first_seq = 0;
        size_t capacity = 1000;
        bool closed = false;
        uint64_t end_seq() const { return first_seq + tail.size(); }
        void push_locked(nlohmann::json ev);  // caller holds mu (or owns Shared alone)
    };

    EventLog(std::string path, UniqueFd fd, std::shared_ptr<Shared> shared, uint64_t size, uint64_t max_bytes);
    Status rotate_locked();  // caller holds shared_->mu

    std::string path_;
    UniqueFd fd_;                          // O_APPEND: each line is one write()
    std::shared_ptr<Shared> shared_;
    uint64_t size_ = 0;              // bytes in the current file
    uint64_t max_bytes_ = kDefaultMaxBytes;
};

// The `events` command with follow: answers {"ok":true,"stream":true} and then writes each
// new event as one line until the client leaves, the server stops or the log closes.
// Events appended after this call are never missed.
Reply follow_events_reply(EventLog& log);

}  // namespace smtpgov::svc
