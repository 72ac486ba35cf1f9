// What smtpgovd keeps in its state dir, each file replaced atomically (write, fsync,
// rename): policy.json (the policy in force), slots.json (VM id -> map slot, stable
// across restarts), reputation.json (scores, tiers, pins).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace smtpgov::daemon {

Status write_file_atomic(const std::string& path, const std::string& text);
// nullopt when the file does not exist; an error when it exists but is unreadable JSON.
Result<std::optional<nlohmann::json>> read_json_file(const std::string& path);
// The same for a file smtpgovd can do without (slots, reputation): one that is not
// valid JSON is moved aside to <path>.corrupt (logged) and reads as absent, so a
// damaged file never keeps the controller from starting.
Result<std::optional<nlohmann::json>> read_state_file(const std::string& path);

// VM id -> slot of the per-VM arrays. A VM keeps its slot while it is in the policy;
// a new VM takes the lowest free slot.
class SlotTable {
public:
    explicit SlotTable(uint32_t capacity = 0) : capacity_(capacity) {}

    std::optional<uint32_t> find(const std::string& id) const;
    // Gives every id a slot (keeping existing ones) and frees the slots of ids not listed.
    // Error when there are more ids than slots.
    Status assign(const std::vector<std::string>& ids);
    // Gives `id` exactly `slot` (start-up recovery from the kernel's maps); false when
    // the id has a slot already, or the slot is taken or out of range.
    bool claim(const std::string& id, uint32_t slot);
    const std::map<std::string, uint32_t>& slots() const { return slots_; }
    uint32_t capacity() const { return capacity_; }
    // One past the highest slot in use (how much of the arrays a sweep reads).
    uint32_t high_water() const;

    nlohmann::json to_json() const;
    // Slots at or beyond capacity are dropped (max_vms shrank; those VMs get new slots).
    static Result<SlotTable> from_json(const nlohmann::json& j, uint32_t capacity);

private:
    uint32_t capacity_;
    std::map<std::string, uint32_t> slots_;
};

}  // namespace smtpgov::daemon
