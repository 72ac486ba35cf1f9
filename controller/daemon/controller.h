// The daemon's logic without the kernel, sockets or threads: the policy in force and
// its apply, tier decisions and their announcement, counter sweeps, and the control
// commands. It owns one object per piece of state and wires them:
//   VmTable   VM identity: policy VMs, slots, auto entries, runtimes
//   Tiers     every tier decision (reputation, operator and policy pins)
//   Enforcer  the only writer of the enforcement maps, and their fill counts
//   Sweeper   counter readings and the over-limit fast path
//   EventLog  tier changes and tickets (svc/event_log.h)
// A tier change is decided once (Tiers), written once (Enforcer) and then handed as
// one record to every subscriber (event log and tickets here; webhook and metrics in
// the daemon). Reads (status, vm list/show, policy get, events) change nothing.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/address_fleet.h"
#include "core/address_history.h"
#include "core/clock.h"
#include "core/dnsbl.h"
#include "core/dnsbl_listings.h"
#include "core/fleet.h"
#include "core/hypervisor.h"
#include "core/tiers.h"
#include "core/unique_fd.h"
#include "core/view.h"
#include "daemon/conn_table.h"
#include "daemon/enforcer.h"
#include "daemon/host.h"
#include "daemon/sweeper.h"
#include "daemon/vm_table.h"
#include "svc/control_server.h"
#include "svc/event_log.h"
#include "svc/policy_proto.h"

namespace smtpgov::daemon {

struct ControllerOptions {
    std::string state_dir;
    std::string policy_file;  // applied at start when no policy is persisted
    uint32_t max_vms = 16384;
    uint32_t sweep_interval_ms = 1000;
    std::string xdp_mode = "auto";
    std::vector<std::string> gateway_interfaces;  // names or globs
    uint32_t auto_hold_s = 300;
    std::vector<hv::InterfaceRule> interface_rules;  // config interface_rules (core/hypervisor.h)
    std::string fleet_host;  // in a fleet: this host's name (policy comes from etcd); "" = alone
    uint32_t address_taint_days = 90;  // ip check: complaints this recent taint an address
    dnsbl::Options dnsbl;              // config dnsbl: zones, interval (dnsbl.cpp); none: off
};

// Interface name -> the VM id it carries (daemon/identity.cpp).
using IfaceOwners = std::shared_ptr<const std::unordered_map<std::string, std::string>>;

// One announced tier change: the event as logged, and whether it is a ticket.
struct TierChange {
    svc::Event event;
    bool ticket = false;
};
using Subscriber = std::function<void(const TierChange&)>;

// A ticket is raised when a VM reaches steered or blocked, and when it leaves them.
bool is_ticket(Tier from, Tier to);

class Controller {
public:
    // Reads the state dir (persisted policy, else the policy file; slots; reputation)
    // and opens the event log. Nothing touches the maps yet.
    static Result<std::unique_ptr<Controller>> load(const ControllerOptions& opts, const Clock& clock);
    ~Controller();

    // The operator's policy in force (before start(): the one start() will write); the
    // VMs in force also hold the interface_rules VMs (daemon/identity.cpp).
    Policy policy() const { return pending_ ? *pending_ : operator_policy(); }
    // Writes the policy in force to the maps (before any program is attached).
    Status start(Maps& maps, Host& host);

    void subscribe(Subscriber s) { subscribers_.push_back(std::move(s)); }
    std::function<void(Snapshot)> on_snapshot;             // after each sweep (metrics)
    std::function<void(const std::string&)> on_blocklist;  // a sampled reply names a blocklist

    // DNSBL monitoring (dnsbl.cpp): the lookups of the policy in force (handed to the
    // resolver's thread whenever they change), one answer applied, and what metrics hear.
    std::vector<dnsbl::Lookup> dnsbl_lookups() const;
    std::map<std::pair<std::string, std::string>, size_t> dnsbl_counts() const { return dnsbl_.counts(); }
    void dnsbl_answer(const dnsbl::Lookup& l, const dnsbl::Answer& a);
    std::function<void(std::vector<dnsbl::Lookup>)> on_dnsbl_lookups;
    std::function<void(std::string_view result)> on_dnsbl_query;  // classify()'s label
    std::function<void(const std::map<std::pair<std::string, std::string>, size_t>&)> on_dnsbl_listed;

    // Validated policy in; all or nothing: on any failure the old policy stays in force.
    Result<nlohmann::json> apply_policy(const Policy& neu);
    // An interface that matches the config appeared (after attach) or went away.
    void iface_up(const std::string& name, int ifindex);
    void iface_down(int ifindex);

    void sweep();
    void on_event(const sg_event& ev);
    void hot_tick();
    bool hot() const { return sweeper_->hot(); }
    size_t hot_count() const { return sweeper_->hot_ids().size(); }

    // One control request (docs/internals.md); the table is in commands.cpp.
    svc::Reply handle(const nlohmann::json& req);
    svc::EventLog& events() { return *events_; }
    std::array<size_t, 4> tier_counts() const;  // every VM, registered and auto, by tier
    double last_sweep_ms() const { return last_sweep_ms_; }
    Status persist_reputation();

    // Steering (steering.cpp). The health checker's finding for one proxy family: a
    // change is decided by Tiers, written (sg_runtime, steered VMs' entries) and
    // announced as a proxy_down / proxy_up event.
    // A finding about an endpoint that is no longer the policy's proxy is ignored.
    void proxy_health(const Endpoint& proxy, bool up, const std::string& detail);
    struct ProxyTargets {
        std::vector<Endpoint> endpoints;  // what to check (none: no proxy configured)
        uint32_t interval_s = 5;
        bool operator==(const ProxyTargets&) const = default;
    };
    ProxyTargets proxy_targets() const;
    // The policy service (flows.cpp): the action answering one request, on the loop thread.
    std::string policy_answer(const svc::policy::Request& r);

    // The fleet (fleet_sync.cpp): a policy from etcd (refused with an event when invalid;
    // the policy in force stays), shared records of this host's tenants, and what this
    // host tells the fleet after each sweep.
    Result<nlohmann::json> apply_fleet_policy(const nlohmann::json& doc, int64_t serial, int64_t revision,
                                              std::vector<fleet::Record> recs);
    void fleet_records(std::vector<fleet::Record> recs);
    struct FleetTick {
        std::vector<fleet::Record> records;  // this host's VMs now
        std::vector<std::string> gone;       // VMs that left this host since the last tick
        std::set<std::string> tenants;
        fleet::HostStatus status;
        double half_life_s = 600;
        // this host's address history and DNSBL state, when either changed since the last tick
        std::shared_ptr<const addrfleet::AddressState> addresses;
    };
    FleetTick fleet_tick();
    void fleet_event(const std::string& type, const std::string& reason, nlohmann::json evidence);
    bool in_fleet() const { return !opts_.fleet_host.empty(); }
    // report.arf in a fleet when no VM here held the address but another host's record
    // names the holder (addresses.cpp): recorded here, charged to nobody.
    svc::Reply record_fleet_complaint(const Complaint& c, const std::string& prefix, const std::string& holder_host);
    // This host's own address records read back from etcd (addresses.cpp): what the
    // history and DNSBL state lack is recovered (a lost state dir) and saved; from now on
    // fleet_tick's address state is marked recovered, so the agent writes it.
    void recover_fleet_addresses(const std::vector<addrfleet::HostRecord>& own,
                                 const std::vector<std::pair<std::string, std::string>>& refused);

private:
    Controller(const ControllerOptions& opts, const Clock& clock);
    Status load_state();
    void recover_from_maps(const Policy& p);  // recovery.cpp
    PlanInputs plan_inputs(const Policy& p, const SlotTable& slots) const;
    MapPlan plan(const Policy& p, const SlotTable& slots, const Tiers& tiers) const;
    bool scored(const sg_auto_key& k) const;
    void release_holds(uint64_t now_ns);
    Status commit_maps(const MapPlan& plan, const std::vector<uint16_t>* new_ports);
    void adopt(Policy p, SlotTable slots, Tiers tiers, const std::set<uint32_t>& reset,
               const std::vector<Transition>& changes);
    void announce(const Transition& t);
    void announce_proxy(const ProxyTransition& t);  // steering.cpp
    // flows.cpp: the connection table and steered flows
    ConnTable& conns();
    void sweep_connections(uint64_t now_ns);
    std::string owner_of(const sg_conn& c) const;
    std::string spam_verdict(const Endpoint& client, const ConnTable::Flow& f);
    void write_tier(const std::string& id, Tier t);
    Result<nlohmann::json> apply_fleet_doc(const nlohmann::json& doc, int64_t serial, int64_t revision);
    void import_fleet(Tiers& next, const std::vector<std::string>& added, std::vector<Transition>& out) const;
    void tenant_floors(int64_t now_ms);
    void evaluate(int64_t now_ms);
    void evaluate(const std::vector<std::string>& ids, int64_t now_ms);
    void persist_if_due(int64_t now_ms);
    Status persist_policy(const Policy& p, const SlotTable& slots, bool policy_file = true);
    Result<nlohmann::json> apply_effective(const Policy& op, bool operator_change);

    // identity.cpp: libvirt domains and interface_rules
    IfaceOwners iface_owners(const Policy& eff) const;
    Policy effective(const Policy& op, std::set<std::string>& rule_ids) const;
    Policy operator_policy() const;
    std::vector<std::string> interfaces_of(const Vm& vm) const;
    void refresh_identity(const std::string& why);
    void rule_iface_down(uint32_t ifindex);
    bool rule_iface_up(const std::string& name);
    void rule_iface_renamed(const std::string& name, uint32_t ifindex);
    void release_rule_holds(uint64_t now_ns);
    void hold_rule_vms_of_last_run(const Policy& op);
    Status load_hypervisor_map();
    void name_view(const Vm& vm, VmView& v) const;
    Result<Policy> load_policy() const;

    // views.cpp: what reads show
    std::optional<VmView> view(const std::string& id, bool detail = true) const;
    std::optional<VmView> base_view(const std::string& id, bool detail) const;
    // flows.cpp: what steering adds to reads
    void steer_view(VmView& v) const;
    ConnSummary conn_summary() const;
    std::vector<ProxyView> proxy_views() const;
    nlohmann::json steering_status() const;
    Snapshot snapshot(bool detail) const;
    std::vector<MapFill> map_fill() const;
    nlohmann::json status_json() const;

    // commands.cpp
    struct Command;
    static const std::vector<Command>& commands();
    svc::Reply cmd_status(const nlohmann::json& req);
    svc::Reply cmd_policy_validate(const nlohmann::json& req);
    svc::Reply cmd_policy_apply(const nlohmann::json& req);
    svc::Reply cmd_policy_get(const nlohmann::json& req);
    svc::Reply cmd_vm_list(const nlohmann::json& req);
    svc::Reply cmd_vm_show(const nlohmann::json& req);
    svc::Reply cmd_vm_set_tier(const nlohmann::json& req);
    svc::Reply cmd_vm_clear(const nlohmann::json& req);
    svc::Reply cmd_events(const nlohmann::json& req);
    svc::Reply cmd_report(const nlohmann::json& req);
    svc::Reply cmd_flow_original_dst(const nlohmann::json& req);
    svc::Reply cmd_hypervisor_update(const nlohmann::json& req);
    // addresses.cpp: address history, ARF complaints, ip show / ip check
    svc::Reply cmd_report_arf(const nlohmann::json& req);
    svc::Reply cmd_ip_show(const nlohmann::json& req);
    svc::Reply cmd_ip_check(const nlohmann::json& req);
    Status load_address_history();
    void note_holders();  // the VMs' addresses in force now, into the history
    Status persist_address_history();
    nlohmann::json taint_json(const IpPrefix& addr) const;
    // dnsbl.cpp
    Status load_dnsbl();
    Status persist_dnsbl();
    void dnsbl_refresh();  // the lookups follow the policy in force
    void dnsbl_test_answer(const dnsbl::Lookup& l, const dnsbl::Verdict& v);
    void dnsbl_apply(const dnsbl::Lookup& l, const dnsbl::Verdict& v);
    dnsbl::Holder dnsbl_holder(const IpPrefix& addr) const;
    void announce_dnsbl(const dnsbl::Outcome& out, const dnsbl::Holder& holder);
    nlohmann::json dnsbl_taint_json(const IpPrefix& addr, int64_t since_unix) const;
    nlohmann::json dnsbl_of_vm(const std::string& id) const;
    svc::Reply vm_reply(const std::string& id) const;
    svc::Reply changed_vm_reply(const std::string& id);

    ControllerOptions opts_;
    const Clock* clock_;
    int64_t started_ms_ = 0;
    Maps* maps_ = nullptr;
    Host* host_ = nullptr;

    VmTable vms_;
    Tiers tiers_;
    std::optional<Enforcer> enforcer_;
    std::optional<Sweeper> sweeper_;
    std::unique_ptr<svc::EventLog> events_;
    std::vector<Subscriber> subscribers_;
    std::optional<Policy> pending_;  // loaded, not yet written to the maps
    UniqueFd state_lock_;            // flock on <state_dir>/.lock

    hv::HypervisorMap hv_;              // running libvirt domains (hypervisor.json)
    std::set<std::string> rule_ids_;    // interface_rules VMs in force (the tail of vms_.policy())
    struct RuleGone {
        std::string tenant;
        uint64_t since_ns = 0;          // CLOCK_MONOTONIC
    };
    std::map<std::string, RuleGone> rule_gone_;  // rule VMs without an interface, held

    bool rep_dirty_ = false;    // a tier changed since reputation.json was written
    bool score_dirty_ = false;  // only scores did
    int64_t rep_saved_ms_ = 0;
    double last_sweep_ms_ = 0;
    uint64_t sweeps_ = 0;
    std::optional<ConnTable> conns_;  // created with the maps (conns())
    ReportLedger reports_;            // spam verdicts taken per steered connection

    struct Fleet {
        int64_t serial = 0, revision = 0, applied_at_ms = 0;  // the fleet policy in force
        int64_t refused_serial = 0;
        std::string refused_reason;
        std::unordered_map<std::string, fleet::Record> records;  // shared records of our tenants
        std::map<std::string, Tier> tenant_floor;                // tenants held above ok
        std::vector<std::string> gone;
    } fleet_;
    AddressHistory history_;          // who held which address when; complaints (addresses.cpp)
    dnsbl::Listings dnsbl_;           // DNSBL listing state per address x zone (dnsbl.cpp)
    std::set<std::string> dnsbl_refusing_;  // zones answering 127.255.255.x (logged once)
    std::map<std::string, dnsbl::ZoneCheck> dnsbl_zones_;  // what each zone's test entries said
    size_t dnsbl_warned_size_ = 0;
    // bumped whenever history_ or dnsbl_ is saved; fleet_tick hands a copy on when it moved
    uint64_t address_gen_ = 1, address_offered_gen_ = 0;
    bool addresses_recovered_ = false;  // recover_fleet_addresses ran
};

}  // namespace smtpgov::daemon
