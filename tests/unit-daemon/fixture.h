// A controller on MemoryMaps and a FakeHost, in a private state dir, on a ManualClock:
// the daemon's logic with no kernel, no root and no sockets.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "daemon/controller.h"
#include "memory_maps.h"

namespace sgt {

using namespace smtpgov;
using namespace smtpgov::daemon;
using nlohmann::json;

class FakeHost final : public Host {
public:
    std::map<std::string, int> links;    // name -> ifindex present on the machine
    std::vector<std::string> patterns;   // governed names (exact); empty: every link
    int fail_load = 0, fail_swap = 0;    // errno to fail load_ports/swap_ports with
    std::vector<uint16_t> loaded, attached_ports{25, 465, 587};
    int swaps = 0, drops = 0;

    int ifindex(const std::string& name) const override;
    std::string ifname(uint32_t ifindex) const override;
    std::vector<std::pair<std::string, int>> governed() const override;
    Status load_ports(const std::vector<uint16_t>& ports) override;
    Status swap_ports() override;
    void drop_ports() override;
    json status() const override { return {{"interfaces", json::array()}}; }
};

class ControllerTest : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    // Writes `policy` as the policy file and starts a controller on the state dir.
    void start(const json& policy);
    // A new controller on the same state dir and maps (a daemon restart).
    void restart();
    json call(const json& req);          // result of an ok reply (fails the test otherwise)
    svc::Reply raw(const json& req) { return ctl->handle(req); }
    json apply(const json& policy);      // policy.apply, whole reply
    size_t event_count() { return ctl->events().recent(100000).size(); }
    uint32_t slot(const std::string& id);
    sg_vm_policy vm_entry(const std::string& id);
    // Adds n SYNs of verdict v to a VM's kernel counters.
    void syn(const std::string& id, int verdict, uint64_t n);
    void sweep() { ctl->sweep(); }

    std::string dir;
    ManualClock clock;
    MemoryMaps maps;
    FakeHost host;
    std::unique_ptr<Controller> ctl;
    std::vector<TierChange> heard;  // what a subscriber heard
    std::vector<std::string> gateways;  // gateway_interfaces
    uint32_t hold_s = 300;              // auto_hold_s
    std::string fleet_host;             // in a fleet as this host ("" = alone)
    dnsbl::Options dnsbl;               // config dnsbl (none: off)
};

// The kind of a refused reply ("usage", "validation", ...), "" when it was ok.
std::string refusal(const svc::Reply& r);

// A policy VM; without an interface or addresses it gets interface "tap-<id>", absent
// from the host unless a test plugs it.
json vm(const std::string& id, json extra = json::object());

// An sg_auto key: {ifindex, 0} for an interface, {ifindex, 4|6, addr} for a source.
sg_auto_key auto_key(uint32_t ifindex, uint8_t family = 0, const char* addr = nullptr);
// An auto entry whose datapath counters hold n refused SYNs.
sg_auto_vm refused(uint64_t n);
json policy(std::vector<json> vms, json extra = json::object());

}  // namespace sgt
