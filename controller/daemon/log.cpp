#include "daemon/log.h"

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace smtpgov::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_mu;
const bool g_journal = std::getenv("JOURNAL_STREAM") != nullptr;
std::atomic<int> g_quiet{0};

std::string_view name(Level l) {
    switch (l) {
    case Level::Error: return "error";
    case Level::Warning: return "warning";
    case Level::Notice: return "notice";
    case Level::Info: return "info";
    case Level::Debug: return "debug";
    }
    return "info";
}

void library_line(bool warn, const char* fmt, va_list ap) {
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n <= 0) return;
    std::string_view line(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
    while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    // Probing for a clsact qdisc that is not there is expected, not worth a warning.
    if (line.find("Parent Qdisc doesn't exists") != std::string_view::npos || g_quiet.load() > 0) warn = false;
    write(warn ? Level::Warning : Level::Debug, line);
}

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
    if (level == LIBBPF_DEBUG && !enabled(Level::Debug)) return 0;
    library_line(level == LIBBPF_WARN, fmt, ap);
    return 0;
}

int libxdp_print(enum libxdp_print_level level, const char* fmt, va_list ap) {
    if (level == LIBXDP_DEBUG && !enabled(Level::Debug)) return 0;
    // libxdp reports its dispatcher fallback as a warning; smtpgovd handles that case itself
    library_line(false, fmt, ap);
    return 0;
}

}  // namespace

std::optional<Level> parse_level(std::string_view s) {
    for (Level l : {Level::Error, Level::Warning, Level::Notice, Level::Info, Level::Debug})
        if (name(l) == s) return l;
    return std::nullopt;
}

void set_level(Level l) { g_level = static_cast<int>(l); }
bool enabled(Level l) { return static_cast<int>(l) <= g_level.load(); }

void write(Level l, std::string_view msg) {
    if (!enabled(l)) return;
    std::lock_guard lock(g_mu);
    if (g_journal)
        std::fprintf(stderr, "<%d>%.*s\n", static_cast<int>(l), static_cast<int>(msg.size()), msg.data());
    else
        std::fprintf(stderr, "smtpgovd: %s: %.*s\n", std::string(name(l)).c_str(), static_cast<int>(msg.size()),
                     msg.data());
}

QuietLibraries::QuietLibraries() { ++g_quiet; }
QuietLibraries::~QuietLibraries() { --g_quiet; }

void capture_bpf_library_output() {
    libbpf_set_print(libbpf_print);
    libxdp_set_print(libxdp_print);
}

}  // namespace smtpgov::log
