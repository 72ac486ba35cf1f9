// A libvirt domain as smtpgov needs it: its name, UUID and the host-side devices of its
// network interfaces (<target dev=...>), read from the domain XML that libvirt's API
// returns and that its qemu hook passes on stdin. Pure: no libvirt, testable without root.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::hv {

struct Nic {
    std::string dev;  // host-side device: vnet3, tap101i0 (empty: libvirt has not named it yet)
    std::string mac;  // guest MAC, lower case
    bool operator==(const Nic&) const = default;
};

struct Domain {
    std::string name;
    std::string uuid;  // lower-case canonical form
    std::vector<Nic> nics;
    bool operator==(const Domain&) const = default;
};

// Parses <domain>...</domain>. Errors name what is missing (no <name>, no <uuid>, not XML).
// Interfaces without a target dev are skipped: they have no host device to govern yet.
Result<Domain> parse_domain_xml(std::string_view xml);

nlohmann::json to_json(const Domain& d);

// The control request that tells smtpgovd about domains (docs/internals.md, "hypervisor.update").
// full: these are all the running domains of the source (the others are gone).
nlohmann::json update_request(const std::vector<Domain>& running, const std::vector<std::string>& gone_uuids,
                              bool full);

}  // namespace smtpgov::hv
