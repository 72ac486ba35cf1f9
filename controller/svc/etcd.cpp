#include "svc/etcd.h"

#include <curl/curl.h>

#include <chrono>

#include <nlohmann/json.hpp>

namespace smtpgov::etcd {

using nlohmann::json;

namespace {

// The gateway writes int64 fields as JSON strings and leaves out zero values.
int64_t num(const json& obj, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end()) return 0;
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_string()) {
        try {
            return std::stoll(it->get<std::string>());
        } catch (...) {
            return 0;
        }
    }
    return 0;
}

Result<Kv> kv_of(const json& j) {
    Kv kv;
    auto k = base64_decode(j.value("key", ""));
    auto v = base64_decode(j.value("value", ""));
    if (!k || !v) return Error{EPROTO, "etcd answered a key or value that is not base64"};
    kv.key = std::move(*k);
    kv.value = std::move(*v);
    kv.create_revision = num(j, "create_revision");
    kv.mod_revision = num(j, "mod_revision");
    kv.version = num(j, "version");
    kv.lease = num(j, "lease");
    return kv;
}

json op_json(const Op& op) {
    if (op.kind == Op::Kind::Put) {
        json p{{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}};
        if (op.lease) p["lease"] = std::to_string(op.lease);
        return {{"request_put", p}};
    }
    json d{{"key", base64_encode(op.key)}};
    if (op.kind == Op::Kind::DeletePrefix) d["range_end"] = base64_encode(Client::prefix_end(op.key));
    return {{"request_delete_range", d}};
}

size_t append_body(char* p, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(p, size * n);
    return size * n;
}

struct Slist {
    curl_slist* list = nullptr;
    ~Slist() { curl_slist_free_all(list); }
    void add(const std::string& s) { list = curl_slist_append(list, s.c_str()); }
};

}  // namespace

struct Client::Impl {
    Options opts;
    CURL* curl = nullptr;
    size_t current = 0;  // endpoint that answered last
    std::string token;   // auth token (user/password)

    ~Impl() {
        if (curl) curl_easy_cleanup(curl);
    }

    void setup(const std::string& url, const std::string& body, std::string& out, Slist& headers) {
        curl_easy_reset(curl);
        headers.add("Content-Type: application/json");
        headers.add("Expect:");
        if (!token.empty()) headers.add("Authorization: " + token);
        curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.list);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, opts.connect_timeout_ms);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
        curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 5L);
        curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 2L);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "smtpgov/" SMTPGOV_VERSION);
        if (!opts.cacert.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, opts.cacert.c_str());
        if (!opts.cert.empty()) curl_easy_setopt(curl, CURLOPT_SSLCERT, opts.cert.c_str());
        if (!opts.key.empty()) curl_easy_setopt(curl, CURLOPT_SSLKEY, opts.key.c_str());
    }

    // One unary call on one endpoint: the answer's JSON, or why not. transport is set
    // when the endpoint itself failed (try the next one).
    Result<json> call_one(const std::string& ep, const std::string& path, const std::string& body, bool& transport) {
        std::string out;
        Slist headers;
        setup(ep + path, body, out, headers);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, opts.request_timeout_ms);
        CURLcode rc = curl_easy_perform(curl);
        if (rc != CURLE_OK) {
            transport = true;
            return Error{EHOSTUNREACH, ep + ": " + curl_easy_strerror(rc)};
        }
        long status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        json j = json::parse(out, nullptr, false);
        if (j.is_discarded()) {
            transport = status >= 500;
            return Error{EPROTO, ep + path + ": HTTP " + std::to_string(status) + ", not JSON"};
        }
        if (status != 200 || j.contains("error")) {
            std::string msg = j.value("message", j.value("error", std::string("HTTP ") + std::to_string(status)));
            // A member without a leader (a minority side) or shutting down: try another.
            transport = status >= 500 || msg.find("no leader") != std::string::npos ||
                        msg.find("stopped") != std::string::npos || msg.find("timed out") != std::string::npos;
            return Error{EIO, ep + ": " + msg};
        }
        return j;
    }

    Status authenticate(const std::string& ep) {
        token.clear();
        bool transport = false;
        json body{{"name", opts.user}, {"password", opts.password}};
        auto j = call_one(ep, "/v3/auth/authenticate", body.dump(), transport);
        if (!j) return Error{EACCES, "etcd authentication as " + opts.user + ": " + j.error().message};
        token = j->value("token", "");
        if (token.empty()) return Error{EACCES, "etcd authentication as " + opts.user + ": no token in the answer"};
        return ok_status();
    }

    Result<json> call(const std::string& path, const json& body) {
        if (opts.endpoints.empty()) return Error{EINVAL, "no etcd endpoints configured"};
        const std::string text = body.dump();
        Error last{EHOSTUNREACH, "no etcd endpoint answered"};
        for (size_t n = 0; n < opts.endpoints.size(); ++n) {
            const size_t i = (current + n) % opts.endpoints.size();
            const std::string& ep = opts.endpoints[i];
            if (!opts.user.empty() && token.empty())
                if (auto s = authenticate(ep); !s) {
                    last = s.error();
                    continue;
                }
            bool transport = false;
            auto j = call_one(ep, path, text, transport);
            if (!j && !opts.user.empty() && j.error().message.find("token") != std::string::npos) {
                token.clear();  // expired or revoked: once more with a new one
                if (auto s = authenticate(ep); !s) return s.error();
                j = call_one(ep, path, text, transport);
            }
            if (j) {
                current = i;
                return j;
            }
            last = j.error();
            if (!transport) return last;  // the store answered "no": another member would too
        }
        return last;
    }
};

Client::Client(Options opts) : impl_(std::make_unique<Impl>()) {
    static const bool once = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
    (void)once;
    impl_->opts = std::move(opts);
    impl_->curl = curl_easy_init();
}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const std::string& Client::endpoint() const {
    static const std::string none;
    return impl_->opts.endpoints.empty() ? none : impl_->opts.endpoints[impl_->current];
}

std::string Client::prefix_end(const std::string& prefix) {
    std::string end = prefix;
    while (!end.empty()) {
        if (uint8_t(end.back()) < 0xff) {
            end.back() = char(uint8_t(end.back()) + 1);
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');  // every key
}

static Result<Range> range_of(const Result<json>& j) {
    if (!j) return j.error();
    Range r;
    r.revision = num(j->value("header", json::object()), "revision");
    r.more = j->value("more", false);
    for (const json& k : j->value("kvs", json::array())) {
        auto kv = kv_of(k);
        if (!kv) return kv.error();
        r.kvs.push_back(std::move(*kv));
    }
    return r;
}

Result<Range> Client::get(const std::string& key) {
    return range_of(impl_->call("/v3/kv/range", {{"key", base64_encode(key)}}));
}

Result<Range> Client::get_prefix(const std::string& prefix, int64_t limit, bool keys_only) {
    json body{{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}};
    if (limit) body["limit"] = std::to_string(limit);
    if (keys_only) body["keys_only"] = true;
    return range_of(impl_->call("/v3/kv/range", body));
}

Result<int64_t> Client::put(const std::string& key, const std::string& value, int64_t lease) {
    json body{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease) body["lease"] = std::to_string(lease);
    auto j = impl_->call("/v3/kv/put", body);
    if (!j) return j.error();
    return num(j->value("header", json::object()), "revision");
}

Result<int64_t> Client::del(const std::string& key) {
    auto j = impl_->call("/v3/kv/deleterange", {{"key", base64_encode(key)}});
    if (!j) return j.error();
    return num(j->value("header", json::object()), "revision");
}

Result<TxnResult> Client::txn(const std::vector<Compare>& cmp, const std::vector<Op>& success,
                              const std::vector<Op>& failure) {
    json c = json::array(), s = json::array(), f = json::array();
    for (const Compare& x : cmp) {
        static const char* kTarget[] = {"MOD", "CREATE", "VERSION"};
        static const char* kField[] = {"mod_revision", "create_revision", "version"};
        const int t = static_cast<int>(x.target);
        c.push_back({{"key", base64_encode(x.key)}, {"result", "EQUAL"}, {"target", kTarget[t]},
                     {kField[t], std::to_string(x.value)}});
    }
    for (const Op& o : success) s.push_back(op_json(o));
    for (const Op& o : failure) f.push_back(op_json(o));
    auto j = impl_->call("/v3/kv/txn", {{"compare", c}, {"success", s}, {"failure", f}});
    if (!j) return j.error();
    return TxnResult{j->value("succeeded", false), num(j->value("header", json::object()), "revision")};
}

Result<int64_t> Client::lease_grant(int64_t ttl_s) {
    auto j = impl_->call("/v3/lease/grant", {{"TTL", std::to_string(ttl_s)}});
    if (!j) return j.error();
    if (int64_t id = num(*j, "ID"); id != 0) return id;
    return Error{EIO, "etcd lease grant: " + j->value("error", std::string("no lease id in the answer"))};
}

Result<int64_t> Client::lease_keepalive(int64_t id) {
    auto j = impl_->call("/v3/lease/keepalive", {{"ID", std::to_string(id)}});
    if (!j) return j.error();
    const json r = j->value("result", *j);
    int64_t ttl = num(r, "TTL");
    if (ttl <= 0) return Error{ENOENT, "etcd lease " + std::to_string(id) + " expired"};
    return ttl;
}

Status Client::lease_revoke(int64_t id) {
    auto j = impl_->call("/v3/lease/revoke", {{"ID", std::to_string(id)}});
    if (!j) return j.error();
    return ok_status();
}

Result<std::string> Client::member_status() {
    auto j = impl_->call("/v3/maintenance/status", json::object());
    if (!j) return j.error();
    return j->dump();
}

namespace {

// The state of one watch stream while curl runs it.
struct WatchStream {
    const std::function<bool(const WatchBatch&)>* on_batch = nullptr;
    const std::atomic<bool>* stop = nullptr;
    std::chrono::steady_clock::time_point deadline;
    std::string buf;
    bool done = false;       // on_batch said stop, or the deadline passed
    size_t created = 0;      // watchers the server confirmed
    std::string error;       // the stream said something we cannot go on from

    // One message of the stream: {"result": {...}}.
    void message(const std::string& line) {
        json j = json::parse(line, nullptr, false);
        if (j.is_discarded()) return void(error = "watch: a message that is not JSON");
        if (j.contains("error")) return void(error = "watch: " + j["error"].value("message", j["error"].dump()));
        const json r = j.value("result", json::object());
        if (r.value("created", false)) ++created;
        if (r.value("canceled", false)) {
            if (int64_t c = num(r, "compact_revision"); c)
                error = "compacted: revision " + std::to_string(c) + " is the oldest kept";
            else
                error = "watch canceled: " + r.value("cancel_reason", std::string("no reason given"));
            return;
        }
        WatchBatch b;
        b.revision = num(r.value("header", json::object()), "revision");
        for (const json& e : r.value("events", json::array())) {
            auto kv = kv_of(e.value("kv", json::object()));
            if (!kv) return void(error = kv.error().message);
            const bool del = e.value("type", std::string("PUT")) == "DELETE";
            b.events.push_back({del ? WatchEvent::Type::Delete : WatchEvent::Type::Put, std::move(*kv)});
        }
        if (!b.events.empty() && !(*on_batch)(b)) done = true;
    }

    static size_t write(char* p, size_t size, size_t n, void* self) {
        auto* w = static_cast<WatchStream*>(self);
        w->buf.append(p, size * n);
        for (size_t nl; !w->done && w->error.empty() && (nl = w->buf.find('\n')) != std::string::npos;) {
            std::string line = w->buf.substr(0, nl);
            w->buf.erase(0, nl + 1);
            if (line.find_first_not_of(" \r\t") != std::string::npos) w->message(line);
        }
        return (w->done || !w->error.empty()) ? 0 : size * n;  // 0 ends the transfer
    }

    static int progress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
        auto* w = static_cast<WatchStream*>(self);
        if (w->stop->load() || std::chrono::steady_clock::now() >= w->deadline) w->done = true;
        return w->done ? 1 : 0;
    }
};

}  // namespace

Status Client::watch(const std::vector<Watched>& keys, int64_t start_revision,
                     const std::function<bool(const WatchBatch&)>& on_batch, const std::atomic<bool>& stop,
                     long max_ms) {
    // The gateway reads one request message after another from the body: one create
    // request per key, each answered on the same stream.
    std::string body;
    for (const Watched& k : keys) {
        json create{{"key", base64_encode(k.key)}};
        if (k.prefix) create["range_end"] = base64_encode(prefix_end(k.key));
        if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
        body += json{{"create_request", create}}.dump() + "\n";
    }
    Impl& m = *impl_;
    if (m.opts.endpoints.empty()) return Error{EINVAL, "no etcd endpoints configured"};
    if (!m.opts.user.empty() && m.token.empty())
        if (auto s = m.authenticate(m.opts.endpoints[m.current]); !s) return s;
    WatchStream w;
    w.on_batch = &on_batch;
    w.stop = &stop;
    w.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);
    std::string unused;
    Slist headers;
    const std::string& ep = m.opts.endpoints[m.current];
    m.setup(ep + "/v3/watch", body, unused, headers);
    curl_easy_setopt(m.curl, CURLOPT_WRITEFUNCTION, WatchStream::write);
    curl_easy_setopt(m.curl, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(m.curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(m.curl, CURLOPT_XFERINFOFUNCTION, WatchStream::progress);
    curl_easy_setopt(m.curl, CURLOPT_XFERINFODATA, &w);
    CURLcode rc = curl_easy_perform(m.curl);
    if (!w.error.empty()) return Error{EIO, w.error};
    // etcd 3.4 can hold back the create requests of a stream while it catches watchers up
    // from an old start revision (seen with 26 keys 2,000 revisions back: 7 created in
    // 10 s). A key whose watcher was never created was not watched: say so, the caller
    // reads whole again rather than resume past changes it never saw.
    if (w.done && w.created < keys.size())
        return Error{EAGAIN, ep + " watch: " + std::to_string(w.created) + " of " + std::to_string(keys.size()) +
                                 " watchers created before the stream ended; read the keys again"};
    if (w.done) return ok_status();
    // The stream ended on its own: the member went away. Next time, the next member.
    m.current = (m.current + 1) % m.opts.endpoints.size();
    if (rc != CURLE_OK) return Error{EHOSTUNREACH, ep + " watch: " + curl_easy_strerror(rc)};
    return Error{EHOSTUNREACH, ep + " watch: the stream ended"};
}

}  // namespace smtpgov::etcd
