// Fuzz target: the reply-text recogniser. The input is a run of sampled reply lines,
// each cut to SG_REPLY_TEXT_MAX bytes as the sweeper cuts the event's text, and each
// also tried whole. Properties: a recognised refusal has a name; the names listed for
// a set of lines are distinct and each is what one of the lines was recognised as.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "check.h"
#include "core/blocklists.h"
#include "smtpgov/abi.h"

using namespace smtpgov;

namespace {

void check_named(const std::vector<std::string>& names, const std::vector<std::string>& lines, Refusal::Kind kind) {
    for (size_t i = 0; i < names.size(); ++i) {
        FUZZ_CHECK(std::count(names.begin(), names.end(), names[i]) == 1, "names listed once");
        bool seen = std::any_of(lines.begin(), lines.end(), [&](const std::string& l) {
            auto r = recognise_refusal(l);
            return r && r->kind == kind && r->name == names[i];
        });
        FUZZ_CHECK(seen, "each listed name comes from a line");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> lines;
    while (!in.empty()) {
        size_t nl = std::min(in.find('\n'), in.size());
        std::string_view whole = in.substr(0, nl);
        in.remove_prefix(std::min(nl + 1, in.size()));
        lines.emplace_back(whole.substr(0, SG_REPLY_TEXT_MAX));  // what an event carries
        if (auto r = recognise_refusal(whole)) FUZZ_CHECK(!r->name.empty(), "a refusal has a name");
    }
    check_named(blocklists_named(lines), lines, Refusal::Kind::Blocklist);
    check_named(policies_named(lines), lines, Refusal::Kind::Policy);
    return 0;
}
