// What the controller knows about each VM after a sweep: the one model that the control
// socket (vm list/show), the metrics exporter and the tickets all render.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tier.h"
#include "smtpgov/abi.h"

namespace smtpgov {

struct Pin {
    Tier tier = Tier::Ok;
    std::optional<int64_t> until_unix_ms;  // nullopt: until cleared
    bool operator==(const Pin&) const = default;
};

struct VmView {
    std::string id;                     // policy id, or "if:vnet7" / "ip:203.0.113.9" for auto entries
    std::string tenant;                 // "" for auto entries
    bool auto_entry = false;
    uint32_t slot = SG_SLOT_NONE;       // SG_SLOT_NONE for auto entries
    std::string interface;              // "" when attributed by address only
    std::string named_by = "policy";    // policy | libvirt | rule (interface_rules) | auto
    std::string libvirt_domain, libvirt_uuid;  // named_by libvirt: the domain, "" when not running
    std::vector<std::string> interfaces;       // vm show: the devices that carry it now
    std::vector<std::string> addresses;
    Tier tier = Tier::Ok;               // tier in force
    Tier enforced = Tier::Ok;           // what the datapath applies: tier, but steered gets fail_mode while no proxy takes it
    uint32_t conn_tracked = 0;          // live connection entries (the connection GC's last full pass)
    uint64_t conn_evicted = 0;          // own connections evicted past conn_per_vm (kernel counter)
    std::optional<Pin> pin;
    double score = 0;                   // reputation score (decayed to "now")
    double rate = 0;                    // smoothed new SMTP connections per second
    uint32_t limit_rate = 0, limit_burst = 0;  // limits in force (of its tier)
    std::array<uint64_t, SG_VERDICT_MAX> syn{};   // totals since first seen, by sg_verdict
    uint64_t spoofed = 0;
    uint64_t rst_sent = 0;
    std::array<uint64_t, SG_REPLY_MAX> replies{}; // by sg_reply_kind
};

// The scanning proxy of one address family, as the health checks found it.
struct ProxyView {
    std::string family;   // "ipv4" | "ipv6"
    std::string address;  // ADDR:PORT
    bool up = false;
};

// The connection table as the GC's last full pass found it.
struct ConnSummary {
    uint64_t tracked = 0, steered = 0;  // live entries, of which steered
    uint64_t deleted = 0;               // idle entries this daemon deleted
    uint64_t passes = 0;                // full passes done (0: counts not known yet)
};

struct MapFill {
    std::string name;
    uint64_t used = 0;
    uint64_t max = 0;
};

// Everything one sweep produced.
struct Snapshot {
    std::vector<VmView> vms;
    std::array<size_t, 4> tiers{};                 // VMs by tier (index: Tier), every VM counted
    std::array<uint64_t, SG_RES_MAX> results{};   // datapath totals by sg_result
    std::vector<MapFill> maps;
    uint64_t events_received = 0;                  // ring-buffer events consumed
    ConnSummary conns;
    std::vector<ProxyView> proxies;                // configured families only
    std::string fail_mode = "throttle";            // what steered VMs get while no proxy takes them
    double sweep_seconds = 0;                      // duration of the sweep that built this
    int64_t taken_unix_ms = 0;
};

}  // namespace smtpgov
