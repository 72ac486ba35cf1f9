// etcd::Client's internals, shared by etcd.cpp (unary calls) and etcd_watch.cpp (watch
// streams): the gateway's JSON helpers and Client::Impl. Not part of the client's API.
#pragma once

#include <curl/curl.h>

#include <string>

#include <nlohmann/json.hpp>

#include "svc/etcd.h"

namespace smtpgov::etcd {

using nlohmann::json;

// The gateway writes int64 fields as JSON strings and leaves out zero values.
inline int64_t num(const json& obj, const char* key) {
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

inline Result<Kv> kv_of(const json& j) {
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

inline size_t append_body(char* p, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(p, size * n);
    return size * n;
}

struct Slist {
    curl_slist* list = nullptr;
    ~Slist() { curl_slist_free_all(list); }
    void add(const std::string& s) { list = curl_slist_append(list, s.c_str()); }
};


struct Client::Impl {
    Options opts;
    CURL* curl = nullptr;
    size_t current = 0;  // endpoint that answered last
    std::string token;   // auth token (user/password)

    ~Impl() {
        if (curl) curl_easy_cleanup(curl);
    }

    // Prepares `h` (this client's handle, or a watch stream's) for one POST of body to url.
    void setup(CURL* h, const std::string& url, const std::string& body, std::string& out, Slist& headers) {
        curl_easy_reset(h);
        headers.add("Content-Type: application/json");
        headers.add("Expect:");
        if (!token.empty()) headers.add("Authorization: " + token);
        curl_easy_setopt(h, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts.connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "smtpgov/" SMTPGOV_VERSION);
        if (!opts.cacert.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, opts.cacert.c_str());
        if (!opts.cert.empty()) curl_easy_setopt(h, CURLOPT_SSLCERT, opts.cert.c_str());
        if (!opts.key.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, opts.key.c_str());
    }

    // One unary call on one endpoint: the answer's JSON, or why not. transport is set
    // when the endpoint itself failed (try the next one).
    Result<json> call_one(const std::string& ep, const std::string& path, const std::string& body, bool& transport) {
        std::string out;
        Slist headers;
        setup(curl, ep + path, body, out, headers);
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


}  // namespace smtpgov::etcd
