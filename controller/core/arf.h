// ARF feedback reports (RFC 5965): one message in, what smtpgov needs out (the
// address that sent the reported mail, when it arrived, the feedback type and who
// reported it), or a named refusal. Parsed with GMime 3 (library smtpgov_arf; only
// smtpgovctl and the tests link it, the daemon never parses mail).
//
// A report is `multipart/report; report-type=feedback-report` (any case, parameters
// anywhere) whose `message/feedback-report` part carries Feedback-Type (required) and
// optionally Source-IP, Arrival-Date (or its older name Received-Date), Reporting-MTA.
// The original message is the `message/rfc822` or `text/rfc822-headers` part.
//
// Fallback when Source-IP or Arrival-Date is missing (the Received rule): the original
// message's Received headers are read top down (the topmost was added last, by the
// receiving side); the first one whose "from" clause (the text before " by ") names an
// IP literal in brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]") gives the source address
// (its first literal that parses) and the date after its last ';'. With a Source-IP but no Arrival-Date, the first Received
// header that names that Source-IP gives the date. Nothing found: refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace smtpgov::arf {

struct Report {
    std::string source_ip;         // normalised: "192.0.2.1", "2001:db8::1"
    int64_t arrival_unix = 0;
    std::string feedback_type;     // lower case: "abuse", "fraud", ...
    std::string reporting_mta;     // as written ("dns; mail.example.net"), "" when absent
    std::string source_from;       // "Source-IP" or "Received"
    std::string arrival_from;      // "Arrival-Date", "Received-Date" or "Received"
    std::string original_message_id;  // the original message's Message-ID, "" when absent
    std::string signed_by;         // with Reporters: the allowed domain whose DKIM signature passed
};

// Who may report (core/auth_results.h): the topmost Authentication-Results field naming
// authserv_id must say dkim=pass for one of `domains` (lower case) or a domain under one.
struct Reporters {
    std::string authserv_id;  // lower case
    std::vector<std::string> domains;
};

enum class Refusal {
    NotMime,             // no parsable message
    NotReport,           // not multipart/report; report-type=feedback-report
    NoFeedbackPart,      // no message/feedback-report part
    NoFeedbackType,      // the feedback-report part has no Feedback-Type
    BadSourceIp,         // Source-IP is not an IP address
    NoSource,            // no Source-IP and no Received header naming an IP literal
    NoArrival,           // no Arrival-Date and no dated Received header to fall back on
    BadArrivalDate,      // Arrival-Date present but not a date
    UntrustedReporter,   // with Reporters: no dkim=pass from an allowed domain in our MTA's field
};

struct Refused {
    Refusal why;
    std::string message;  // one line, for people
};

using Outcome = std::variant<Report, Refused>;

// With `reporters`, a report not vouched for by the MTA's Authentication-Results is
// refused (UntrustedReporter) before anything else is read from it.
Outcome parse(std::string_view message, const Reporters* reporters = nullptr);

std::string_view to_string(Refusal r);  // "not_report", ...

}  // namespace smtpgov::arf
