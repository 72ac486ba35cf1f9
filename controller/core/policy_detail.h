// Internal to the policy translation units: shared parse helpers and cross-VM checks.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/policy.h"

namespace smtpgov::policy_detail {

using nlohmann::json;

// A registered prefix and where it was written, for the overlap sweep.
struct AddrRef {
    IpPrefix prefix;
    uint32_t vm;     // index into Policy::vms (== index in the document's "vms" array)
    uint32_t index;  // index in that VM's "addresses" array
};

// Collects problems while walking the document; every reader reports and returns nullopt
// on a bad value so that the caller keeps its default and goes on.
class Walker {
public:
    explicit Walker(std::vector<Problem>& out) : out_(out) {}

    void bad(std::string path, std::string reason) { out_.push_back({std::move(path), std::move(reason)}); }
    bool object(const json& v, const std::string& path);  // reports "must be an object"
    void known_keys(const json& obj, const std::string& path, std::initializer_list<std::string_view> allowed);

    std::optional<std::string> string(const json& v, const std::string& path);
    std::optional<double> number(const json& v, const std::string& path);
    // A whole number in [0, max]: rates, bursts.
    std::optional<uint32_t> count(const json& v, const std::string& path, uint32_t max);
    std::optional<Action> action(const json& v, const std::string& path);
    std::optional<Tier> tier(const json& v, const std::string& path);

private:
    std::vector<Problem>& out_;
};

const json* member(const json& obj, const char* key);
// A list of TCP ports: 1..SG_MAX_PORTS entries, each 1..65535, no duplicates.
std::optional<std::vector<uint16_t>> port_list(Walker& w, const json& v, const std::string& path);
// "/proxy" (policy_proxy.cpp); reads p.smtp_ports, so it runs after them.
void parse_proxy(Walker& w, const json& v, Policy& p);
std::string escape_pointer_token(std::string_view key);  // RFC 6901: ~ -> ~0, / -> ~1

// Rejects a bucket that can never pass anything (burst 0 with rate > 0).
void check_pair(Walker& w, LimitPair eff, const std::string& burst_path, std::string_view inherited);

Vm parse_vm(Walker& w, const json& v, const std::string& path, uint32_t vm_index, const Defaults& d,
            std::vector<AddrRef>& addrs);
// Duplicate ids and interfaces claimed twice; O(n) with hash sets.
void check_unique(Walker& w, const std::vector<Vm>& vms);
// Prefixes of different VMs that overlap; sort and sweep, O(n log n).
void check_overlaps(Walker& w, std::vector<AddrRef> addrs, const std::vector<Vm>& vms);

}  // namespace smtpgov::policy_detail
