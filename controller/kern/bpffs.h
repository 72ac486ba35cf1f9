// The bpffs side of the pins contract (docs/internals.md): mounting bpffs when the
// machine has not, the directory layout under <bpffs>, and pin helpers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/unique_fd.h"

namespace smtpgov::kern {

// <root>/maps/<map name>, <root>/links/{xdp,tc}-<ifname>
class PinLayout {
public:
    explicit PinLayout(std::string root) : root_(std::move(root)) {}
    const std::string& root() const { return root_; }
    std::string maps_dir() const { return root_ + "/maps"; }
    std::string links_dir() const { return root_ + "/links"; }
    std::string map(std::string_view name) const { return maps_dir() + "/" + std::string(name); }
    std::string xdp_link(std::string_view ifname) const { return links_dir() + "/xdp-" + std::string(ifname); }
    std::string tc_link(std::string_view ifname) const { return links_dir() + "/tc-" + std::string(ifname); }

private:
    std::string root_;
};

// Mounts bpffs on the directory that holds `root` (normally /sys/fs/bpf) unless a
// bpffs is already there, then creates root, root/maps and root/links (mode 0700).
Status prepare_bpffs(const PinLayout& layout);

// bpf_obj_get on a pin; the error carries ENOENT when there is no pin.
Result<UniqueFd> open_pin(const std::string& path);

// Pins fd at path (bpf_obj_pin); replaces nothing: an existing pin is an error.
Status pin_fd(int fd, const std::string& path);

// Removes a pin; a missing pin is not an error.
Status unpin(const std::string& path);

// Names of the entries of a pin directory (empty when it does not exist).
std::vector<std::string> list_pins(const std::string& dir);

}  // namespace smtpgov::kern
