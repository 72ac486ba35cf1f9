// smtpgovd: the controller daemon. See smtpgovd --help and docs/internals.md.
#include <signal.h>
#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/policy.h"
#include "core/unique_fd.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "kern/attacher.h"
#include "svc/policy_proto.h"

using namespace smtpgov;
using namespace smtpgov::daemon;

namespace {

constexpr int kExitRuntime = 1, kExitUsage = 2;

int fail(int code, const std::string& msg) {
    std::cerr << "smtpgovd: " << msg << "\n";
    return code;
}

int check(const Invocation& inv) {
    int problems = 0;
    for (const auto& p : check_config(inv.config)) {
        std::cerr << "smtpgovd: config: " << p << "\n";
        ++problems;
    }
    std::string policy_note = "no policy file";
    if (!inv.config.policy.empty()) {
        std::ifstream in(inv.config.policy);
        if (!in) {
            std::cerr << "smtpgovd: policy " << inv.config.policy << ": cannot be read\n";
            ++problems;
        } else {
            std::stringstream ss;
            ss << in.rdbuf();
            ParseOutcome po = parse_policy_text(ss.str());
            for (const auto& p : po.problems) {
                std::cerr << "smtpgovd: policy " << inv.config.policy << ": " << (p.path.empty() ? "/" : p.path) << ": "
                          << p.reason << "\n";
                ++problems;
            }
            if (po.policy) policy_note = "policy " + inv.config.policy + " with " + std::to_string(po.policy->vms.size()) + " VMs";
        }
    }
    if (!inv.config.policy_service_token_file.empty())
        if (auto t = svc::policy::read_token_file(inv.config.policy_service_token_file); !t) {
            std::cerr << "smtpgovd: config: policy_service_token_file: " << t.error().message << "\n";
            ++problems;
        }
    if (problems) return fail(kExitUsage, std::to_string(problems) + " problem(s); nothing started");
    std::cout << "smtpgovd: configuration OK (" << policy_note << ")\n";
    return 0;
}

// A running smtpgovd holds an flock on its bpffs directory (our probe lock goes with dir).
bool daemon_running(const std::string& bpffs) {
    UniqueFd dir(::open(bpffs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    return dir && ::flock(dir.get(), LOCK_EX | LOCK_NB) != 0;
}

int remove(const Config& c) {
    if (::geteuid() != 0) return fail(kExitRuntime, "removing BPF programs needs root (CAP_BPF, CAP_NET_ADMIN)");
    if (daemon_running(c.bpffs))
        return fail(kExitRuntime, "an smtpgovd is running on " + c.bpffs + ": stop it first");
    if (auto s = kern::Attacher::remove_everything(kern::PinLayout(c.bpffs)); !s) return fail(kExitRuntime, s.error().message);
    std::cout << "smtpgovd: removed every smtpgov program and pin under " << c.bpffs << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // Signals are taken by the loop's signalfd: block them before any thread exists.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto inv = parse_invocation(argc, argv);
    if (!inv) return fail(kExitUsage, inv.error().message + " (see --help)");
    switch (inv->command) {
    case Command::Help: std::cout << inv->usage; return 0;
    case Command::Version: std::cout << "smtpgovd " << SMTPGOV_VERSION << "\n"; return 0;
    case Command::CheckConfig: return check(*inv);
    default: break;
    }
    auto problems = check_config(inv->config);
    if (!problems.empty()) {
        for (const auto& p : problems) std::cerr << "smtpgovd: config: " << p << "\n";
        return kExitUsage;
    }
    log::set_level(*log::parse_level(inv->config.log_level));
    log::set_target(*log::parse_target(inv->config.log_target));
    log::capture_bpf_library_output();
    if (inv->command == Command::Remove) return remove(inv->config);

    auto d = Daemon::start(inv->config);
    if (!d) {
        log::error(d.error().message);  // stderr, with the journal's level prefix
        return kExitRuntime;
    }
    return (*d)->run();
}
