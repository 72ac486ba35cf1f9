// Leveled logging. Plain lines on stderr ("smtpgovd: notice: ..."), or, when stderr is
// the journal (JOURNAL_STREAM names stderr's device and inode, as systemd sets it) or
// the config's log_target says "journal", entries in the journal's native protocol with
// structured fields: PRIORITY, MESSAGE, and for events a stable MESSAGE_ID and the
// SMTPGOV_* fields, so `journalctl -u smtpgovd SMTPGOV_VM=vm-101` tells one VM's story.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace smtpgov::log {

enum class Level { Error = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

std::optional<Level> parse_level(std::string_view s);
void set_level(Level l);
bool enabled(Level l);

// Where entries go. Auto: the journal when stderr is the journal's stream, else stderr.
// Journal: the native socket even when stderr is something else (a file, a terminal);
// an entry the socket refuses is written to stderr instead, never lost.
enum class Target { Auto, Journal, Stderr };
std::optional<Target> parse_target(std::string_view s);
void set_target(Target t);

// What an entry reports. Each kind has a fixed MESSAGE_ID (README "Logs"); None is an
// ordinary message (no MESSAGE_ID, no SMTPGOV_EVENT).
enum class Event {
    None,
    DaemonStart,
    DaemonStop,
    TierChange,
    Ticket,
    OverLimit,
    PolicyApplied,
    PolicyRefused,
    ProxyDown,
    ProxyUp,
    TierRecovered,
};

struct EventKind {
    Event event;
    const char* name;        // SMTPGOV_EVENT value: "tier_change"
    const char* message_id;  // MESSAGE_ID: 32 lowercase hex digits, never changed once released
    const char* meaning;     // one line, for the README and the man page
};
std::span<const EventKind> event_kinds();  // every kind but None
const EventKind* kind_of(Event e);          // nullptr for None

// One structured entry. vm/tenant/tier become SMTPGOV_VM/_TENANT/_TIER when not empty;
// fields are further FIELD=value pairs (names: A-Z, 0-9, _; e.g. SMTPGOV_FROM_TIER).
//   log::write(log::Entry(Level::Notice, Event::TierChange, text).about(id, tenant, "blocked"));
struct Entry {
    Entry(Level l, Event ev, std::string msg) : level(l), event(ev), message(std::move(msg)) {}
    Entry& about(std::string vm_id, std::string tenant_name = {}, std::string tier_name = {});
    Entry& with(std::string field, std::string value);

    Level level;
    Event event;
    std::string message;
    std::string vm, tenant, tier;
    std::vector<std::pair<std::string, std::string>> fields;
};

void write(const Entry& e);
void write(Level l, std::string_view msg);

// The journal fields of an entry, in order (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
// MESSAGE_ID, SMTPGOV_EVENT, SMTPGOV_VM, SMTPGOV_TENANT, SMTPGOV_TIER, then e.fields).
std::vector<std::pair<std::string, std::string>> journal_fields(const Entry& e);
// The plain line of an entry on stderr, without its newline.
std::string plain_line(const Entry& e, bool journal_prefix);

inline void error(std::string_view m) { write(Level::Error, m); }
inline void warning(std::string_view m) { write(Level::Warning, m); }
inline void notice(std::string_view m) { write(Level::Notice, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void debug(std::string_view m) { write(Level::Debug, m); }

// Routes libbpf and libxdp diagnostics into this log.
void capture_bpf_library_output();

// While alive, library warnings are logged at debug: for probes whose failure is
// expected and handled (libxdp trying a dispatcher the kernel refuses).
class QuietLibraries {
public:
    QuietLibraries();
    ~QuietLibraries();
    QuietLibraries(const QuietLibraries&) = delete;
    QuietLibraries& operator=(const QuietLibraries&) = delete;
};

}  // namespace smtpgov::log
