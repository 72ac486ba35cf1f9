#include "svc/dnsbl_resolver.h"

#include <arpa/inet.h>
#include <ares.h>
#include <arpa/nameser.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "core/dnsbl_schedule.h"

namespace smtpgov::svc {

using dnsbl::Answer;

namespace {

int64_t mono_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

Answer::Status status_of(int ares_status) {
    switch (ares_status) {
    case ARES_SUCCESS: return Answer::Status::Ok;
    case ARES_ENOTFOUND: return Answer::Status::NxDomain;
    case ARES_ENODATA: return Answer::Status::NoData;
    case ARES_ESERVFAIL: return Answer::Status::ServFail;
    case ARES_EREFUSED: return Answer::Status::Refused;
    case ARES_ETIMEOUT: return Answer::Status::Timeout;
    case ARES_EBADRESP:
    case ARES_EFORMERR:
    case ARES_EBADNAME: return Answer::Status::Malformed;
    case ARES_ECONNREFUSED:
    case ARES_EOF: return Answer::Status::Unreachable;
    default: return Answer::Status::Other;
    }
}

// The A records of an answer, and their smallest TTL; false when it cannot be parsed.
bool parse_a(const unsigned char* buf, int len, Answer& out) {
    ares_addrttl rr[32];
    int n = 32;
    if (ares_parse_a_reply(buf, len, nullptr, rr, &n) != ARES_SUCCESS) return false;
    out.ttl_s = 0;
    for (int i = 0; i < n; ++i) {
        char text[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &rr[i].ipaddr, text, sizeof text);
        out.a.emplace_back(text);
        const uint32_t ttl = static_cast<uint32_t>(std::max(rr[i].ttl, 0));
        out.ttl_s = i == 0 ? ttl : std::min(out.ttl_s, ttl);
    }
    return n > 0;
}

// TXT strings of an answer (the parts of one record joined), at most 8 of 512 bytes.
std::vector<std::string> parse_txt(const unsigned char* buf, int len) {
    std::vector<std::string> out;
    ares_txt_ext* head = nullptr;
    if (ares_parse_txt_reply_ext(buf, len, &head) != ARES_SUCCESS) return out;
    std::string cur;
    for (ares_txt_ext* t = head; t; t = t->next) {
        if (t->record_start && !cur.empty()) out.push_back(std::move(cur)), cur.clear();
        cur.append(reinterpret_cast<const char*>(t->txt), t->length);
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    ares_free_data(head);
    if (out.size() > 8) out.resize(8);
    for (std::string& s : out) {
        if (s.size() > 512) s.resize(512);
        for (char& ch : s)
            if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ' ';  // no control bytes in logs
    }
    return out;
}

}  // namespace

struct DnsblResolver::Channel {
    ares_channel ch = nullptr;
    dnsbl::Scheduler sched;
    Channel(uint32_t interval_s, uint32_t qps) : sched(interval_s, qps) {}
    ~Channel() {
        if (ch) ares_destroy(ch);
    }
};

struct DnsblResolver::Query {
    DnsblResolver* self;
    dnsbl::Lookup lookup;
    Answer answer;
};

DnsblResolver::DnsblResolver(const dnsbl::Options& opts, Report report) : opts_(opts), report_(std::move(report)) {}

Result<std::unique_ptr<DnsblResolver>> DnsblResolver::start(const dnsbl::Options& opts, Report report, int timeout_ms,
                                                             int tries) {
    if (!opts.enabled() || !opts.resolver) return Error{EINVAL, "dnsbl: no zones or no resolver"};
    if (int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS)
        return Error{EIO, std::string("c-ares: ") + ares_strerror(rc)};
    std::unique_ptr<DnsblResolver> r(new DnsblResolver(opts, std::move(report)));
    r->channel_ = std::make_unique<Channel>(opts.interval_s, opts.queries_per_s);
    ares_options o{};
    // Only the configured server: /dev/null for resolv.conf, no search list, no hosts file.
    char resolvconf[] = "/dev/null";
    char lookups[] = "b";
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    o.timeout = timeout_ms;
    o.tries = tries;
    o.ndomains = 0;
    o.domains = nullptr;
    o.resolvconf_path = resolvconf;
    o.lookups = lookups;
    const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS | ARES_OPT_RESOLVCONF |
                     ARES_OPT_LOOKUPS;
    if (int rc = ares_init_options(&r->channel_->ch, &o, mask); rc != ARES_SUCCESS)
        return Error{EIO, std::string("c-ares init: ") + ares_strerror(rc)};
    const std::string server = opts.resolver->to_string();
    if (int rc = ares_set_servers_ports_csv(r->channel_->ch, server.c_str()); rc != ARES_SUCCESS)
        return Error{EINVAL, "dnsbl/resolver " + server + ": " + ares_strerror(rc)};
    r->wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!r->wake_) return Error::from_errno("dnsbl: eventfd");
    r->thread_ = std::thread([p = r.get()] { p->run(); });
    return r;
}

DnsblResolver::~DnsblResolver() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    channel_.reset();  // ares_destroy: callbacks of queries in flight run with ARES_EDESTRUCTION
}

void DnsblResolver::set_lookups(std::vector<dnsbl::Lookup> lookups) {
    {
        std::lock_guard lock(mu_);
        pending_ = std::move(lookups);
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

void DnsblResolver::run() {
    for (;;) {
        {
            std::lock_guard lock(mu_);
            if (stop_) return;
        }
        const int64_t now = mono_ms();
        take_lookups(now);
        issue(now);
        wait(now);
    }
}

void DnsblResolver::take_lookups(int64_t now_ms) {
    std::optional<std::vector<dnsbl::Lookup>> next;
    {
        std::lock_guard lock(mu_);
        next.swap(pending_);
    }
    if (next) channel_->sched.set_lookups(*next, now_ms);
}

void DnsblResolver::issue(int64_t now_ms) {
    const std::map<std::string, dnsbl::Zone> zones = [&] {
        std::map<std::string, dnsbl::Zone> m;
        for (const auto& z : opts_.zones) m[z.name] = z;
        return m;
    }();
    while (auto l = channel_->sched.next(now_ms)) {
        auto z = zones.find(l->zone);
        auto name = z == zones.end() ? std::nullopt : dnsbl::query_name(l->address, z->second);
        auto* q = new Query{this, *l, {}};
        if (!name) {  // not a lookup of this configuration (cannot happen: lookups_of made it)
            q->answer.detail = "no query name for " + l->address.to_string() + " in " + l->zone;
            finish(q);
            continue;
        }
        ares_query(channel_->ch, name->c_str(), ns_c_in, ns_t_a,
                   [](void* arg, int status, int, unsigned char* buf, int len) {
                       auto* qq = static_cast<Query*>(arg);
                       qq->self->answered(qq, status, buf, len);
                   },
                   q);
    }
}

void DnsblResolver::answered(Query* q, int status, const unsigned char* buf, int len) {
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        delete q;
        return;
    }
    q->answer.status = status_of(status);
    q->answer.detail = ares_strerror(status);
    if (status == ARES_SUCCESS && !parse_a(buf, len, q->answer)) q->answer.status = Answer::Status::Malformed;
    const bool listing = dnsbl::classify(q->answer).kind == dnsbl::Kind::Listed;
    if (!listing) return finish(q);
    // A listing: its TXT is the reason (asked with the same name, paid from the same rate).
    channel_->sched.spend(mono_ms());
    const auto& zones = opts_.zones;
    auto z = std::find_if(zones.begin(), zones.end(), [&](const dnsbl::Zone& x) { return x.name == q->lookup.zone; });
    const std::string name = *dnsbl::query_name(q->lookup.address, *z);
    ares_query(channel_->ch, name.c_str(), ns_c_in, ns_t_txt,
               [](void* arg, int st, int, unsigned char* b, int l) {
                   auto* qq = static_cast<Query*>(arg);
                   qq->self->txt_answered(qq, st, b, l);
               },
               q);
}

void DnsblResolver::txt_answered(Query* q, int status, const unsigned char* buf, int len) {
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        delete q;
        return;
    }
    if (status == ARES_SUCCESS) q->answer.txt = parse_txt(buf, len);  // none: a listing without a reason
    // The zone's 127.0.0.1 must not be listed (RFC 5782): asked with every listing but
    // those of the test entries themselves (the controller judges those alone).
    if (dnsbl::is_test_entry(q->lookup.address)) return finish(q);
    channel_->sched.spend(mono_ms());
    const std::string name = "1.0.0.127." + q->lookup.zone;
    ares_query(channel_->ch, name.c_str(), ns_c_in, ns_t_a,
               [](void* arg, int st, int, unsigned char* b, int l) {
                   auto* qq = static_cast<Query*>(arg);
                   qq->self->control_answered(qq, st, b, l);
               },
               q);
}

void DnsblResolver::control_answered(Query* q, int status, const unsigned char* buf, int len) {
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        delete q;
        return;
    }
    Answer c;
    c.status = status_of(status);
    if (status == ARES_SUCCESS && !parse_a(buf, len, c)) c.status = Answer::Status::Malformed;
    q->answer.control = c.status;
    q->answer.control_a = std::move(c.a);
    finish(q);
}

void DnsblResolver::finish(Query* q) {
    const bool good = dnsbl::classify(q->answer).kind != dnsbl::Kind::Error;
    channel_->sched.done(q->lookup, good, q->answer.ttl_s, mono_ms());
    report_({q->lookup, std::move(q->answer)});
    delete q;
}

void DnsblResolver::wait(int64_t now_ms) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(channel_->ch, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM + 1];
    nfds_t n = 0;
    fds[n++] = {wake_.get(), POLLIN, 0};
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev) fds[n++] = {socks[i], ev, 0};
    }
    // until the next lookup is due, or c-ares' next timeout, whichever comes first
    int64_t timeout = 60'000;
    if (auto at = channel_->sched.wake_at(now_ms)) timeout = std::min(timeout, *at - now_ms);
    timeval tv{}, max{static_cast<time_t>(timeout / 1000), static_cast<suseconds_t>(timeout % 1000 * 1000)};
    if (timeval* t = ares_timeout(channel_->ch, &max, &tv)) timeout = t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
    if (::poll(fds, n, static_cast<int>(std::max<int64_t>(timeout, 0))) < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) {
        uint64_t v;
        while (::read(wake_.get(), &v, sizeof v) == sizeof v) {
        }
    }
    bool any = false;
    for (nfds_t i = 1; i < n; ++i) {
        const ares_socket_t rd = fds[i].revents & (POLLIN | POLLERR | POLLHUP) ? fds[i].fd : ARES_SOCKET_BAD;
        const ares_socket_t wr = fds[i].revents & POLLOUT ? fds[i].fd : ARES_SOCKET_BAD;
        if (rd != ARES_SOCKET_BAD || wr != ARES_SOCKET_BAD) {
            ares_process_fd(channel_->ch, rd, wr);
            any = true;
        }
    }
    if (!any) ares_process_fd(channel_->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
}

}  // namespace smtpgov::svc
