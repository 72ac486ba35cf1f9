#include "core/arf.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/ascii.h"
#include "core/auth_results.h"
#include "core/ip_prefix.h"

namespace smtpgov::arf {
namespace {

struct Unref {
    void operator()(void* p) const {
        if (p) g_object_unref(p);
    }
};
template <typename T>
using GPtr = std::unique_ptr<T, Unref>;

using Fields = std::vector<std::pair<std::string, std::string>>;  // lower-case name, unfolded value

std::string trim(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return std::string(s.substr(b, e - b));
}

// An RFC 5322 header block (feedback-report fields, text/rfc822-headers): continuation
// lines (starting with a space or tab) are unfolded; lines without a colon are skipped;
// the block ends at the first empty line.
Fields parse_fields(std::string_view text) {
    Fields out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        if ((line[0] == ' ' || line[0] == '\t')) {
            if (!out.empty()) out.back().second += " " + trim(line);
            continue;
        }
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) continue;
        out.emplace_back(ascii_lower(trim(line.substr(0, colon))), trim(line.substr(colon + 1)));
    }
    return out;
}

std::optional<std::string> field(const Fields& f, std::string_view name) {
    for (const auto& [n, v] : f)
        if (n == name) return v;
    return std::nullopt;
}

Fields header_fields(GMimeObject* obj) {
    Fields out;
    GMimeHeaderList* hl = g_mime_object_get_header_list(obj);
    const int n = hl ? g_mime_header_list_get_count(hl) : 0;
    for (int i = 0; i < n; ++i) {
        GMimeHeader* h = g_mime_header_list_get_header_at(hl, i);
        const char* name = g_mime_header_get_name(h);
        const char* raw = g_mime_header_get_raw_value(h);
        if (!name || !raw) continue;
        // the raw value, unfolded (Received headers are not encoded words)
        std::string v;
        for (char c : std::string_view(raw)) v += (c == '\r' || c == '\n' || c == '\t') ? ' ' : c;
        out.emplace_back(ascii_lower(name), trim(v));
    }
    return out;
}

// A leaf part's content with its transfer encoding undone.
std::string decoded_content(GMimePart* part) {
    GMimeDataWrapper* w = g_mime_part_get_content(part);
    if (!w) return {};
    GPtr<GMimeStream> mem(g_mime_stream_mem_new());
    g_mime_data_wrapper_write_to_stream(w, mem.get());
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
    return bytes ? std::string(reinterpret_cast<const char*>(bytes->data), bytes->len) : std::string();
}

// The fields of a part that holds a header block: a leaf part's decoded content, or
// the headers of a message GMime parsed out of a message/* part.
Fields part_fields(GMimeObject* obj) {
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage* m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        return m ? header_fields(GMIME_OBJECT(m)) : Fields{};
    }
    if (GMIME_IS_PART(obj)) return parse_fields(decoded_content(GMIME_PART(obj)));
    return {};
}

std::optional<int64_t> parse_date(const std::string& text) {
    if (text.empty()) return std::nullopt;
    GDateTime* dt = g_mime_utils_header_decode_date(text.c_str());
    if (!dt) return std::nullopt;
    const int64_t t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    return t;
}

// "192.0.2.1", "[192.0.2.1]", "IPv6:2001:db8::1", "2001:db8::1 (comment)" -> normalised
std::optional<std::string> parse_address(std::string_view text) {
    std::string s = trim(text);
    if (size_t sp = s.find_first_of(" \t("); sp != std::string::npos) s.resize(sp);
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
    if (ascii_lower(s.substr(0, 5)) == "ipv6:") s = s.substr(5);
    if (s.empty() || s.find('/') != std::string::npos) return std::nullopt;
    auto p = IpPrefix::parse(s);
    if (!p || !p->is_host()) return std::nullopt;
    return p->to_string();
}

// The Received rule (arf.h): the source and date of the first Received header naming an
// IP literal in brackets (only `want` when given).
struct ReceivedHop {
    std::string source;
    std::optional<int64_t> date;
};
std::optional<ReceivedHop> received_hop(const Fields& orig, const std::optional<std::string>& want) {
    for (const auto& [name, value] : orig) {
        if (name != "received") continue;
        const size_t semi = value.rfind(';');
        std::string_view route = std::string_view(value).substr(0, semi);
        // only the "from" clause: a literal after " by " is the receiving server's own
        const std::string low = ascii_lower(std::string(route));
        for (const char* by : {" by ", "\tby ", ")by "})
            if (size_t at = low.find(by); at != std::string::npos) route = route.substr(0, at);
        for (size_t open = route.find('['); open != std::string_view::npos; open = route.find('[', open + 1)) {
            const size_t close = route.find(']', open);
            if (close == std::string_view::npos) break;
            auto addr = parse_address(route.substr(open, close - open + 1));
            if (!addr || (want && *addr != *want)) continue;
            ReceivedHop hop{*addr, std::nullopt};
            if (semi != std::string::npos) hop.date = parse_date(trim(value.substr(semi + 1)));
            return hop;
        }
    }
    return std::nullopt;
}

Refused refuse(Refusal why, std::string msg) { return Refused{why, std::move(msg)}; }

// The signing domain the topmost Authentication-Results field naming our MTA vouches
// for (core/auth_results.h), or the refusal.
std::variant<std::string, Refused> vouched(const Fields& top, const Reporters& rs) {
    for (const auto& [name, value] : top) {
        if (name != "authentication-results") continue;
        auto ar = parse_auth_results(value);
        if (!ar || ar->authserv_id != rs.authserv_id) continue;  // not our MTA's: anyone's to write
        std::string signer = trusted_signer(*ar, rs.domains);
        if (!signer.empty()) return signer;
        std::string seen;
        for (const auto& r : ar->results)
            if (r.method == "dkim")
                seen += (seen.empty() ? "" : ", ") + ("dkim=" + r.result) +
                        (r.props.count("header.d") ? " header.d=" + r.props.at("header.d") : "");
        return refuse(Refusal::UntrustedReporter, "the Authentication-Results of " + rs.authserv_id +
                                                      " has no dkim=pass from an allowed reporter (" +
                                                      (seen.empty() ? "no DKIM result" : seen) + ")");
    }
    return refuse(Refusal::UntrustedReporter, "no Authentication-Results header from " + rs.authserv_id +
                                                  " (is the MTA's DKIM check in front of the FBL mailbox?)");
}

void init_gmime() {
    static std::once_flag once;
    std::call_once(once, [] { g_mime_init(); });
}

}  // namespace

std::string_view to_string(Refusal r) {
    switch (r) {
    case Refusal::NotMime: return "not_mime";
    case Refusal::NotReport: return "not_report";
    case Refusal::NoFeedbackPart: return "no_feedback_part";
    case Refusal::NoFeedbackType: return "no_feedback_type";
    case Refusal::BadSourceIp: return "bad_source_ip";
    case Refusal::NoSource: return "no_source";
    case Refusal::NoArrival: return "no_arrival";
    case Refusal::BadArrivalDate: return "bad_arrival_date";
    case Refusal::UntrustedReporter: return "untrusted_reporter";
    }
    return "?";
}

Outcome parse(std::string_view message, const Reporters* reporters) {
    init_gmime();
    GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
    GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    GPtr<GMimeMessage> msg(g_mime_parser_construct_message(parser.get(), nullptr));
    if (!msg) return refuse(Refusal::NotMime, "not a MIME message");
    std::string signer;
    if (reporters) {
        auto v = vouched(header_fields(GMIME_OBJECT(msg.get())), *reporters);
        if (auto* no = std::get_if<Refused>(&v)) return *no;
        signer = std::get<std::string>(v);
    }
    GMimeObject* top = g_mime_message_get_mime_part(msg.get());
    GMimeContentType* ct = top ? g_mime_object_get_content_type(top) : nullptr;
    const char* rt = ct ? g_mime_content_type_get_parameter(ct, "report-type") : nullptr;
    if (!ct || !GMIME_IS_MULTIPART(top) || !g_mime_content_type_is_type(ct, "multipart", "report") || !rt ||
        ascii_lower(rt) != "feedback-report")
        return refuse(Refusal::NotReport, "not an ARF report (no multipart/report; report-type=feedback-report)");

    GMimeMultipart* mp = GMIME_MULTIPART(top);
    std::optional<Fields> feedback, original;
    for (int i = 0; i < g_mime_multipart_get_count(mp); ++i) {
        GMimeObject* part = g_mime_multipart_get_part(mp, i);
        GMimeContentType* pct = g_mime_object_get_content_type(part);
        if (!pct) continue;
        if (!feedback && g_mime_content_type_is_type(pct, "message", "feedback-report")) feedback = part_fields(part);
        else if (!original && (g_mime_content_type_is_type(pct, "message", "rfc822") ||
                               g_mime_content_type_is_type(pct, "text", "rfc822-headers")))
            original = part_fields(part);
    }
    if (!feedback) return refuse(Refusal::NoFeedbackPart, "ARF report without a message/feedback-report part");
    if (!original) original.emplace();

    Report r;
    r.signed_by = signer;
    // the token before any parameter or comment: "abuse; x=y" is abuse, ";abuse" is none
    auto type = field(*feedback, "feedback-type");
    if (type) {
        r.feedback_type = ascii_lower(trim(*type));
        if (size_t sp = r.feedback_type.find_first_of(" \t;("); sp != std::string::npos) r.feedback_type.resize(sp);
    }
    if (r.feedback_type.empty())
        return refuse(Refusal::NoFeedbackType, "feedback report without a Feedback-Type token");
    r.reporting_mta = field(*feedback, "reporting-mta").value_or("");
    r.original_message_id = field(*original, "message-id").value_or("");

    std::optional<std::string> source;
    if (auto ip = field(*feedback, "source-ip")) {
        source = parse_address(*ip);
        if (!source) return refuse(Refusal::BadSourceIp, "Source-IP \"" + *ip + "\" is not an IP address");
        r.source_from = "Source-IP";
    }
    std::optional<int64_t> arrival;
    for (const char* name : {"arrival-date", "received-date"}) {
        auto d = field(*feedback, name);
        if (!d) continue;
        arrival = parse_date(*d);
        if (!arrival) return refuse(Refusal::BadArrivalDate, std::string(name) + " \"" + *d + "\" is not a date");
        r.arrival_from = name == std::string_view("arrival-date") ? "Arrival-Date" : "Received-Date";
        break;
    }
    if (!source || !arrival) {
        auto hop = received_hop(*original, source);
        if (!source) {
            if (!hop) return refuse(Refusal::NoSource, "no Source-IP and no Received header naming an IP literal");
            source = hop->source;
            r.source_from = "Received";
        }
        if (!arrival) {
            if (!hop || !hop->date)
                return refuse(Refusal::NoArrival, "no Arrival-Date and no dated Received header from " + *source);
            arrival = hop->date;
            r.arrival_from = "Received";
        }
    }
    r.source_ip = *source;
    r.arrival_unix = *arrival;
    return r;
}

}  // namespace smtpgov::arf
