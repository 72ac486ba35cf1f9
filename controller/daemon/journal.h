// The journal's native protocol (systemd.journal-fields(7), "Native Journal Protocol"):
// one datagram per entry on /run/systemd/journal/socket, fields as "NAME=value\n", or
// "NAME\n" + value size (64-bit little-endian) + value + "\n" for a value with a newline
// (binary-safe); an entry too large for a datagram goes as a sealed memfd (SCM_RIGHTS).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/unique_fd.h"

namespace smtpgov::log::journal {

using Field = std::pair<std::string, std::string>;

inline constexpr const char* kSocketPath = "/run/systemd/journal/socket";

// A name journald keeps from a client: 1-64 of A-Z, 0-9 and _, not starting with _
// (trusted fields) or a digit.
bool valid_field_name(std::string_view name);

// The datagram of an entry. Fields with an invalid name are left out.
std::string encode(const std::vector<Field>& fields);

// Whether fd is the journal's stream: JOURNAL_STREAM ("DEV:INODE", decimal) names fd's
// device and inode. A child whose stderr was redirected elsewhere keeps the variable
// but fails this check, as sd_journal's own check does.
bool is_journal_stream(const char* journal_stream_env, int fd);

// A datagram socket to journald (or to a test's listener at another path).
class Socket {
public:
    explicit Socket(std::string path = kSocketPath);
    // Sends one encoded entry; past the datagram limit it goes as a sealed memfd.
    Status send(std::string_view datagram);
    const std::string& path() const { return path_; }

private:
    Status send_memfd(std::string_view datagram);
    std::string path_;
    UniqueFd fd_;
};

}  // namespace smtpgov::log::journal
