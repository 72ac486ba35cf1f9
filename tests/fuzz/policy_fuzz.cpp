// Fuzz target: the policy parser and validator (parse_policy_text), and what the daemon
// does with a policy it accepted: render it, diff it, compute every VM's limits.
// Properties: a document is refused with problems or accepted with none; an accepted
// policy survives its own round trip (policy.h: parse_policy(to_json(p)) == p).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "check.h"
#include "core/policy.h"

using namespace smtpgov;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    ParseOutcome po = parse_policy_text(text);
    FUZZ_CHECK(po.policy.has_value() == po.problems.empty(), "policy set exactly when there are no problems");
    if (!po.policy) {
        (void)to_json(po.problems).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return 0;
    }
    const Policy& p = *po.policy;
    nlohmann::json rendered = to_json(p);
    ParseOutcome again = parse_policy_text(rendered.dump());
    FUZZ_CHECK(again.policy && *again.policy == p, "parse_policy(to_json(p)) == p");
    FUZZ_CHECK(diff(p, p).empty(), "a policy has no diff against itself");
    (void)to_json(diff(Policy{}, p)).dump();
    for (Tier t : {Tier::Ok, Tier::Throttled, Tier::Steered, Tier::Blocked}) {
        (void)default_limits_for(p, t);
        for (const Vm& vm : p.vms) (void)limits_for(p, vm, t);
    }
    (void)steered_limits(p);
    (void)unregistered_limits(p);
    return 0;
}
