// Leveled logging to stderr. Under systemd (JOURNAL_STREAM set) each line carries the
// sd-daemon "<N>" priority prefix so that journald records the level.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace smtpgov::log {

enum class Level { Error = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

std::optional<Level> parse_level(std::string_view s);
void set_level(Level l);
bool enabled(Level l);
void write(Level l, std::string_view msg);

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
