// The control socket's command names: the one list smtpgovd dispatches on and
// smtpgovctl sends (docs/internals.md, "Control socket protocol").
#pragma once

#include <array>
#include <string_view>

namespace smtpgov::svc::cmd {

inline constexpr std::string_view kStatus = "status";
inline constexpr std::string_view kPolicyValidate = "policy.validate";
inline constexpr std::string_view kPolicyApply = "policy.apply";
inline constexpr std::string_view kPolicyGet = "policy.get";
inline constexpr std::string_view kVmList = "vm.list";
inline constexpr std::string_view kVmShow = "vm.show";
inline constexpr std::string_view kVmSetTier = "vm.set_tier";
inline constexpr std::string_view kVmClear = "vm.clear";
inline constexpr std::string_view kEvents = "events";
inline constexpr std::string_view kReport = "report";
inline constexpr std::string_view kFlowOriginalDst = "flow.original_dst";
// From smtpgov-libvirt: running domains and their interfaces (core/hypervisor.h)
inline constexpr std::string_view kHypervisorUpdate = "hypervisor.update";
// Address reputation (DESIGN.md "Address reputation contract"): a parsed ARF report,
// and what the address history knows about an address
inline constexpr std::string_view kReportArf = "report.arf";
inline constexpr std::string_view kIpShow = "ip.show";
inline constexpr std::string_view kIpCheck = "ip.check";

// The commands that change the daemon's state. smtpgovctl waits for their answer for as
// long as the daemon works on them (a fleet-size policy.apply), because giving up would
// not undo them. smtpgovd's command table marks the same ones.
inline constexpr std::array kChangesState{kPolicyApply, kVmSetTier, kVmClear, kReport, kHypervisorUpdate, kReportArf};
constexpr bool changes_state(std::string_view name) {
    for (auto c : kChangesState)
        if (c == name) return true;
    return false;
}

// The longest pin vm.set_tier takes in for_s: 10 years (315,360,000 s). smtpgovctl
// refuses more as a usage error, and smtpgovd must too (for_s * 1000 as int64 ms).
inline constexpr double kMaxPinSeconds = 10.0 * 365 * 86400;

}  // namespace smtpgov::svc::cmd
