#include "spec.h"

#include <algorithm>

namespace smtpgov::ctl {
namespace {

const std::vector<std::string> kTiers{"ok", "throttled", "steered", "blocked"};

}  // namespace

std::string CommandSpec::name() const {
    std::string out;
    for (const auto& w : path) out += (out.empty() ? "" : " ") + w;
    return out;
}

std::string CommandSpec::usage() const {
    std::string out = name();
    for (const auto& a : args) {
        std::string shown;
        if (a.choices.size() == 2 || a.choices.size() == 1)
            for (const auto& c : a.choices) shown += (shown.empty() ? "" : "|") + c;
        out += " " + (shown.empty() ? a.name : shown);
    }
    for (const auto& o : options)
        out += " [--" + o.name + (o.kind == ValueKind::Flag ? "" : " " + o.value_name) + "]";
    return out;
}

const std::vector<OptionSpec>& global_options() {
    static const std::vector<OptionSpec> opts{
        {"socket", ValueKind::File, "PATH", "control socket of smtpgovd", {}, kDefaultSocket},
        {"json", ValueKind::Flag, "", "print machine-readable JSON instead of tables", {}, ""},
        {"help", ValueKind::Flag, "", "show help for the command and exit", {}, ""},
    };
    return opts;
}

const std::vector<CommandSpec>& commands() {
    static const std::vector<CommandSpec> cmds{
        {{"status"}, "show daemon, interface, datapath and map status",
         "Shows the daemon version and uptime, the interfaces it attached to, the number of VMs per tier, "
         "the last sweep, the datapath counters and how full each BPF map is.",
         {}, {}, true},
        {{"policy", "validate"}, "check a policy file offline",
         "Parses and validates FILE without contacting the daemon. Prints every problem as PATH: reason "
         "(a JSON pointer into the document) and exits 2 when the policy is invalid.",
         {{"FILE", ValueKind::File, "policy JSON document", {}}}, {}, false},
        {{"policy", "apply"}, "validate and apply a policy file atomically",
         "Sends FILE to the daemon, which validates it whole and applies it atomically; the running policy "
         "stays when it is invalid. Prints the VMs added, removed and changed, and whether the SMTP ports changed. "
         "Waits for the daemon's answer however long it works (a fleet-size policy takes a while); interrupted, "
         "the daemon may still apply it.",
         {{"FILE", ValueKind::File, "policy JSON document", {}}}, {}, true},
        {{"policy", "get"}, "print the policy in force", "Prints the policy document the daemon enforces.", {}, {},
         true},
        {{"vm", "list"}, "list VMs, busiest first",
         "Lists every VM the daemon knows (registered and auto-created entries), highest SMTP connection rate first.",
         {},
         {{"tier", ValueKind::Choice, "TIER", "only VMs in this tier", kTiers, ""},
          {"tenant", ValueKind::String, "NAME", "only VMs of this tenant", {}, ""}},
         true},
        {{"vm", "show"}, "show one VM in detail",
         "Shows a VM's tier, pin, reputation score, rate, limits, SYN counters by verdict, remote replies "
         "and its last tickets.",
         {{"ID", ValueKind::String, "VM id (policy id, or if:IFNAME / ip:ADDR for auto entries)", {}}}, {}, true},
        {{"vm", "set-tier"}, "pin a VM to a tier",
         "Pins the VM to TIER until cleared, or for SECONDS with --for; the change takes effect on the "
         "VM's next SYN.",
         {{"ID", ValueKind::String, "VM id", {}}, {"TIER", ValueKind::Choice, "tier to pin", kTiers}},
         {{"for", ValueKind::Seconds, "SECONDS", "unpin automatically after SECONDS (at most 315360000: 10 years)", {}, ""}},
         true},
        {{"vm", "clear"}, "remove a VM's pin",
         "Removes an operator pin; the VM's tier follows its reputation score again.",
         {{"ID", ValueKind::String, "VM id", {}}}, {}, true},
        {{"events"}, "print tier changes and tickets as JSON lines",
         "Prints the most recent tier changes and tickets, oldest first, one JSON object per line. With "
         "--follow, keeps printing new events as they happen until interrupted (Ctrl-C exits 0).",
         {},
         {{"follow", ValueKind::Flag, "", "keep streaming new events", {}, ""},
          {"limit", ValueKind::UInt, "N", "print at most N past events", {}, "100"}},
         true},
        {{"report"}, "report spam or a complaint against a VM",
         "Feeds a reputation signal to the daemon: spam found by the scanning proxy, or a complaint from a "
         "feedback loop. Each report raises the VM's score by the policy's signal weight.",
         {{"KIND", ValueKind::Choice, "signal kind", {"spam", "complaint"}},
          {"ID", ValueKind::String, "VM id", {}}},
         {{"count", ValueKind::UInt, "N", "number of reports to add", {}, "1"}}, true},
        {{"flow", "original-dst"}, "print where a steered flow was going",
         "For the scanning proxy: given the client side ADDR:PORT of a steered connection as the proxy sees "
         "it, prints the destination the VM originally dialled. Exits 1 when no steered flow matches.",
         {{"ADDR:PORT", ValueKind::String, "client address and port ([v6]:PORT for IPv6)", {}}}, {}, true},
        {{"top"}, "live table of the busiest VMs",
         "Clears the terminal and redraws the busiest VMs every --interval seconds, like top(1). Press q or "
         "Ctrl-C to exit.",
         {},
         {{"interval", ValueKind::Seconds, "SECONDS", "refresh interval", {}, "2"},
          {"iterations", ValueKind::UInt, "N", "exit after N refreshes (0 = run until q)", {}, "0"},
          {"tier", ValueKind::Choice, "TIER", "only VMs in this tier", kTiers, ""}},
         true},
        {{"completion"}, "print a shell completion script",
         "Prints the completion script for SHELL, generated from the same definitions as this help.",
         {{"SHELL", ValueKind::Choice, "shell", {"bash"}}}, {}, false},
        {{"man"}, "print the manual page (roff)", "Prints the smtpgovctl(8) manual page in roff format.", {}, {},
         false},
    };
    return cmds;
}

const CommandSpec* find_command(const std::vector<std::string>& path) {
    for (const auto& c : commands())
        if (c.path == path) return &c;
    return nullptr;
}

std::vector<std::string> next_words(const std::vector<std::string>& prefix) {
    std::vector<std::string> out;
    for (const auto& c : commands()) {
        if (c.path.size() <= prefix.size() || !std::equal(prefix.begin(), prefix.end(), c.path.begin())) continue;
        const std::string& w = c.path[prefix.size()];
        if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
    }
    return out;
}

}  // namespace smtpgov::ctl
