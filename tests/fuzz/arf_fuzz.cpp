// Fuzz target: the ARF parser (core/arf.h) on whole messages. Properties: a report
// names one host address in normal form, a lower-case feedback type and where its
// address and time came from; a refusal has a name and a reason; the same input
// gives the same outcome twice (no state kept between parses); with reporters, only a
// report vouched for by one of them.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "check.h"
#include "core/arf.h"
#include "core/ip_prefix.h"

using namespace smtpgov;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    arf::Outcome a = arf::parse(in), b = arf::parse(in);
    FUZZ_CHECK(a.index() == b.index(), "the same input gives the same outcome");
    if (auto* r = std::get_if<arf::Report>(&a)) {
        auto p = IpPrefix::parse(r->source_ip);
        FUZZ_CHECK(p && p->is_host() && p->to_string() == r->source_ip, "source_ip is one address in normal form");
        FUZZ_CHECK(!r->feedback_type.empty(), "a report has a feedback type");
        for (char c : r->feedback_type) FUZZ_CHECK(!std::isupper(static_cast<unsigned char>(c)), "feedback type in lower case");
        FUZZ_CHECK(r->source_from == "Source-IP" || r->source_from == "Received", "source_from named");
        FUZZ_CHECK(r->arrival_from == "Arrival-Date" || r->arrival_from == "Received-Date" || r->arrival_from == "Received",
                   "arrival_from named");
        auto* r2 = std::get_if<arf::Report>(&b);
        FUZZ_CHECK(r2->source_ip == r->source_ip && r2->arrival_unix == r->arrival_unix, "deterministic");
    } else {
        const auto& no = std::get<arf::Refused>(a);
        FUZZ_CHECK(!no.message.empty(), "a refusal has a reason");
        FUZZ_CHECK(arf::to_string(no.why) != "?", "a refusal has a name");
        FUZZ_CHECK(std::get<arf::Refused>(b).why == no.why, "deterministic");
    }
    // With reporters (core/auth_results.h): the same report or a refusal, and a report is
    // vouched for by one of the domains.
    static const arf::Reporters rs{"mx.hoster.example", {"example.com"}};
    arf::Outcome t = arf::parse(in, &rs);
    if (auto* r = std::get_if<arf::Report>(&t)) {
        FUZZ_CHECK(std::holds_alternative<arf::Report>(a), "a report with reporters is one without");
        FUZZ_CHECK(r->signed_by == "example.com" || r->signed_by.ends_with(".example.com"), "signed by a reporter");
    }
    return 0;
}
