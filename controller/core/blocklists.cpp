#include "core/blocklists.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/ascii.h"

namespace smtpgov {
namespace {

struct Rule {
    std::string_view needle;  // lower case; the first rule whose needle occurs wins
    Refusal::Kind kind;
    std::string_view name;
};

constexpr auto B = Refusal::Kind::Blocklist;
constexpr auto P = Refusal::Kind::Policy;

// Specific before general: "[BL23] ... Spamhaus XBL" must not stop at "spamhaus".
constexpr std::array kRules{
    // Yahoo's codes name the Spamhaus list that fired, and survive truncation
    Rule{"[bl21]", B, "Spamhaus PBL"},
    Rule{"[bl22]", B, "Spamhaus SBL"},
    Rule{"[bl23]", B, "Spamhaus XBL"},
    Rule{"spamhaus pbl", B, "Spamhaus PBL"},
    Rule{"spamhaus sbl", B, "Spamhaus SBL"},
    Rule{"spamhaus xbl", B, "Spamhaus XBL"},
    Rule{"zen.spamhaus", B, "Spamhaus ZEN"},
    Rule{"spamhaus", B, "Spamhaus"},
    Rule{"trend micro", B, "Trend Micro RBL+"},  // "RBL+" may be past the sampled bytes
    Rule{"mail-abuse.com", B, "Trend Micro RBL+"},
    Rule{"abuseat.org", B, "CBL"},
    Rule{"spamcop", B, "SpamCop"},
    Rule{"barracuda", B, "Barracuda"},
    Rule{"sorbs", B, "SORBS"},
    Rule{"uceprotect", B, "UCEPROTECT"},
    Rule{"proofpoint", B, "Proofpoint"},
    Rule{"t-online", B, "T-Online"},
    Rule{"a problem occurred. (ask your postmaster", B, "T-Online"},
    Rule{"web.de", B, "web.de"},
    Rule{"verizon", B, "Verizon"},
    Rule{"vs98-ip", B, "Yahoo Japan"},
    Rule{"yahoo.co.jp", B, "Yahoo Japan"},
    Rule{"blocked for spamming issues", B, "Orange"},
    Rule{"dynamic ip", P, "dynamic IP policy"},
    Rule{"improper use of smtp command pipelining", P, "protocol violation"},
};

std::vector<std::string> named(const std::vector<std::string>& lines, Refusal::Kind kind) {
    std::vector<std::string> out;
    for (const std::string& l : lines)
        if (auto r = recognise_refusal(l); r && r->kind == kind)
            if (std::find(out.begin(), out.end(), r->name) == out.end()) out.emplace_back(r->name);
    return out;
}

}  // namespace

std::optional<Refusal> recognise_refusal(std::string_view reply_line) {
    std::string l = ascii_lower(reply_line);
    for (const Rule& r : kRules)
        if (l.find(r.needle) != std::string::npos) return Refusal{r.kind, r.name};
    return std::nullopt;
}

std::vector<std::string> blocklists_named(const std::vector<std::string>& lines) {
    return named(lines, Refusal::Kind::Blocklist);
}

std::vector<std::string> policies_named(const std::vector<std::string>& lines) {
    return named(lines, Refusal::Kind::Policy);
}

}  // namespace smtpgov
