// Deadline-bounded socket I/O shared by the control server
// and its client. Deadlines are CLOCK_MONOTONIC ms; -1 means wait forever.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "core/unique_fd.h"

namespace smtpgov::svc {

int64_t mono_ms();
// Milliseconds left until deadline for poll(): -1 for none, 0 when passed.
int poll_timeout(int64_t deadline_ms);

enum class IoStatus { Ok, Eof, Timeout, TooLong, Woken, Interrupted, Error };

// Servers retry a poll interrupted by a signal; a CLI sets stop_on_eintr so that Ctrl-C
// (handled without SA_RESTART) ends a blocking wait with Interrupted.

// Bytes a peer sent that this end has not read yet (0 on error). A server that finds its
// own thread held up past a client's deadline checks it before calling the client silent.
size_t unread(int fd);

// Sends all of data on a non-blocking socket (MSG_NOSIGNAL: a gone peer is an error, not
// SIGPIPE). wake_fd, when >= 0, aborts the wait once it is readable.
IoStatus send_all(int fd, std::string_view data, int64_t deadline_ms, int wake_fd = -1, bool stop_on_eintr = false);

// Reads up to and excluding the next '\n' into line. buf keeps bytes after it for the
// next call. TooLong when more than max bytes arrive without a newline.
IoStatus read_line(int fd, std::string& buf, std::string& line, size_t max, int64_t deadline_ms, int wake_fd = -1,
                   bool stop_on_eintr = false);

}  // namespace smtpgov::svc
