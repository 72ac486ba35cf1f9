#include "options.h"

#include <charconv>
#include <sstream>

namespace smtpgov::hv {
namespace {

struct Flag {
    const char* name;
    const char* arg;   // nullptr: no argument
    const char* help;
};

constexpr Flag kFlags[] = {
    {"--connect", "URI", "libvirt connection URI (default: libvirt's own default, qemu:///system for root)"},
    {"--socket", "PATH", "smtpgovd's control socket (default /run/smtpgov/ctl.sock)"},
    {"--interval", "SECONDS", "resend every running domain this often even without events (default 60)"},
    {"--once", nullptr, "send the running domains once and exit (1 when libvirt or smtpgovd cannot be reached)"},
    {"--print", nullptr, "print the requests to stdout instead of sending them"},
    {"--hook", "DOMAIN OP [SUBOP [EXTRA]]",
     "run as libvirt's qemu hook: the domain XML on stdin; started/reconnect/attach announce the domain, "
     "stopped/release withdraw it; always exits 0 so that no VM operation fails because of smtpgov"},
    {"--help", nullptr, "this text"},
    {"--man", nullptr, "print this manual page (troff)"},
};

Result<int> seconds(const std::string& s) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 1 || v > 86400)
        return Error::msg("--interval: \"" + s + "\" is not a number of seconds in 1..86400");
    return v;
}

}  // namespace

Result<Options> parse_options(const std::vector<std::string>& args) {
    Options o;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> Result<std::string> {
            if (i + 1 >= args.size()) return Error::msg(a + " needs a value");
            return args[++i];
        };
        if (a == "--help" || a == "-h") o.help = true;
        else if (a == "--man") o.man = true;
        else if (a == "--once") o.once = true;
        else if (a == "--print") o.print = true;
        else if (a == "--hook") {
            // libvirt passes: domain name, operation, sub-operation, extra ("-" when none)
            if (i + 2 >= args.size()) return Error::msg("--hook needs DOMAIN and OP");
            o.hook = true;
            o.hook_domain = args[i + 1];
            o.hook_op = args[i + 2];
            return o;  // SUBOP and EXTRA are libvirt's and not ours to check
        } else if (a == "--connect" || a == "--socket" || a == "--interval") {
            auto v = value();
            if (!v) return v.error();
            if (a == "--connect") o.uri = *v;
            else if (a == "--socket") o.socket = *v;
            else if (auto s = seconds(*v); s) o.interval_s = *s;
            else return s.error();
        } else {
            return Error::msg("unknown argument \"" + a + "\"");
        }
    }
    return o;
}

std::string usage() {
    std::ostringstream out;
    out << "usage: smtpgov-libvirt [options]\n"
           "Tells smtpgovd which host interfaces belong to which libvirt domain.\n\n";
    for (const Flag& f : kFlags)
        out << "  " << f.name << (f.arg ? std::string(" ") + f.arg : "") << "\n      " << f.help << "\n";
    return out.str();
}

std::string man_page() {
    std::ostringstream out;
    out << ".TH SMTPGOV-LIBVIRT 8 \"\" \"smtpgov\" \"smtpgov manual\"\n"
           ".SH NAME\nsmtpgov-libvirt \\- tell smtpgovd which interfaces belong to which libvirt domain\n"
           ".SH SYNOPSIS\n.B smtpgov-libvirt\n[\\fIoptions\\fR]\n"
           ".SH DESCRIPTION\nLists the running libvirt domains with the host devices of their interfaces, "
           "sends them to smtpgovd over its control socket (request hypervisor.update), and follows "
           "libvirt's lifecycle events. A policy VM may then name its domain (\\fB\"libvirt\"\\fR: name or UUID) "
           "instead of an interface.\n.SH OPTIONS\n";
    for (const Flag& f : kFlags)
        out << ".TP\n.B " << f.name << (f.arg ? std::string(" \\fI") + f.arg + "\\fR" : "") << "\n" << f.help << "\n";
    return out.str();
}

}  // namespace smtpgov::hv
