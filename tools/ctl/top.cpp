// smtpgovctl top: clear the screen and redraw the busiest VMs every --interval seconds.
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <ostream>

#include "commands.h"
#include "render.h"

using nlohmann::json;

namespace smtpgov::ctl {
namespace {

// Puts a terminal stdin in non-canonical, no-echo mode so a single q is read; restores it.
class RawStdin {
public:
    RawStdin() {
        if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
        termios raw = saved_;
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    ~RawStdin() {
        if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
    RawStdin(const RawStdin&) = delete;
    RawStdin& operator=(const RawStdin&) = delete;
    bool active() const { return active_; }

private:
    termios saved_{};
    bool active_ = false;
};

size_t terminal_rows() {
    winsize ws{};
    if (::isatty(STDOUT_FILENO) && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 6)
        return size_t(ws.ws_row) - 6;  // header, blank line, table header, "more" line, margin
    return 0;  // not a terminal: all rows
}

// Waits up to seconds for q on a terminal stdin; true when the user asked to quit.
bool wait_for_quit(double seconds, bool read_keys) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!interrupted()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{STDIN_FILENO, POLLIN, 0};
        int r = ::poll(&p, read_keys ? 1 : 0, int(left.count()));
        if (r > 0 && (p.revents & POLLIN)) {
            char c = 0;
            if (::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) return true;
        }
    }
    return true;
}

std::string header(const json& vms, double interval) {
    std::time_t now = std::time(nullptr);
    size_t tiers[4] = {0, 0, 0, 0};
    const char* names[4] = {"ok", "throttled", "steered", "blocked"};
    double total_rate = 0;
    for (const auto& vm : vms) {
        total_rate += vm.value("rate", 0.0);
        std::string t = vm.value("tier", std::string());
        for (int i = 0; i < 4; ++i)
            if (t == names[i]) ++tiers[i];
    }
    std::string h = "smtpgov top - " + utc_time(int64_t(now)) + " - " + std::to_string(vms.size()) + " VMs (";
    for (int i = 0; i < 4; ++i) h += std::string(i ? ", " : "") + names[i] + " " + std::to_string(tiers[i]);
    return h + ") - " + fixed(total_rate, 1) + " SYN/s - every " + fixed(interval, 1) + "s, q to quit";
}

}  // namespace

int run_top(const Invocation& inv, Transport& daemon, std::ostream& out, std::ostream& err) {
    const double interval = inv.seconds_opt("interval").value_or(2.0);
    const uint64_t iterations = inv.uint_opt("iterations");
    if (interval < 0.1) {
        err << "smtpgovctl: top: --interval must be at least 0.1 seconds\n";
        return kExitUsage;
    }
    install_interrupt_handler();
    RawStdin keys;
    const bool tty = ::isatty(STDOUT_FILENO);
    const json req = build_request(inv);
    for (uint64_t i = 0; iterations == 0 || i < iterations; ++i) {
        int code = kExitOk;
        auto r = request(daemon, req, err, code);
        if (!r) return code;
        json vms = r->is_array() ? *r : json::array();
        std::stable_sort(vms.begin(), vms.end(),
                         [](const json& a, const json& b) { return a.value("rate", 0.0) > b.value("rate", 0.0); });
        if (inv.json) {
            out << vms.dump() << "\n";
        } else {
            if (tty) out << "\x1b[H\x1b[2J";  // home + clear screen
            out << render_top(vms, header(vms, interval), terminal_rows());
            if (!tty) out << "\n";
        }
        out.flush();
        if (iterations != 0 && i + 1 == iterations) break;
        if (wait_for_quit(interval, keys.active())) break;
    }
    return kExitOk;
}

}  // namespace smtpgov::ctl
