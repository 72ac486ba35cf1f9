#include "args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include <boost/program_options.hpp>

#include "svc/commands.h"

namespace po = boost::program_options;

namespace smtpgov::ctl {

static_assert(kMaxSeconds == svc::cmd::kMaxPinSeconds, "smtpgovctl and smtpgovd bound pins alike");

namespace {

const OptionSpec* find_option(const std::vector<OptionSpec>& opts, const std::string& name) {
    for (const auto& o : opts)
        if (o.name == name) return &o;
    return nullptr;
}

bool global_takes_value(const std::string& token) {
    for (const auto& o : global_options())
        if (o.kind != ValueKind::Flag && token == "--" + o.name) return true;
    return false;
}

bool has_prefix(const std::vector<std::string>& words) {
    return std::any_of(commands().begin(), commands().end(), [&](const CommandSpec& c) {
        return c.path.size() >= words.size() && std::equal(words.begin(), words.end(), c.path.begin());
    });
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

// Pulls the command words out of argv; global options may come before them.
std::vector<std::string> take_command_words(std::vector<std::string>& argv, const CommandSpec*& cmd) {
    std::vector<std::string> words;
    for (size_t i = 0; i < argv.size() && !cmd;) {
        const std::string& t = argv[i];
        if (t == "--") break;
        if (!t.empty() && t[0] == '-') {
            i += global_takes_value(t) ? 2 : 1;
            continue;
        }
        words.push_back(t);
        if (!has_prefix(words))
            throw UsageError("unknown command '" + join(words, " ") + "'" +
                             (words.size() > 1 ? " (expected one of: " +
                                                     join(next_words({words.begin(), words.end() - 1}), ", ") + ")"
                                               : " (see 'smtpgovctl --help')"));
        argv.erase(argv.begin() + long(i));
        cmd = find_command(words);
        // a command that is also the start of a longer one ("report" and "report arf")
        if (cmd && i < argv.size() && argv[i].rfind('-', 0) != 0) {
            std::vector<std::string> longer = words;
            longer.push_back(argv[i]);
            if (has_prefix(longer)) cmd = nullptr;
        }
    }
    return words;
}

void validate_value(ValueKind kind, const std::vector<std::string>& choices, const std::string& value,
                    const std::string& what) {
    switch (kind) {
    case ValueKind::UInt: parse_uint(value, what); break;
    case ValueKind::Seconds: parse_seconds(value, what); break;
    case ValueKind::Choice:
        if (std::find(choices.begin(), choices.end(), value) == choices.end())
            throw UsageError(what + ": invalid value '" + value + "' (expected one of: " + join(choices, ", ") + ")");
        break;
    default:
        if (value.empty()) throw UsageError(what + ": empty value");
    }
}

}  // namespace

uint64_t parse_uint(const std::string& s, const std::string& what) {
    if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw UsageError(what + ": '" + s + "' is not a non-negative integer");
    return std::stoull(s);
}

double parse_seconds(const std::string& s, const std::string& what) {
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0 || s[0] == '-' || s[0] == '+' ||
        !std::isdigit(static_cast<unsigned char>(s[0])))
        throw UsageError(what + ": '" + s + "' is not a number of seconds");
    if (v > kMaxSeconds)
        throw UsageError(what + ": '" + s + "' is more than " + std::to_string(static_cast<int64_t>(kMaxSeconds)) +
                         " seconds (10 years)");
    return v;
}

bool Invocation::flag(const std::string& name) const {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
}

std::optional<std::string> Invocation::opt(const std::string& name) const {
    auto it = opts.find(name);
    if (it == opts.end()) return std::nullopt;
    return it->second;
}

uint64_t Invocation::uint_opt(const std::string& name) const {
    if (auto v = opt(name)) return parse_uint(*v, "--" + name);
    const OptionSpec* o = command ? find_option(command->options, name) : nullptr;
    return o && !o->default_value.empty() ? parse_uint(o->default_value, "--" + name) : 0;
}

std::optional<double> Invocation::seconds_opt(const std::string& name) const {
    if (auto v = opt(name)) return parse_seconds(*v, "--" + name);
    const OptionSpec* o = command ? find_option(command->options, name) : nullptr;
    if (o && !o->default_value.empty()) return parse_seconds(o->default_value, "--" + name);
    return std::nullopt;
}

const std::string& Invocation::arg(const std::string& name) const { return args.at(name); }

Invocation parse_args(const std::vector<std::string>& argv_in) {
    std::vector<std::string> rest = argv_in;
    Invocation inv;
    inv.words = take_command_words(rest, inv.command);
    const std::string where = inv.words.empty() ? "smtpgovctl" : join(inv.words, " ");

    po::options_description desc;
    for (const auto& o : global_options()) {
        if (o.kind == ValueKind::Flag)
            desc.add_options()(o.name.c_str(), po::bool_switch());
        else
            desc.add_options()(o.name.c_str(), po::value<std::string>());
    }
    po::positional_options_description pos;
    if (inv.command) {
        for (const auto& o : inv.command->options) {
            if (o.kind == ValueKind::Flag)
                desc.add_options()(o.name.c_str(), po::bool_switch());
            else
                desc.add_options()(o.name.c_str(), po::value<std::string>());
        }
        for (size_t i = 0; i < inv.command->args.size(); ++i) {
            std::string n = "__arg" + std::to_string(i);
            desc.add_options()(n.c_str(), po::value<std::string>());
            pos.add(n.c_str(), 1);
        }
    }
    desc.add_options()("__extra", po::value<std::vector<std::string>>());
    pos.add("__extra", -1);

    po::variables_map vm;
    try {
        int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
        po::store(po::command_line_parser(rest).options(desc).positional(pos).style(style).run(), vm);
    } catch (const po::error& e) {
        throw UsageError(where + ": " + e.what());
    }
    inv.help = vm["help"].as<bool>();
    inv.json = vm["json"].as<bool>();
    if (vm.count("socket")) inv.socket = vm["socket"].as<std::string>();
    if (inv.socket.empty()) throw UsageError("--socket: empty path");
    if (!inv.command) {
        if (inv.help) return inv;
        if (inv.words.empty()) throw UsageError("missing command (see 'smtpgovctl --help')");
        throw UsageError("incomplete command '" + where + "' (expected one of: " + join(next_words(inv.words), ", ") +
                         ")");
    }
    if (inv.help) return inv;
    if (vm.count("__extra"))
        throw UsageError(where + ": unexpected argument '" + vm["__extra"].as<std::vector<std::string>>().front() +
                         "' (see 'smtpgovctl " + where + " --help')");
    for (size_t i = 0; i < inv.command->args.size(); ++i) {
        const ArgSpec& a = inv.command->args[i];
        std::string n = "__arg" + std::to_string(i);
        if (!vm.count(n))
            throw UsageError(where + ": missing " + a.name + " (usage: smtpgovctl " + inv.command->usage() + ")");
        std::string v = vm[n].as<std::string>();
        validate_value(a.kind, a.choices, v, where + ": " + a.name);
        inv.args[a.name] = v;
    }
    for (const auto& o : inv.command->options) {
        if (o.kind == ValueKind::Flag) {
            if (vm[o.name].as<bool>()) inv.flags.push_back(o.name);
        } else if (vm.count(o.name)) {
            std::string v = vm[o.name].as<std::string>();
            validate_value(o.kind, o.choices, v, where + ": --" + o.name);
            inv.opts[o.name] = v;
        }
    }
    return inv;
}

}  // namespace smtpgov::ctl
