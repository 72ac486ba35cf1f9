// What the controller needs of the machine besides the maps: interface names and
// indexes, the interfaces smtpgov governs, and a program swap for new smtp_ports.
// The daemon implements it over netlink, libbpf and the attacher; unit tests fake it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::daemon {

class Host {
public:
    virtual ~Host() = default;
    virtual int ifindex(const std::string& name) const = 0;  // 0: no such interface
    virtual std::string ifname(uint32_t ifindex) const = 0;  // "": no such interface
    // Interfaces present now that the config says to govern: (name, ifindex).
    virtual std::vector<std::pair<std::string, int>> governed() const = 0;
    // Programs for other smtp_ports: load_ports() changes nothing attached; swap_ports()
    // replaces the attached programs atomically (on failure the old ones stay);
    // drop_ports() forgets loaded programs that were not swapped in.
    virtual Status load_ports(const std::vector<uint16_t>& ports) = 0;
    virtual Status swap_ports() = 0;
    virtual void drop_ports() = 0;
    // The machine's part of `status`: interfaces, programs, libxdp.
    virtual nlohmann::json status() const = 0;
};

}  // namespace smtpgov::daemon
