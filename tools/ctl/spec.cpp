#include "spec.h"

#include <algorithm>

namespace smtpgov::ctl {
namespace {

const std::vector<std::string> kTiers{"ok", "throttled", "steered", "blocked"};

// Every fleet command: where the fleet's etcd is (DESIGN.md "Fleet contract").
std::vector<OptionSpec> fleet_options(std::vector<OptionSpec> own) {
    std::vector<OptionSpec> o{
        {"etcd", ValueKind::String, "URL[,URL...]", "etcd endpoints of the fleet (else the config's fleet.etcd)", {}, ""},
        {"prefix", ValueKind::String, "PREFIX", "key prefix of the fleet (else the config's fleet.prefix)", {},
         "/smtpgov"},
        {"config", ValueKind::File, "FILE",
         "smtpgovd config whose fleet object names etcd, prefix, TLS and auth (read with --etcd only when given)", {},
         "/etc/smtpgov/smtpgovd.json"},
    };
    o.insert(o.end(), own.begin(), own.end());
    return o;
}

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
        {{"report", "arf"}, "attribute an ARF feedback report to the VM that sent the mail",
         "Parses one ARF report (RFC 5965 multipart/report; report-type=feedback-report) from FILE, or from "
         "standard input with -: its Source-IP and Arrival-Date (missing: from the first Received header of the "
         "original message whose from clause names an IP literal, and its date), Feedback-Type and Reporting-MTA. The daemon "
         "counts a complaint against the VM that held that address at that time. Exits 2 when the message is "
         "not an ARF report or names no address or time, 1 when no VM held the address then. With --reporters, "
         "a report counts only when the topmost Authentication-Results header naming --authserv-id (the one "
         "your MTA adds after checking DKIM) says dkim=pass for one of those domains or a domain under one; "
         "anything else exits 2 (untrusted_reporter) and nothing is sent to the daemon.",
         {{"FILE", ValueKind::File, "the report (a whole message), or - for standard input", {}}},
         {{"reporters", ValueKind::String, "DOMAINS",
           "comma-separated domains whose DKIM-signed reports are trusted (requires --authserv-id)", {}, ""},
          {"authserv-id", ValueKind::String, "ID",
           "the authserv-id your MTA writes in its Authentication-Results header (with --reporters)", {}, ""}},
         true},
        {{"ip", "show"}, "show who held an address when, its complaints and DNSBL listings",
         "Shows the VMs and tenants that held ADDR (an address, or a prefix) over time, the holder now, the "
         "feedback-loop complaints about it, its DNSBL listings (now, and ended within address_taint_days: zone, "
         "since, holder, whether it was charged, the list's reason) and whether it is tainted (ip check). In a "
         "fleet, every host's records of it too, each naming the host that recorded it (etcd unreachable: this "
         "host's only, and it says so).",
         {{"ADDR", ValueKind::String, "IPv4 or IPv6 address or prefix", {}}}, {}, true},
        {{"ip", "check"}, "exit 0 when an address is clean, 3 when tainted",
         "For provisioning systems, before handing ADDR to a customer: exits 3 when it is tainted (DNSBL-listed "
         "now, or complained about or listed within the daemon's address_taint_days), 0 when clean, 1 when the daemon cannot answer (treat "
         "that as not clean). In a fleet, every host's complaints and listings count; 1 when etcd cannot be read.",
         {{"ADDR", ValueKind::String, "IPv4 or IPv6 address or prefix", {}}}, {}, true},
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
        {{"fleet", "status"}, "show every host of the fleet",
         "Reads the fleet's etcd (not a daemon): every host under PREFIX/hosts/ and every host of the fleet policy, "
         "whether its live key exists (LOST when its lease expired), when it last wrote its status, the fleet "
         "policy serial it has in force or refused, its VMs and their tiers; and the fleet's current serial.",
         {}, fleet_options({}), false},
        {{"fleet", "policy", "apply"}, "validate and store a fleet policy",
         "Validates FILE offline (every VM needs a host; exit 2 with every problem as PATH: reason, nothing "
         "written), then stores it split into PREFIX/policy/global and one value per host, under a lock and a "
         "compare-and-swap on the global value's revision as read: when another apply ran or runs meanwhile, "
         "nothing is written and the command exits 1. Then waits up to --wait seconds for each host's status to "
         "report the new serial and prints per host: applied, refused: REASON, or no answer (live or lost). "
         "Exits 0 only when every host applied it.",
         {{"FILE", ValueKind::File, "fleet policy JSON document (a policy whose VMs each name their host)", {}}},
         fleet_options({{"wait", ValueKind::Seconds, "SECONDS", "how long to wait for the hosts to report", {}, "10"}}),
         false},
        {{"fleet", "policy", "get"}, "print the fleet policy stored in etcd",
         "Prints the fleet policy put back together from PREFIX/policy/global and the host values it names "
         "(re-appliable with fleet policy apply). Exits 1 when none is stored.",
         {}, fleet_options({}), false},
        {{"fleet", "vm", "list"}, "list every VM of the fleet with its host",
         "Lists every VM of the fleet policy with its host, merged with its shared reputation record "
         "(PREFIX/tenants/TENANT/vms/ID: tier, score decayed to now, pin, the host that wrote it and when; no "
         "record: ok, score 0), highest score first.",
         {},
         fleet_options({{"tier", ValueKind::Choice, "TIER", "only VMs in this tier", kTiers, ""},
                        {"tenant", ValueKind::String, "NAME", "only VMs of this tenant", {}, ""}}),
         false},
        {{"fleet", "vm", "set-tier"}, "pin a VM to a tier on whichever host enforces it",
         "Writes the pin into the VM's shared record (PREFIX/tenants/TENANT/vms/ID, tenant and host from the "
         "fleet policy) with a compare-and-swap on the revision read, from any machine that reaches etcd. The "
         "host that enforces the VM takes it in as a pin set elsewhere and writes the record back; the command "
         "waits up to --wait seconds for that and exits 1 when the host did not confirm (the pin stays stored and "
         "holds when the host reads it). The pin follows the VM to a new host.",
         {{"ID", ValueKind::String, "VM id of the fleet policy", {}}, {"TIER", ValueKind::Choice, "tier to pin", kTiers}},
         fleet_options({{"for", ValueKind::Seconds, "SECONDS", "unpin automatically after SECONDS (at most 315360000: 10 years)", {}, ""},
                        {"wait", ValueKind::Seconds, "SECONDS", "how long to wait for the VM's host (0: do not wait)", {}, "10"}}),
         false},
        {{"fleet", "vm", "clear"}, "remove a VM's pin fleet-wide",
         "Removes the operator pin from the VM's shared record, as fleet vm set-tier writes it; the VM's host "
         "takes it in and its tier follows its reputation again.",
         {{"ID", ValueKind::String, "VM id of the fleet policy", {}}},
         fleet_options({{"wait", ValueKind::Seconds, "SECONDS", "how long to wait for the VM's host (0: do not wait)", {}, "10"}}),
         false},
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
