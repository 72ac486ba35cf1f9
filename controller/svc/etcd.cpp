#include "svc/etcd.h"

#include "svc/etcd_wire.h"

namespace smtpgov::etcd {

namespace {

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

}  // namespace

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
    return get_range(prefix, prefix_end(prefix), limit, keys_only);
}

Result<Range> Client::get_range(const std::string& key, const std::string& range_end, int64_t limit, bool keys_only) {
    json body{{"key", base64_encode(key)}, {"range_end", base64_encode(range_end)}};
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

}  // namespace smtpgov::etcd
