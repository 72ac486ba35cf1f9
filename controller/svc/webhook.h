// Delivers tickets to an operator's HTTP endpoint: POST of the event JSON, from a
// background thread with a bounded queue, so the sweep never waits on the network.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

namespace smtpgov::svc {

struct WebhookOptions {
    std::string url;                 // http:// or https://
    size_t queue_max = 1000;         // when full, the oldest ticket is dropped
    int timeout_ms = 5000;           // per attempt, connect included
    int max_attempts = 5;            // per ticket
    int backoff_initial_ms = 1000;   // doubles after each failed attempt ...
    int backoff_max_ms = 30000;      // ... up to this
};

struct WebhookStats {
    uint64_t sent = 0;      // answered 2xx
    uint64_t failed = 0;    // gave up: attempts exhausted or a 4xx that retrying cannot fix
    uint64_t dropped = 0;   // pushed out of a full queue, or still queued at stop()
    uint64_t retries = 0;   // attempts after the first
    uint64_t queued = 0;    // waiting now (in flight included)
};

class Webhook {
public:
    explicit Webhook(WebhookOptions opts);
    ~Webhook();  // stop()
    Webhook(const Webhook&) = delete;
    Webhook& operator=(const Webhook&) = delete;

    // Queues one POST; never blocks on the network. Thread-safe.
    void post(const nlohmann::json& body);
    WebhookStats stats() const;
    // Waits until nothing is queued or in flight; false on timeout.
    bool wait_idle(int timeout_ms);
    // Abandons queued tickets (counted as dropped), interrupts backoff, joins the thread.
    void stop();

private:
    void run();
    // One delivery with retries; false when stop() interrupted it.
    bool deliver(const std::string& body);
    // HTTP status, or 0 for a transport error (refused, timeout, DNS).
    long attempt(void* curl, const std::string& body);

    WebhookOptions opts_;
    mutable std::mutex mu_;
    std::condition_variable cv_;       // queue non-empty, idle, or stopping
    std::deque<std::string> queue_;
    bool in_flight_ = false;
    bool stopping_ = false;
    WebhookStats stats_;
    std::thread thread_;
};

}  // namespace smtpgov::svc
