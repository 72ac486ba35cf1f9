// DNSBL lookups (DESIGN.md "Address reputation contract") on a thread of their own: the
// scheduler (core/dnsbl_schedule.h) says what is due, c-ares asks the one configured
// resolver (never /etc/resolv.conf: a public resolver is refused by the big lists, and
// a host's resolver may rewrite NXDOMAIN), and each answer is handed to the report
// callback on this thread. A listing's TXT (the reason) is asked right after its A, then
// the zone's 127.0.0.1 (RFC 5782: never listed; a zone that lists it lists the world).
// The daemon's loop never waits for DNS: the callback only posts the answer to it, and
// the listing state is decided there (core/dnsbl_listings.h).
//
// Bounded: each query gives up after 2 tries of 2 s (then 4 s); the rate is the
// scheduler's. Off-path forgery: c-ares picks random query ids, but its UDP source port
// stays the same for a server; run the resolver on the host or over a trusted path.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/dnsbl.h"
#include "core/result.h"
#include "core/unique_fd.h"

namespace smtpgov::svc {

struct DnsblAnswer {
    dnsbl::Lookup lookup;
    dnsbl::Answer answer;
};

class DnsblResolver {
public:
    using Report = std::function<void(DnsblAnswer)>;  // called on the resolver's thread

    // Needs opts.enabled() and a resolver. Errors: c-ares could not be set up.
    static Result<std::unique_ptr<DnsblResolver>> start(const dnsbl::Options& opts, Report report,
                                                        int timeout_ms = 2000, int tries = 2);
    ~DnsblResolver();  // stops and joins; answers in flight are dropped
    DnsblResolver(const DnsblResolver&) = delete;
    DnsblResolver& operator=(const DnsblResolver&) = delete;

    // The lookups to make from now on (thread-safe; the scheduler takes them at once).
    void set_lookups(std::vector<dnsbl::Lookup> lookups);

private:
    struct Channel;
    struct Query;
    DnsblResolver(const dnsbl::Options& opts, Report report);
    void run();
    void take_lookups(int64_t now_ms);
    void issue(int64_t now_ms);
    void wait(int64_t now_ms);
    void answered(Query* q, int status, const unsigned char* buf, int len);
    void txt_answered(Query* q, int status, const unsigned char* buf, int len);
    void control_answered(Query* q, int status, const unsigned char* buf, int len);
    void finish(Query* q);

    dnsbl::Options opts_;
    Report report_;
    std::unique_ptr<Channel> channel_;  // used on the thread only
    UniqueFd wake_;                      // eventfd: new lookups or stop

    std::mutex mu_;
    std::optional<std::vector<dnsbl::Lookup>> pending_;  // guarded by mu_
    bool stop_ = false;                                   // guarded by mu_
    std::thread thread_;  // last: started once the rest is set up
};

}  // namespace smtpgov::svc
