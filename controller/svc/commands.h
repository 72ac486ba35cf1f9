// The control socket's command names: the one list smtpgovd dispatches on and
// smtpgovctl sends (docs/internals.md, "Control socket protocol").
#pragma once

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

}  // namespace smtpgov::svc::cmd
