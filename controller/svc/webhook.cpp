#include "svc/webhook.h"

#include <curl/curl.h>

#include <chrono>
#include <memory>

namespace smtpgov::svc {

namespace {

void curl_init_once() {
    static std::once_flag once;  // curl_global_init is not thread-safe
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t discard_body(char*, size_t size, size_t n, void*) { return size * n; }

struct SlistFree {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistFree>;

// Appends to list; on failure (out of memory) the list is kept as it was.
void append(Slist& list, const char* line) {
    if (curl_slist* longer = curl_slist_append(list.get(), line)) {
        list.release();
        list.reset(longer);
    }
}

// 5xx, 408 and 429 may heal; any other 4xx will not, however often it is retried.
bool retryable(long status) { return status == 0 || status == 408 || status == 429 || status >= 500; }

}  // namespace

Webhook::Webhook(WebhookOptions opts) : opts_(std::move(opts)) {
    curl_init_once();
    thread_ = std::thread([this] { run(); });
}

Webhook::~Webhook() { stop(); }

void Webhook::post(const nlohmann::json& body) {
    {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        if (queue_.size() >= opts_.queue_max && !queue_.empty()) {
            queue_.pop_front();
            ++stats_.dropped;
        }
        queue_.push_back(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    cv_.notify_all();
}

WebhookStats Webhook::stats() const {
    std::lock_guard lock(mu_);
    WebhookStats s = stats_;
    s.queued = queue_.size() + (in_flight_ ? 1 : 0);
    return s;
}

bool Webhook::wait_idle(int timeout_ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return queue_.empty() && !in_flight_; });
}

void Webhook::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    stats_.dropped += queue_.size();
    queue_.clear();
}

void Webhook::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        std::string body = std::move(queue_.front());
        queue_.pop_front();
        in_flight_ = true;
        lock.unlock();
        bool finished = deliver(body);
        lock.lock();
        in_flight_ = false;
        if (!finished) ++stats_.dropped;  // interrupted by stop()
        cv_.notify_all();                 // wait_idle()
    }
}

bool Webhook::deliver(const std::string& body) {
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    int backoff = opts_.backoff_initial_ms;
    for (int attempt_no = 1;; ++attempt_no) {
        long status = curl ? attempt(curl.get(), body) : 0;
        std::unique_lock lock(mu_);
        if (status >= 200 && status < 300) return ++stats_.sent, true;
        if (!retryable(status) || attempt_no >= opts_.max_attempts) return ++stats_.failed, true;
        if (cv_.wait_for(lock, std::chrono::milliseconds(backoff), [&] { return stopping_; })) return false;
        ++stats_.retries;
        backoff = std::min(backoff * 2, opts_.backoff_max_ms);
    }
}

long Webhook::attempt(void* handle, const std::string& body) {
    CURL* curl = static_cast<CURL*>(handle);
    curl_easy_reset(curl);
    Slist headers;
    append(headers, "Content-Type: application/json");
    append(headers, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(curl, CURLOPT_URL, opts_.url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout_ms));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for DNS timeouts in a thread
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "smtpgovd/" SMTPGOV_VERSION);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

}  // namespace smtpgov::svc
