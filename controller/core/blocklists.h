// Recognises which blocklist (or which receiver policy) a remote SMTP rejection names,
// from the reply line the TC program samples (the first SG_REPLY_TEXT_MAX bytes, so
// every rule also matches a line cut short). Rules come from the rejections an
// outbound filter sees most (../shared/data/smtp-rejections.tsv).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpgov {

struct Refusal {
    enum class Kind { Blocklist, Policy };  // a listing of the sender's IP, or a receiver rule
    Kind kind;
    std::string_view name;                  // "Spamhaus XBL", "dynamic IP policy"
};

std::optional<Refusal> recognise_refusal(std::string_view reply_line);

// The distinct blocklists / policies named by a set of sampled reply lines, in order.
std::vector<std::string> blocklists_named(const std::vector<std::string>& lines);
std::vector<std::string> policies_named(const std::vector<std::string>& lines);

}  // namespace smtpgov
