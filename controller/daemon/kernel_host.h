// The machine under the controller: the loaded datapath and its pins, the attacher
// that runs the programs on governed interfaces, and the program swap for a change of
// smtp_ports. Implements Host for the Controller and Maps through KernelMaps.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/unique_fd.h"
#include "daemon/config.h"
#include "daemon/host.h"
#include "daemon/kernel_maps.h"
#include "kern/attacher.h"
#include "kern/datapath.h"

namespace smtpgov::daemon {

class KernelHost final : public Host {
public:
    // Locks the bpffs directory, loads the programs (reusing pinned maps), prunes links
    // of interfaces that vanished. Nothing is attached and no new pin written yet.
    static Result<std::unique_ptr<KernelHost>> open(const Config& cfg, const std::vector<uint16_t>& smtp_ports);

    Maps& maps() { return *maps_; }
    const kern::Datapath& datapath() const { return *dp_; }
    // Attaches to every present interface that matches the config.
    void attach_matching();
    // Attaches to one interface; true when it is governed (attached) afterwards.
    bool govern(const std::string& name, int ifindex);
    // The interface is gone; true when it was ours.
    bool forget(const std::string& name);
    bool matches(const std::string& name) const;
    // An interface we govern, whatever its name now (a rename keeps it governed).
    bool governs(int ifindex) const { return attacher_->name_of(ifindex) != nullptr; }
    // Commit point: maps created by this start are pinned only after the first attach.
    Status commit_pins() { return dp_->commit_pins(); }
    size_t interface_count() const { return attacher_->interfaces().size(); }

    int ifindex(const std::string& name) const override;
    std::string ifname(uint32_t ifindex) const override;
    std::vector<std::pair<std::string, int>> governed() const override;
    Status load_ports(const std::vector<uint16_t>& ports) override;
    Status swap_ports() override;
    void drop_ports() override { next_.reset(); }
    nlohmann::json status() const override;

private:
    KernelHost() = default;
    Config cfg_;
    UniqueFd bpffs_lock_;
    std::optional<kern::Datapath> dp_, next_;
    std::unique_ptr<kern::Attacher> attacher_;
    std::unique_ptr<KernelMaps> maps_;
};

}  // namespace smtpgov::daemon
