// The scanning proxy's health check (DESIGN.md "Steering"): a TCP connect to each proxy
// endpoint and its "220" greeting, every check interval, on a thread of its own so the
// daemon's loop never waits for a slow or silent proxy. It only reports what it finds;
// what follows from it is decided by core/Tiers (proxy_health).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/ip_prefix.h"
#include "core/result.h"

namespace smtpgov::svc {

// Connects to `e` and reads its greeting line: ok when it starts with 220 (a multi-line
// 220- too), else an error naming what happened ("connect 192.0.2.10:25: Connection
// refused", "no greeting within 2000 ms", "greeting \"421 busy\" is not 220"). Sends QUIT.
// The whole probe takes at most timeout_ms.
Status probe_smtp(const Endpoint& e, int timeout_ms);

class ProxyChecker {
public:
    // Called on the checker's thread after every probe (up or down, changed or not).
    using Report = std::function<void(const Endpoint& e, bool up, const std::string& detail)>;

    explicit ProxyChecker(Report report, int timeout_ms = 2000);
    ~ProxyChecker();  // stops and joins
    ProxyChecker(const ProxyChecker&) = delete;
    ProxyChecker& operator=(const ProxyChecker&) = delete;

    // What to probe and how often. Thread-safe; a change is probed at once.
    void configure(std::vector<Endpoint> targets, uint32_t interval_s);

private:
    void run();

    Report report_;
    int timeout_ms_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Endpoint> targets_;
    uint32_t interval_s_ = 5;
    bool changed_ = false, stop_ = false;
    std::thread thread_;  // last: started once the rest is set up
};

}  // namespace smtpgov::svc
