// smtpgov-man: the man pages of smtpgovd and smtpgov-flood, and the journal catalog of
// smtpgovd's events, generated at build time from the tables their --help and their
// logging use (smtpgovd's command flags and config keys, the event kinds with their
// MESSAGE_IDs, smtpgov-flood's option table). smtpgovctl writes its own page
// (`smtpgovctl man`, from its command table).
//   smtpgov-man smtpgovd | smtpgov-flood | catalog      (to stdout)
#include <iostream>
#include <string>
#include <type_traits>

#include "daemon/config.h"
#include "daemon/log.h"
#include "options.h"
#include "roff.h"

namespace {

using namespace smtpgov;
namespace po = boost::program_options;

// "help,h" -> \fB\-\-help\fR, \fB\-h\fR
std::string flag_tag(std::string_view boost_option) {
    auto comma = boost_option.find(',');
    std::string tag = man::bold("--" + std::string(boost_option.substr(0, comma)));
    if (comma != std::string_view::npos) tag += ", " + man::bold("-" + std::string(boost_option.substr(comma + 1)));
    return tag;
}

std::string setting_value_name(const daemon::ConfigKey& k) {
    return std::visit(
        [](const auto& kind) -> std::string {
            using T = std::decay_t<decltype(kind)>;
            if constexpr (std::is_same_v<T, daemon::ConfigKey::Count>) return "N";
            else if constexpr (std::is_same_v<T, daemon::ConfigKey::List>) return "NAME...";
            else if constexpr (std::is_same_v<T, daemon::ConfigKey::Text>) return "VALUE";
            else return "JSON";
        },
        k.value);
}

std::string smtpgovd_settings() {
    std::string m = man::section("SETTINGS");
    m += man::paragraph("Every key of the JSON config file is also a flag of the same name with '-' for '_' "
                        "(state_dir is --state-dir); flags override the file. An unknown key is refused.");
    m += man::item(man::bold("--config") + " " + man::italic("FILE"), "The JSON config file (the unit passes "
                   "/etc/smtpgov/smtpgovd.json).");
    for (const auto& k : daemon::config_keys()) {
        std::string text = std::string(k.help) + ". In the file: \"" + k.name + "\".";
        if (std::string d = daemon::default_text(k); !d.empty()) text += " Default: " + d + ".";
        m += man::item(man::bold("--" + daemon::flag_of(k.name)) + " " + man::italic(setting_value_name(k)), text);
    }
    return m;
}

std::string smtpgovd_logging() {
    std::string m = man::section("LOGGING");
    m += man::paragraph(
        "With log_target auto (the default) smtpgovd writes to the journal in its native protocol when its "
        "stderr is the journal's stream (JOURNAL_STREAM names stderr's device and inode, as systemd sets it); "
        "journal forces that, stderr writes plain lines. Every entry carries MESSAGE, PRIORITY and "
        "SYSLOG_IDENTIFIER=smtpgovd; an event adds MESSAGE_ID and SMTPGOV_EVENT, and an event about a VM adds "
        "SMTPGOV_VM, SMTPGOV_TENANT and SMTPGOV_TIER (its tier after the event), so that");
    m += man::example("journalctl -u smtpgovd SMTPGOV_VM=vm-101");
    m += man::paragraph("shows one VM's story. The events and their MESSAGE_IDs, which never change:");
    for (const auto& k : log::event_kinds())
        m += man::item(man::bold(k.name) + " " + man::italic(k.message_id), k.meaning);
    return m;
}

std::string smtpgovd_page() {
    std::string m = man::title("smtpgovd", 8, "outbound-SMTP abuse governor for hypervisor hosts");
    m += man::section("SYNOPSIS") + man::bold("smtpgovd") + " [" + man::bold("--config") + " " +
         man::italic("FILE") + "] [" + man::italic("SETTINGS") + "] [" + man::bold("--check-config") + " | " +
         man::bold("--remove") + "]\n";
    m += man::section("DESCRIPTION");
    m += man::paragraph(
        "smtpgovd loads smtpgov's XDP and TC programs on the VM-facing interfaces of a hypervisor, where every "
        "new SMTP connection of each VM is counted and held to the VM's token bucket; it keeps a reputation "
        "score per VM, moves VMs between the tiers ok, throttled, steered and blocked, writes tickets naming "
        "the abusive VM, serves Prometheus metrics and answers smtpgovctl(8) on its control socket.");
    m += man::paragraph(
        "Enforcement lives in pinned BPF maps and links: stopping or killing the daemon leaves it running in the "
        "kernel, and a restart adopts the pins without a gap. smtpgovd --remove takes everything away.");
    m += man::section("COMMANDS");
    for (const auto& c : daemon::command_flags()) m += man::item(flag_tag(c.option), c.help);
    m += smtpgovd_settings();
    m += smtpgovd_logging();
    m += man::section("FILES");
    m += man::item(man::italic("/etc/smtpgov/smtpgovd.json"), "daemon settings (mode 0640: it may name a webhook URL "
                   "with a token)");
    m += man::item(man::italic("/etc/smtpgov/policy.json"), "the policy applied at the first start");
    m += man::item(man::italic("/var/lib/smtpgov"), "persisted policy, slots, reputation and events.jsonl (tickets)");
    m += man::item(man::italic("/run/smtpgov/ctl.sock"), "control socket (root only)");
    m += man::item(man::italic("/sys/fs/bpf/smtpgov"), "pinned maps and links");
    m += man::section("SIGNALS");
    m += man::item(man::bold("SIGTERM") + ", " + man::bold("SIGINT"),
                   "stop; enforcement stays in the kernel until smtpgovd --remove");
    m += man::section("EXIT STATUS");
    m += man::item(man::bold("0"), "stopped normally, or the command succeeded");
    m += man::item(man::bold("1"), "runtime failure (not root, BPF programs refused, state dir locked)");
    m += man::item(man::bold("2"), "usage error or invalid configuration (each problem on its own line)");
    m += man::section("SEE ALSO");
    m += ".BR smtpgovctl (8),\n.BR smtpgov\\-flood (8),\n.BR journalctl (1),\n.BR systemd.journal\\-fields (7)\n";
    return m;
}

// "arg (=1000)" -> "1000"; "" when there is no default
std::string boost_default(const po::option_description& o) {
    std::string p = o.format_parameter();
    auto at = p.find("(=");
    return at == std::string::npos ? "" : p.substr(at + 2, p.size() - at - 3);
}

std::string flood_page() {
    std::string m = man::title("smtpgov-flood", 8, "SMTP load generator for testing smtpgov");
    m += man::section("SYNOPSIS") + man::escape(flood::kUsage) + "\n";
    m += man::section("DESCRIPTION");
    m += man::paragraph("smtpgov-flood generates the load smtpgov is built to govern, for testbeds and "
                        "benchmarks. Every run is bounded: it stops after --count or --duration (at most 3600 s). "
                        "Point it only at hosts you run yourself.");
    m += man::item(man::bold("syn"), "SMTP SYNs at a rate (or as fast as possible), as live frames through "
                   "BPF_PROG_RUN with an AF_PACKET fallback; optionally from random or spoofed sources, VLAN tagged.");
    m += man::item(man::bold("smtp"), "real SMTP sessions (EHLO, MAIL, RCPT, DATA) at a target rate, with a bound on "
                   "sessions in flight.");
    m += man::item(man::bold("vlan-tag"), "attach the testbed's tc VLAN tagger to a device.");
    m += man::section("OPTIONS");
    const po::options_description table = flood::options();
    for (const auto& o : table.options()) {
        std::string tag = man::bold("--" + o->long_name());
        if (o->semantic()->max_tokens() > 0) tag += " " + man::italic("VALUE");
        std::string text = o->description();
        if (std::string d = boost_default(*o); !d.empty()) text += " (default: " + d + ")";
        m += man::item(tag, text);
    }
    m += man::section("EXIT STATUS");
    m += man::item(man::bold("0"), "done; the summary is printed (--json: one JSON object)");
    m += man::item(man::bold("1"), "runtime failure");
    m += man::item(man::bold("2"), "usage error, one line on stderr");
    m += man::section("EXAMPLES");
    m += man::example("smtpgov-flood syn --netns vm1 --dst 198.51.100.25 --rate 8000 --duration 2 --json\n"
                      "smtpgov-flood smtp --dst 198.51.100.25 --rate 5 --count 20");
    m += man::section("SEE ALSO");
    m += ".BR smtpgovd (8),\n.BR smtpgovctl (8)\n";
    return m;
}

// systemd's message catalog: `journalctl -x` explains each event.
std::string catalog() {
    std::string c = "# smtpgov: smtpgovd's events (generated by smtpgov-man from controller/daemon/log.cpp)\n";
    for (const auto& k : log::event_kinds()) {
        c += "\n-- " + std::string(k.message_id) + "\nSubject: smtpgovd: " + k.meaning +
             "\nDefined-By: smtpgov\nSupport: man:smtpgovd(8)\nDocumentation: man:smtpgovd(8)\n\n" + k.meaning + ".\n";
        if (std::string_view(k.name) == "tier_change" || std::string_view(k.name) == "ticket" ||
            std::string_view(k.name) == "over_limit" || std::string_view(k.name) == "tier_recovered")
            c += "\nVM @SMTPGOV_VM@ (tenant @SMTPGOV_TENANT@) is now in tier @SMTPGOV_TIER@. Its story:\n"
                 "journalctl -u smtpgovd SMTPGOV_VM=@SMTPGOV_VM@; its counters: smtpgovctl vm show @SMTPGOV_VM@.\n";
    }
    return c;
}

}  // namespace

int main(int argc, char** argv) {
    std::string what = argc == 2 ? argv[1] : "";
    if (what == "smtpgovd") std::cout << smtpgovd_page();
    else if (what == "smtpgov-flood") std::cout << flood_page();
    else if (what == "catalog") std::cout << catalog();
    else {
        std::cerr << "usage: smtpgov-man smtpgovd|smtpgov-flood|catalog\n";
        return 2;
    }
    return 0;
}
