// smtpgov-libvirt: tells smtpgovd which host interfaces belong to which libvirt domain,
// so a policy can name VMs by domain ("libvirt": name or UUID) instead of vnetN.
//   smtpgov-libvirt [--connect URI] [--socket PATH] [--interval S]   follow libvirt
//   smtpgov-libvirt --once [--print] ...                              one snapshot
//   smtpgov-libvirt --hook DOMAIN OP [SUBOP [EXTRA]]  < domain.xml     from /etc/libvirt/hooks/qemu
#include <chrono>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "libvirt_source.h"
#include "options.h"
#include "svc/control_client.h"

namespace hv = smtpgov::hv;

namespace {

constexpr int kSendTimeoutMs = 2000;  // a hook must never hold up libvirt for long

bool deliver(const hv::Options& o, const nlohmann::json& req) {
    if (o.print) {
        std::cout << req.dump() << "\n" << std::flush;
        return true;
    }
    auto r = smtpgov::svc::request(o.socket, req, kSendTimeoutMs);
    if (!r) {
        std::cerr << "smtpgov-libvirt: " << o.socket << ": " << r.error().message << "\n";
        return false;
    }
    if (!r->value("ok", false)) {
        std::cerr << "smtpgov-libvirt: smtpgovd refused the update: " << r->value("error", std::string("?")) << "\n";
        return false;
    }
    return true;
}

// libvirt runs the hook for every operation; only these change which devices a domain has.
int run_hook(const hv::Options& o) {
    std::string xml(std::istreambuf_iterator<char>(std::cin), {});
    auto d = hv::parse_domain_xml(xml);
    if (!d) {
        std::cerr << "smtpgov-libvirt: hook " << o.hook_op << " for " << o.hook_domain << ": " << d.error().message << "\n";
        return 0;  // never fail a VM's lifecycle operation because of smtpgov
    }
    const std::string& op = o.hook_op;
    if (op == "started" || op == "reconnect" || op == "attach")
        deliver(o, hv::update_request({*d}, {}, false));
    else if (op == "stopped" || op == "release")
        deliver(o, hv::update_request({}, {d->uuid}, false));
    return 0;
}

// Follows libvirt until stopped; reconnects to libvirtd and resends everything after it restarts.
int run_follow(const hv::Options& o) {
    for (;;) {
        auto src = hv::LibvirtSource::open(o.uri);
        if (!src) {
            std::cerr << "smtpgov-libvirt: " << src.error().message << "\n";
            if (o.once) return 1;
            std::this_thread::sleep_for(std::chrono::seconds(5));
            continue;
        }
        bool ok = true;
        auto push = [&] {
            auto doms = src->running();
            if (!doms) {
                std::cerr << "smtpgov-libvirt: " << doms.error().message << "\n";
                ok = false;
                return !o.once;
            }
            ok = deliver(o, hv::update_request(*doms, {}, true));
            return !o.once;
        };
        if (o.once) return push(), ok ? 0 : 1;
        src->run(o.interval_s * 1000, push);
        std::cerr << "smtpgov-libvirt: libvirt connection closed; reconnecting\n";
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
}

}  // namespace

int main(int argc, char** argv) {
    auto o = hv::parse_options(std::vector<std::string>(argv + 1, argv + argc));
    if (!o) {
        std::cerr << "smtpgov-libvirt: " << o.error().message << "\n" << hv::usage();
        return 2;
    }
    if (o->man) {
        std::cout << hv::man_page();
        return 0;
    }
    if (o->help) {
        std::cout << hv::usage();
        return 0;
    }
    return o->hook ? run_hook(*o) : run_follow(*o);
}
