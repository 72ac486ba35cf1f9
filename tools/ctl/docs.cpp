#include "docs.h"

#include <algorithm>
#include <set>

namespace smtpgov::ctl {
namespace {

std::string option_label(const OptionSpec& o) {
    return "--" + o.name + (o.kind == ValueKind::Flag ? "" : " " + o.value_name);
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

std::string option_help(const OptionSpec& o) {
    std::string h = o.help;
    if (!o.choices.empty()) h += " (" + join(o.choices, ", ") + ")";
    if (!o.default_value.empty()) h += " [default: " + o.default_value + "]";
    return h;
}

std::string arg_help(const ArgSpec& a) {
    return a.help + (a.choices.empty() ? "" : " (" + join(a.choices, ", ") + ")");
}

// Two-column list: "  left   help".
std::string columns(const std::vector<std::pair<std::string, std::string>>& rows) {
    size_t w = 0;
    for (const auto& [l, r] : rows) w = std::max(w, l.size());
    std::string out;
    for (const auto& [l, r] : rows) out += "  " + l + std::string(w - l.size() + 3, ' ') + r + "\n";
    return out;
}

bool under(const CommandSpec& c, const std::vector<std::string>& prefix) {
    return c.path.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), c.path.begin());
}

const char* kExitText =
    "Exit status: 0 success, 1 runtime failure (daemon unreachable, not found, runtime error),\n"
    "2 usage or validation error. The reason is printed as one line on stderr.\n";

// roff escaping: backslashes and leading dots/quotes; '-' as \- in option names.
std::string roff(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\e";
        else if (c == '-') out += "\\-";
        else out += c;
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
    return out;
}

std::string capitalized(std::string s) {
    if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = char(s[0] - 'a' + 'A');
    return s;
}

}  // namespace

std::string general_help(const std::vector<std::string>& prefix) {
    std::string out = "Usage: smtpgovctl [--socket PATH] [--json] " + (prefix.empty() ? "COMMAND" : join(prefix, " ") + " SUBCOMMAND") +
                      " [ARGS...]\n\nOperator CLI of smtpgov, the outbound-SMTP abuse governor.\n\nCommands:\n";
    std::vector<std::pair<std::string, std::string>> rows;
    for (const auto& c : commands())
        if (under(c, prefix)) rows.emplace_back(c.usage(), c.summary);
    out += columns(rows);
    out += "\nGlobal options:\n";
    rows.clear();
    for (const auto& o : global_options()) rows.emplace_back(option_label(o), option_help(o));
    out += columns(rows);
    out += "\nRun 'smtpgovctl COMMAND --help' for a command's options.\n";
    return out + kExitText;
}

std::string command_help(const CommandSpec& c) {
    std::string out = "Usage: smtpgovctl [--socket PATH] [--json] " + c.usage() + "\n\n" + capitalized(c.summary) + ".\n" +
                      c.description + "\n";
    std::vector<std::pair<std::string, std::string>> rows;
    if (!c.args.empty()) {
        for (const auto& a : c.args) rows.emplace_back(a.name, arg_help(a));
        out += "\nArguments:\n" + columns(rows);
        rows.clear();
    }
    if (!c.options.empty()) {
        for (const auto& o : c.options) rows.emplace_back(option_label(o), option_help(o));
        out += "\nOptions:\n" + columns(rows);
        rows.clear();
    }
    for (const auto& o : global_options()) rows.emplace_back(option_label(o), option_help(o));
    out += "\nGlobal options:\n" + columns(rows) + "\n" + kExitText;
    return out;
}

std::string man_page() {
    std::string m;
    m += ".TH SMTPGOVCTL 8 \"\" \"smtpgov " SMTPGOV_VERSION "\" \"System Administration\"\n";
    m += ".SH NAME\nsmtpgovctl \\- operate smtpgov, the outbound\\-SMTP abuse governor\n";
    m += ".SH SYNOPSIS\n.B smtpgovctl\n[\\fB\\-\\-socket\\fR \\fIPATH\\fR] [\\fB\\-\\-json\\fR] "
         "\\fICOMMAND\\fR [\\fIARGS\\fR...]\n";
    m += ".SH DESCRIPTION\n\\fBsmtpgovctl\\fR talks to \\fBsmtpgovd\\fR(8) over its control socket (JSON over a "
         "unix socket, root only) to show VMs, their tiers and counters, apply policies, pin tiers and follow "
         "events. \\fBpolicy validate\\fR works offline. The \\fBfleet\\fR commands talk to the fleet's etcd "
         "directly (\\fB\\-\\-etcd\\fR, or the \\fBfleet\\fR object of the daemon configuration), not to a daemon. Human output is aligned tables; \\fB\\-\\-json\\fR "
         "prints the daemon's JSON objects instead.\n";
    m += ".SH GLOBAL OPTIONS\n";
    for (const auto& o : global_options())
        m += ".TP\n.BR \\-\\-" + roff(o.name) + (o.kind == ValueKind::Flag ? "" : " \" \\fI" + o.value_name + "\\fR\"") +
             "\n" + roff(option_help(o)) + "\n";
    m += ".SH COMMANDS\n";
    for (const auto& c : commands()) {
        m += ".SS " + roff(c.usage()) + "\n" + roff(capitalized(c.summary)) + ". " + roff(c.description) + "\n";
        for (const auto& a : c.args) m += ".TP\n.I " + roff(a.name) + "\n" + roff(arg_help(a)) + "\n";
        for (const auto& o : c.options)
            m += ".TP\n.B " + roff(option_label(o)) + "\n" + roff(option_help(o)) + "\n";
    }
    m += ".SH EXIT STATUS\n.TP\n.B 0\nsuccess\n.TP\n.B 1\nruntime failure: the daemon is unreachable, the VM or "
         "flow was not found, or the daemon reported a runtime error; for \\fBfleet\\fR commands: etcd is unreachable, "
         "another apply changed the fleet policy first (nothing written), or a host refused or did not report "
         "the applied policy\n.TP\n.B 2\nusage or validation error: bad "
         "arguments, unknown command, invalid policy (each problem printed as \\fIPATH\\fR: \\fIreason\\fR), "
         "a message that is not an ARF report (report arf)\n.TP\n.B 3\nip check: the address is tainted\n";
    m += ".SH FILES\n.TP\n.I /run/smtpgov/ctl.sock\ncontrol socket of smtpgovd\n.TP\n.I /etc/smtpgov/smtpgovd.json\n"
         "daemon configuration\n";
    m += ".SH EXAMPLES\n.nf\nsmtpgovctl vm list \\-\\-tier blocked\nsmtpgovctl vm set\\-tier vm\\-101 steered "
         "\\-\\-for 3600\nsmtpgovctl fleet policy apply fleet.json \\-\\-wait 30\nsmtpgovctl policy validate /etc/smtpgov/policy.json\nsmtpgovctl events \\-\\-follow\n.fi\n";
    m += ".SH SEE ALSO\n.BR smtpgovd (8)\n";
    return m;
}

std::string bash_completion() {
    // words: all command paths; per full command: its options and arguments.
    std::string s =
        "# bash completion for smtpgovctl, generated by `smtpgovctl completion bash`\n"
        "_smtpgovctl_files() {\n"
        "    if declare -F _filedir >/dev/null; then _filedir; else COMPREPLY=($(compgen -f -- \"$cur\")); fi\n"
        "}\n"
        "_smtpgovctl() {\n"
        "    local cur prev words cword\n"
        "    if declare -F _init_completion >/dev/null; then\n"
        "        _init_completion || return\n"
        "    else  # without the bash-completion package\n"
        "        words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD\n"
        "        cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
        "    fi\n"
        "    local i path=\"\" w skip=0\n"
        "    for ((i = 1; i < cword; i++)); do\n"
        "        w=${words[i]}\n"
        "        if ((skip)); then skip=0; continue; fi\n"
        "        case $w in\n"
        "            --socket) skip=1 ;;\n";
    std::set<std::string> valued;
    for (const auto& c : commands())
        for (const auto& o : c.options)
            if (o.kind != ValueKind::Flag) valued.insert("--" + o.name);
    if (!valued.empty())
        s += "            " + join(std::vector<std::string>(valued.begin(), valued.end()), "|") + ") skip=1 ;;\n";
    s += "            -*) ;;\n"
         "            *) path=\"${path:+$path }$w\" ;;\n"
         "        esac\n"
         "    done\n"
         "    case $prev in\n"
         "        --socket) _smtpgovctl_files; return ;;\n";
    // option values: per option name, choices (union across commands using that name)
    std::vector<std::string> done;
    for (const auto& c : commands())
        for (const auto& o : c.options) {
            if (o.kind == ValueKind::Flag || std::find(done.begin(), done.end(), o.name) != done.end()) continue;
            done.push_back(o.name);
            s += "        --" + o.name + ") " +
                 (o.choices.empty() ? std::string("return") : "COMPREPLY=($(compgen -W \"" + join(o.choices, " ") + "\" -- \"$cur\")); return") +
                 " ;;\n";
        }
    s += "    esac\n"
         "    local globals=\"";
    std::vector<std::string> g;
    for (const auto& o : global_options()) g.push_back("--" + o.name);
    s += join(g, " ") + "\"\n    case $path in\n";
    // full commands: options + positional completion by position
    for (const auto& c : commands()) {
        std::vector<std::string> opts = g;
        for (const auto& o : c.options) opts.push_back("--" + o.name);
        s += "        \"" + c.name() + "\"*)\n"
             "            if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"" + join(opts, " ") +
             "\" -- \"$cur\")); return; fi\n";
        std::string n = std::to_string(c.path.size());
        s += "            local npos\n"
             "            npos=$(wc -w <<<\"$path\"); npos=$((npos - " + n + "))\n"
             "            case $npos in\n";
        for (size_t i = 0; i < c.args.size(); ++i) {
            const ArgSpec& a = c.args[i];
            s += "                " + std::to_string(i) + ") ";
            if (!a.choices.empty())
                s += "COMPREPLY=($(compgen -W \"" + join(a.choices, " ") + "\" -- \"$cur\")) ;;\n";
            else if (a.kind == ValueKind::File)
                s += "_smtpgovctl_files ;;\n";
            else
                s += ";;\n";
        }
        s += "            esac\n            return ;;\n";
    }
    // partial paths: next words
    std::set<std::vector<std::string>> prefixes;
    for (const auto& c : commands())
        for (size_t k = 0; k < c.path.size(); ++k) prefixes.insert({c.path.begin(), c.path.begin() + long(k)});
    for (auto it = prefixes.rbegin(); it != prefixes.rend(); ++it) {
        s += "        \"" + join(*it, " ") + "\")\n"
             "            COMPREPLY=($(compgen -W \"" + join(next_words(*it), " ") +
             (it->empty() ? " $globals" : "") + "\" -- \"$cur\")) ;;\n";
    }
    s += "    esac\n"
         "}\n"
         "complete -F _smtpgovctl smtpgovctl\n";
    return s;
}

}  // namespace smtpgov::ctl
