// A small etcd v3 client over etcd's documented JSON gateway (/v3/kv/range, put, txn,
// deleterange, /v3/lease/*, /v3/watch, /v3/auth/authenticate) with libcurl: keys and
// values are base64 on the wire and plain strings here. One Client per thread (a curl
// handle is not shared); a request tries the endpoints in turn, starting with the last
// one that answered, so a dead member costs one connect timeout.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace smtpgov::etcd {

struct Options {
    std::vector<std::string> endpoints;  // "http://127.0.0.1:2379", "https://..."
    std::string cacert, cert, key;       // TLS (PEM files), passed to curl as they are
    std::string user, password;          // etcd auth: a token is fetched and renewed
    long connect_timeout_ms = 1000;
    long request_timeout_ms = 3000;
};

struct Kv {
    std::string key, value;
    int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

struct Range {
    std::vector<Kv> kvs;
    int64_t revision = 0;  // the store's revision when read
    bool more = false;     // a limit cut the answer short
};

// One comparison of a transaction: the key's target EQUAL to value (a key that does not
// exist has create/mod revision 0 and version 0).
struct Compare {
    enum class Target { Mod, Create, Version };
    std::string key;
    Target target = Target::Mod;
    int64_t value = 0;
};

struct Op {
    enum class Kind { Put, Delete, DeletePrefix };
    Kind kind = Kind::Put;
    std::string key, value;
    int64_t lease = 0;
};

struct TxnResult {
    bool succeeded = false;
    int64_t revision = 0;
};

struct WatchEvent {
    enum class Type { Put, Delete };
    Type type = Type::Put;
    Kv kv;  // for a delete: key and mod_revision only
};

struct WatchBatch {
    int64_t revision = 0;  // every stream of the watch has answered up to this revision
    std::vector<WatchEvent> events;
};

class Client {
public:
    explicit Client(Options opts);
    ~Client();
    Client(Client&&) noexcept;
    Client& operator=(Client&&) noexcept;

    Result<Range> get(const std::string& key);
    Result<Range> get_prefix(const std::string& prefix, int64_t limit = 0, bool keys_only = false);
    // Every key in [key, range_end), in key order; limit 0: all.
    Result<Range> get_range(const std::string& key, const std::string& range_end, int64_t limit = 0,
                            bool keys_only = false);
    Result<int64_t> put(const std::string& key, const std::string& value, int64_t lease = 0);  // revision
    Result<int64_t> del(const std::string& key);
    Result<TxnResult> txn(const std::vector<Compare>& cmp, const std::vector<Op>& success,
                          const std::vector<Op>& failure = {});
    Result<int64_t> lease_grant(int64_t ttl_s);   // the lease id
    Result<int64_t> lease_keepalive(int64_t id);  // remaining TTL; an error when it expired
    Status lease_revoke(int64_t id);
    Result<std::string> member_status();          // the answering member's /v3/maintenance/status

    // Streams the changes of some keys (a key, or every key under a prefix) from
    // start_revision until on_batch returns false, stop is set, a stream breaks, or max_ms
    // elapsed (then ok). The keys' create requests go over as many streams as the gateway
    // needs (watch_bodies: etcd_watch.cpp says why), run together on this thread; a batch's
    // revision is the newest revision up to which every stream has answered, the one to
    // resume after. A compacted start revision is an error whose message starts with
    // "compacted:"; a watch that ended before the server confirmed every key's watcher is
    // an error too (EAGAIN: read the keys whole again). The keys' watchers deliver
    // independently: while one is caught up from start_revision, another's newer events
    // can come first, so a stream cut soon after it opened may not have delivered
    // everything up to the newest revision seen (FleetAgent resumes such a stream from
    // its start).
    struct Watched {
        std::string key;
        bool prefix = false;
    };
    Status watch(const std::vector<Watched>& keys, int64_t start_revision,
                 const std::function<bool(const WatchBatch&)>& on_batch, const std::atomic<bool>& stop,
                 long max_ms);
    // The request bodies of one watch: a create request per key, as many per body as fit
    // in the 512 bytes the gateway reads whole (one alone when it is longer).
    static std::vector<std::string> watch_bodies(const std::vector<Watched>& keys, int64_t start_revision);

    const std::string& endpoint() const;  // the one that answered last

    // For tests and the CLI: the end of a key range covering every key under prefix.
    static std::string prefix_end(const std::string& prefix);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string base64_encode(const std::string& s);
Result<std::string> base64_decode(const std::string& s);

}  // namespace smtpgov::etcd
