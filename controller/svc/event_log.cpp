#include "svc/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>

#include "core/clock.h"

namespace smtpgov::svc {

using nlohmann::json;

std::string rfc3339_ms(int64_t unix_ms) {
    time_t secs = static_cast<time_t>(unix_ms / 1000);
    int ms = static_cast<int>(unix_ms % 1000);
    if (ms < 0) ms += 1000, --secs;  // floor for times before 1970
    tm t{};
    gmtime_r(&secs, &t);
    char buf[40];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &t);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", ms);
    return buf;
}

json to_json(const Event& e) {
    return {{"ts_ms", e.ts_ms},       {"time", rfc3339_ms(e.ts_ms)}, {"type", e.type},
            {"vm", e.vm},             {"tenant", e.tenant},          {"from", to_string(e.from)},
            {"to", to_string(e.to)},  {"score", e.score},            {"reason", e.reason},
            {"evidence", e.evidence}};
}

namespace {

constexpr off_t kChunk = 64 * 1024;
constexpr off_t kMaxTailRead = 64 << 20;  // more than enough for any sane tail

// Reads backwards until `lines` newlines (or the start) are covered; returns the text.
std::string read_tail_text(int fd, off_t size, size_t lines) {
    std::string text;
    off_t pos = size;
    size_t newlines = 0;
    while (pos > 0 && newlines <= lines && size - pos < kMaxTailRead) {
        off_t start = pos > kChunk ? pos - kChunk : 0;
        std::string chunk(static_cast<size_t>(pos - start), '\0');
        if (::pread(fd, chunk.data(), chunk.size(), start) != static_cast<ssize_t>(chunk.size())) break;
        for (char c : chunk) newlines += c == '\n';
        text.insert(0, chunk);
        pos = start;
    }
    if (pos > 0) text.erase(0, text.find('\n') + 1);  // drop the partial first line
    return text;
}

// A crash mid-write leaves a line without its newline; end it so the next append starts
// a fresh line instead of corrupting two.
Status end_torn_line(int fd, off_t size) {
    char last = '\n';
    if (size > 0 && ::pread(fd, &last, 1, size - 1) != 1) return Error::from_errno("read events");
    if (last != '\n' && ::write(fd, "\n", 1) != 1) return Error::from_errno("repair events");
    return ok_status();
}

}  // namespace

void EventLog::Shared::push_locked(json ev) {
    tail.push_back(std::move(ev));
    while (tail.size() > capacity) {
        tail.pop_front();
        ++first_seq;
    }
}

Result<std::unique_ptr<EventLog>> EventLog::open(const std::string& state_dir, size_t tail_size,
                                                 uint64_t max_bytes) {
    std::string path = state_dir + "/events.jsonl";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
    if (!fd) return Error::from_errno("open " + path);
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return Error::from_errno("stat " + path);
    auto shared = std::make_shared<Shared>();
    shared->capacity = tail_size == 0 ? 1 : tail_size;
    std::string text = read_tail_text(fd.get(), st.st_size, shared->capacity);
    for (size_t pos = 0; pos < text.size();) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        json ev = json::parse(text.substr(pos, nl - pos), nullptr, false);
        if (ev.is_object()) shared->push_locked(std::move(ev));  // not shared yet: no lock needed  // a torn or foreign line is skipped
        pos = nl + 1;
    }
    if (auto s = end_torn_line(fd.get(), st.st_size); !s) return s.error();
    return std::unique_ptr<EventLog>(new EventLog(std::move(path), std::move(fd), std::move(shared),
                                                  static_cast<uint64_t>(st.st_size), max_bytes));
}

EventLog::EventLog(std::string path, UniqueFd fd, std::shared_ptr<Shared> shared, uint64_t size, uint64_t max_bytes)
    : path_(std::move(path)), fd_(std::move(fd)), shared_(std::move(shared)), size_(size),
      max_bytes_(max_bytes == 0 ? kDefaultMaxBytes : max_bytes) {}

Status EventLog::rotate_locked() {
    std::string old = path_ + ".1";
    if (::rename(path_.c_str(), old.c_str()) != 0) return Error::from_errno("rotate " + path_);
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
    if (!fd) return Error::from_errno("open " + path_);
    fd_ = std::move(fd);
    size_ = 0;
    return ok_status();
}

EventLog::~EventLog() {
    {
        std::lock_guard lock(shared_->mu);
        shared_->closed = true;
    }
    shared_->cv.notify_all();
}

Status EventLog::append(const Event& e) {
    Event stamped = e;
    if (stamped.ts_ms == 0) stamped.ts_ms = SystemClock().wall_ms();
    json ev = to_json(stamped);
    std::string line = ev.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    Status status = ok_status();
    {
        // One write() per line, file and tail updated under one lock: the file, the tail
        // and every follower see the same order.
        std::lock_guard lock(shared_->mu);
        if (size_ > 0 && size_ + line.size() > max_bytes_) status = rotate_locked();
        ssize_t n = ::write(fd_.get(), line.data(), line.size());
        if (n > 0) size_ += static_cast<uint64_t>(n);
        if (n != static_cast<ssize_t>(line.size()) && status.ok())
            status = n < 0 ? Error::from_errno("append " + path_) : Error::msg("append " + path_ + ": short write");
        shared_->push_locked(std::move(ev));
    }
    shared_->cv.notify_all();
    return status;
}

std::vector<json> EventLog::recent(size_t limit, const std::string& vm) const {
    std::vector<json> out;
    std::lock_guard lock(shared_->mu);
    for (auto it = shared_->tail.rbegin(); it != shared_->tail.rend() && out.size() < limit; ++it)
        if (vm.empty() || it->value("vm", "") == vm) out.push_back(*it);
    std::reverse(out.begin(), out.end());
    return out;
}

EventLog::Follower EventLog::follow() {
    std::lock_guard lock(shared_->mu);
    return Follower(shared_, shared_->end_seq());
}

std::optional<json> EventLog::Follower::next(int timeout_ms) {
    std::unique_lock lock(shared_->mu);
    shared_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                         [&] { return shared_->closed || cursor_ < shared_->end_seq(); });
    if (cursor_ >= shared_->end_seq()) return std::nullopt;
    if (cursor_ < shared_->first_seq) {
        lost_ += shared_->first_seq - cursor_;
        cursor_ = shared_->first_seq;
    }
    return shared_->tail[cursor_++ - shared_->first_seq];
}

bool EventLog::Follower::closed() const {
    std::lock_guard lock(shared_->mu);
    return shared_->closed;
}

Reply follow_events_reply(EventLog& log) {
    // The follower starts now, before the reply is even sent, and owns its share of the
    // tail: the stream stays safe if the log is destroyed first.
    return stream_reply([follower = log.follow()](Writer& w) mutable {
        while (w.open() && !follower.closed()) {
            if (auto ev = follower.next(200))
                if (!w.write(*ev)) return;
        }
    });
}

}  // namespace smtpgov::svc
