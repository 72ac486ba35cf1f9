#include "daemon/log.h"

#include <bpf/libbpf.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "daemon/journal.h"

namespace smtpgov::log {
namespace {

// MESSAGE_IDs are a contract with operators' queries and alerting: never change one,
// add a new kind instead (`journalctl --new-id128` or any random 128-bit number).
const EventKind kKinds[] = {
    {Event::DaemonStart, "daemon_start", "3f8a46eae63940f08b472535cbbb2f1e", "smtpgovd is ready and enforcing"},
    {Event::DaemonStop, "daemon_stop", "33bd9dce318b4b40bd7e81a11cd2ea76",
     "smtpgovd stops; enforcement stays in the kernel"},
    {Event::TierChange, "tier_change", "e09964c0351a4dd3923448f014bf1177",
     "a VM changed tier (reputation, operator pin, policy)"},
    {Event::Ticket, "ticket", "69ec82900ec54347a103ed936e0cba5c",
     "a VM reached or left steered/blocked: a ticket with its evidence"},
    {Event::OverLimit, "over_limit", "6abe65f032444814b97df0713034f8dc",
     "a VM started a burst over its token bucket"},
    {Event::PolicyApplied, "policy_applied", "c673214bd17d4ae59cafa699f75261e8", "a policy was applied"},
    {Event::PolicyRefused, "policy_refused", "68a8e7ae331b48549429bd12ea118324",
     "a policy was refused; the one in force stays"},
    {Event::ProxyDown, "proxy_down", "731295295ac1499db80f426634fad4bb",
     "the scanning proxy failed its health check: fail_mode applies"},
    {Event::ProxyUp, "proxy_up", "85f9fae1a41c4abdbeeb4edfab4feea8", "the scanning proxy is healthy again"},
    {Event::TierRecovered, "tier_recovered", "8f8392ab83964d358428dcedee409472",
     "a VM's tier was recovered from the pinned maps at start"},
};

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_quiet{0};
std::mutex g_mu;  // one entry at a time, in order; guards what follows
Target g_target = Target::Auto;
int g_use_journal = -1;  // resolved from g_target at the first entry: 0 or 1
bool g_journal_failed = false;

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

bool stderr_is_journal() {
    static const bool is = journal::is_journal_stream(std::getenv("JOURNAL_STREAM"), STDERR_FILENO);
    return is;
}

journal::Socket& journal_socket() {
    static journal::Socket s;
    return s;
}

void to_stderr(const Entry& e) {
    std::string line = plain_line(e, stderr_is_journal()) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
}

// Under g_mu. An entry the journal refuses goes to stderr; the first refusal says why.
void emit(const Entry& e) {
    if (g_use_journal < 0) g_use_journal = g_target == Target::Journal || (g_target == Target::Auto && stderr_is_journal());
    if (!g_use_journal) return to_stderr(e);
    auto s = journal_socket().send(journal::encode(journal_fields(e)));
    if (s) {
        g_journal_failed = false;
        return;
    }
    if (!g_journal_failed)
        to_stderr(Entry(Level::Warning, Event::None, "journal: " + s.error().message + "; writing to stderr meanwhile"));
    g_journal_failed = true;
    to_stderr(e);
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

std::optional<Target> parse_target(std::string_view s) {
    if (s == "auto") return Target::Auto;
    if (s == "journal") return Target::Journal;
    if (s == "stderr") return Target::Stderr;
    return std::nullopt;
}

void set_target(Target t) {
    std::lock_guard lock(g_mu);
    g_target = t;
    g_use_journal = -1;
}

std::span<const EventKind> event_kinds() { return kKinds; }

const EventKind* kind_of(Event e) {
    for (const auto& k : kKinds)
        if (k.event == e) return &k;
    return nullptr;
}

Entry& Entry::about(std::string vm_id, std::string tenant_name, std::string tier_name) {
    vm = std::move(vm_id);
    tenant = std::move(tenant_name);
    tier = std::move(tier_name);
    return *this;
}

Entry& Entry::with(std::string field, std::string value) {
    fields.emplace_back(std::move(field), std::move(value));
    return *this;
}

std::vector<std::pair<std::string, std::string>> journal_fields(const Entry& e) {
    std::vector<std::pair<std::string, std::string>> f{
        {"MESSAGE", e.message},
        {"PRIORITY", std::to_string(static_cast<int>(e.level))},
        {"SYSLOG_IDENTIFIER", "smtpgovd"},
    };
    if (const EventKind* k = kind_of(e.event)) {
        f.emplace_back("MESSAGE_ID", k->message_id);
        f.emplace_back("SMTPGOV_EVENT", k->name);
    }
    if (!e.vm.empty()) f.emplace_back("SMTPGOV_VM", e.vm);
    if (!e.tenant.empty()) f.emplace_back("SMTPGOV_TENANT", e.tenant);
    if (!e.tier.empty()) f.emplace_back("SMTPGOV_TIER", e.tier);
    f.insert(f.end(), e.fields.begin(), e.fields.end());
    return f;
}

std::string plain_line(const Entry& e, bool journal_prefix) {
    // journald takes "<N>" at the start of a stream line as its priority (sd-daemon(3))
    if (journal_prefix) return "<" + std::to_string(static_cast<int>(e.level)) + ">" + e.message;
    return "smtpgovd: " + std::string(name(e.level)) + ": " + e.message;
}

void write(const Entry& e) {
    if (!enabled(e.level)) return;
    std::lock_guard lock(g_mu);
    emit(e);
}

void write(Level l, std::string_view msg) {
    if (!enabled(l)) return;
    write(Entry(l, Event::None, std::string(msg)));
}

QuietLibraries::QuietLibraries() { ++g_quiet; }
QuietLibraries::~QuietLibraries() { --g_quiet; }

void capture_bpf_library_output() {
    libbpf_set_print(libbpf_print);
    libxdp_set_print(libxdp_print);
}

}  // namespace smtpgov::log
