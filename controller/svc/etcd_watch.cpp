// etcd::Client::watch: the keys' create requests spread over as many streams as the
// gateway needs (watch_bodies), all run by one curl multi handle on the caller's thread.
//
// Why several streams: etcd's JSON gateway (grpc-gateway, Go net/http) reads a watch's
// create requests from the HTTP/1.1 request body with a json.Decoder, whose first read
// takes at most 512 bytes. Once the first "created" answer has been flushed, Go's server
// may refuse further reads of that body (no full duplex on HTTP/1.1), and the requests
// not yet read are dropped without a word. Seen with etcd 3.4.23: a stream of 20 keys
// got 7 watchers (the 7 requests of the first 512 bytes) in 3 of 12 tries. A body of at
// most 512 bytes is read whole by that first read, so every stream carries that much.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>

#include "svc/etcd_wire.h"

namespace smtpgov::etcd {

namespace {

constexpr size_t kMaxWatchBody = 512;  // Go's json.Decoder: its first read

// The state of one watch stream while curl runs it.
struct WatchStream {
    CURL* curl = nullptr;
    Slist headers;
    std::string body, buf, unused;
    size_t keys = 0;          // create requests in body
    size_t created = 0;       // watchers the server confirmed
    int64_t revision = 0;     // newest header revision this stream answered with
    std::string error;        // the stream said something we cannot go on from
    bool ended = false;       // the transfer finished (the server or the network ended it)
    std::vector<WatchBatch> batches;  // parsed, not yet handed over

    ~WatchStream() {
        if (curl) curl_easy_cleanup(curl);
    }

    // One message of the stream: {"result": {...}}.
    void message(const std::string& line) {
        json j = json::parse(line, nullptr, false);
        if (j.is_discarded()) return void(error = "watch: a message that is not JSON");
        if (j.contains("error")) return void(error = "watch: " + j["error"].value("message", j["error"].dump()));
        const json r = j.value("result", json::object());
        revision = std::max(revision, num(r.value("header", json::object()), "revision"));
        if (r.value("created", false)) ++created;
        if (r.value("canceled", false)) {
            if (int64_t c = num(r, "compact_revision"); c)
                error = "compacted: revision " + std::to_string(c) + " is the oldest kept";
            else
                error = "watch canceled: " + r.value("cancel_reason", std::string("no reason given"));
            return;
        }
        WatchBatch b;
        for (const json& e : r.value("events", json::array())) {
            auto kv = kv_of(e.value("kv", json::object()));
            if (!kv) return void(error = kv.error().message);
            const bool del = e.value("type", std::string("PUT")) == "DELETE";
            b.events.push_back({del ? WatchEvent::Type::Delete : WatchEvent::Type::Put, std::move(*kv)});
        }
        if (!b.events.empty()) batches.push_back(std::move(b));
    }

    static size_t write(char* p, size_t size, size_t n, void* self) {
        auto* w = static_cast<WatchStream*>(self);
        w->buf.append(p, size * n);
        for (size_t nl; w->error.empty() && (nl = w->buf.find('\n')) != std::string::npos;) {
            std::string line = w->buf.substr(0, nl);
            w->buf.erase(0, nl + 1);
            if (line.find_first_not_of(" \r\t") != std::string::npos) w->message(line);
        }
        return w->error.empty() ? size * n : 0;  // 0 ends the transfer
    }
};

// The streams of one watch call and the multi handle that runs them; the handles are
// taken out of the multi handle before either is freed, however the call ends.
struct Streams {
    CURLM* multi = curl_multi_init();
    std::vector<std::unique_ptr<WatchStream>> v;
    ~Streams() {
        for (auto& w : v) curl_multi_remove_handle(multi, w->curl);
        v.clear();
        curl_multi_cleanup(multi);
    }
};

// Hands every parsed batch over, each with the revision up to which every stream has
// answered (resuming after it loses nothing on any stream). False: on_batch said stop.
bool hand_over(std::vector<std::unique_ptr<WatchStream>>& streams,
               const std::function<bool(const WatchBatch&)>& on_batch) {
    int64_t all = INT64_MAX;
    for (const auto& s : streams) all = std::min(all, s->revision);
    for (auto& s : streams) {
        for (WatchBatch& b : s->batches) {
            b.revision = all;
            if (!on_batch(b)) return false;
        }
        s->batches.clear();
    }
    return true;
}

}  // namespace

std::vector<std::string> Client::watch_bodies(const std::vector<Watched>& keys, int64_t start_revision) {
    std::vector<std::string> bodies;
    for (const Watched& k : keys) {
        json create{{"key", base64_encode(k.key)}};
        if (k.prefix) create["range_end"] = base64_encode(prefix_end(k.key));
        if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
        const std::string line = json{{"create_request", create}}.dump() + "\n";
        if (bodies.empty() || bodies.back().size() + line.size() > kMaxWatchBody)
            bodies.emplace_back();  // a request longer than that alone is read whole too
        bodies.back() += line;
    }
    return bodies;
}

Status Client::watch(const std::vector<Watched>& keys, int64_t start_revision,
                     const std::function<bool(const WatchBatch&)>& on_batch, const std::atomic<bool>& stop,
                     long max_ms) {
    Impl& m = *impl_;
    if (m.opts.endpoints.empty()) return Error{EINVAL, "no etcd endpoints configured"};
    if (!m.opts.user.empty() && m.token.empty())
        if (auto s = m.authenticate(m.opts.endpoints[m.current]); !s) return s;
    const std::string& ep = m.opts.endpoints[m.current];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_ms);

    Streams all;
    std::vector<std::unique_ptr<WatchStream>>& streams = all.v;
    for (std::string& body : watch_bodies(keys, start_revision)) {
        auto w = std::make_unique<WatchStream>();
        w->keys = size_t(std::count(body.begin(), body.end(), '\n'));
        w->body = std::move(body);
        w->revision = start_revision > 0 ? start_revision - 1 : 0;
        w->curl = curl_easy_init();
        m.setup(w->curl, ep + "/v3/watch", w->body, w->unused, w->headers);
        curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, WatchStream::write);
        curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w.get());
        curl_easy_setopt(w->curl, CURLOPT_PRIVATE, w.get());
        curl_multi_add_handle(all.multi, w->curl);
        streams.push_back(std::move(w));
    }

    bool done = false;  // on_batch said stop, stop was set or the time is up
    CURLcode failed = CURLE_OK;
    while (!done) {
        int running = 0;
        curl_multi_perform(all.multi, &running);
        while (CURLMsg* msg = curl_multi_info_read(all.multi, &running))
            if (msg->msg == CURLMSG_DONE) {
                void* w = nullptr;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &w);
                static_cast<WatchStream*>(w)->ended = true;
                if (msg->data.result != CURLE_OK && msg->data.result != CURLE_WRITE_ERROR) failed = msg->data.result;
            }
        if (!hand_over(streams, on_batch)) done = true;
        auto bad = std::find_if(streams.begin(), streams.end(), [](const auto& s) { return !s->error.empty(); });
        if (bad != streams.end()) return Error{EIO, (*bad)->error};
        if (std::any_of(streams.begin(), streams.end(), [](const auto& s) { return s->ended; })) break;
        if (stop.load() || std::chrono::steady_clock::now() >= deadline) done = true;
        if (!done) curl_multi_poll(all.multi, nullptr, 0, 100, nullptr);
    }

    if (done) {
        // A key whose watcher was never created was not watched: say so, the caller
        // reads whole again rather than resume past changes it never saw.
        size_t created = 0;
        for (const auto& w : streams) created += std::min(w->created, w->keys);
        if (created < keys.size())
            return Error{EAGAIN, ep + " watch: " + std::to_string(created) + " of " + std::to_string(keys.size()) +
                                     " watchers created before the stream ended; read the keys again"};
        return ok_status();
    }
    // A stream ended on its own: the member went away. Next time, the next member.
    m.current = (m.current + 1) % m.opts.endpoints.size();
    if (failed != CURLE_OK) return Error{EHOSTUNREACH, ep + " watch: " + curl_easy_strerror(failed)};
    return Error{EHOSTUNREACH, ep + " watch: the stream ended"};
}

}  // namespace smtpgov::etcd
