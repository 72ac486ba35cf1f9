#include "daemon/state_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>

#include "core/unique_fd.h"
#include "daemon/log.h"

namespace smtpgov::daemon {

// write + fsync a temporary file, rename it over `path`, fsync the directory: after a
// crash the file is either the old one or the new one, and a returned ok is durable.
Status write_file_atomic(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    auto fail = [&](Error e) {
        ::unlink(tmp.c_str());
        return e;
    };
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return Error::from_errno("write " + tmp);
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(Error::from_errno("write " + tmp));
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) return fail(Error::from_errno("fsync " + tmp));
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(Error::from_errno("rename " + tmp + " to " + path));
    const std::string dir = std::filesystem::path(path).parent_path().string();
    UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd || ::fsync(dfd.get()) != 0) return Error::from_errno("fsync directory " + dir);
    return ok_status();
}

Result<std::optional<nlohmann::json>> read_state_file(const std::string& path) {
    auto j = read_json_file(path);
    if (j) return j;
    if (j.error().errnum != EBADMSG) return j.error();
    const std::string aside = path + ".corrupt";
    if (::rename(path.c_str(), aside.c_str()) != 0) return Error::from_errno("move " + path + " aside");
    log::error(j.error().message + ": moved to " + aside + "; starting without it");
    return std::optional<nlohmann::json>{};
}

Result<std::optional<nlohmann::json>> read_json_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT) return std::optional<nlohmann::json>{};
        return Error::from_errno("read " + path);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded()) return Error{EBADMSG, path + ": not valid JSON"};
    return std::optional<nlohmann::json>(std::move(j));
}

std::optional<uint32_t> SlotTable::find(const std::string& id) const {
    auto it = slots_.find(id);
    if (it == slots_.end()) return std::nullopt;
    return it->second;
}

Status SlotTable::assign(const std::vector<std::string>& ids) {
    if (ids.size() > capacity_)
        return Error::msg("the policy has " + std::to_string(ids.size()) + " VMs but max_vms is " +
                          std::to_string(capacity_));
    std::set<std::string> wanted(ids.begin(), ids.end());
    std::map<std::string, uint32_t> kept;
    std::vector<bool> used(capacity_, false);
    for (const auto& [id, slot] : slots_)
        if (wanted.count(id)) {
            kept.emplace(id, slot);
            used[slot] = true;
        }
    uint32_t next = 0;
    for (const auto& id : ids) {
        if (kept.count(id)) continue;
        while (used[next]) ++next;
        used[next] = true;
        kept.emplace(id, next);
    }
    slots_ = std::move(kept);
    return ok_status();
}

bool SlotTable::claim(const std::string& id, uint32_t slot) {
    if (slot >= capacity_ || slots_.count(id)) return false;
    for (const auto& [other, s] : slots_)
        if (s == slot) return false;
    slots_.emplace(id, slot);
    return true;
}

uint32_t SlotTable::high_water() const {
    uint32_t hw = 0;
    for (const auto& [id, slot] : slots_) hw = std::max(hw, slot + 1);
    return hw;
}

nlohmann::json SlotTable::to_json() const { return {{"version", 1}, {"slots", slots_}}; }

Result<SlotTable> SlotTable::from_json(const nlohmann::json& j, uint32_t capacity) {
    SlotTable t(capacity);
    try {
        std::set<uint32_t> seen;
        for (const auto& [id, v] : j.at("slots").items()) {
            uint32_t slot = v.get<uint32_t>();
            if (slot >= capacity || !seen.insert(slot).second) continue;
            t.slots_.emplace(id, slot);
        }
    } catch (const nlohmann::json::exception& e) {
        return Error::msg(std::string("slots.json: ") + e.what());
    }
    return t;
}

}  // namespace smtpgov::daemon
