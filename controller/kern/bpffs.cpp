#include "kern/bpffs.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <filesystem>
#include <memory>

namespace smtpgov::kern {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

bool is_bpffs(const std::string& dir) {
    struct statfs st {};
    return ::statfs(dir.c_str(), &st) == 0 && static_cast<long>(st.f_type) == kBpfFsMagic;
}

Status mkdir_one(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return ok_status();
    return Error::from_errno("create " + dir);
}

}  // namespace

Status prepare_bpffs(const PinLayout& layout) {
    namespace fs = std::filesystem;
    // Walk up to the deepest existing ancestor: that is where bpffs must be (or be mounted).
    fs::path probe = fs::path(layout.root());
    while (!probe.empty() && probe != probe.root_path() && !fs::exists(probe)) probe = probe.parent_path();
    if (!is_bpffs(probe.string())) {
        // Only the canonical mount point is mounted by us; anything else is the operator's.
        if (probe != fs::path("/sys/fs/bpf"))
            return Error::msg("bpffs: " + probe.string() + " (holding " + layout.root() +
                              ") is not a bpf filesystem");
        if (::mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0)
            return Error::from_errno("mount bpffs on /sys/fs/bpf");
    }
    std::error_code ec;
    fs::create_directories(layout.root(), ec);
    if (ec) return Error{ec.value(), "create " + layout.root() + ": " + ec.message()};
    if (auto s = mkdir_one(layout.maps_dir()); !s) return s;
    return mkdir_one(layout.links_dir());
}

Result<UniqueFd> open_pin(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return Error::from_errno("open pin " + path, errno);
    return UniqueFd(fd);
}

Status pin_fd(int fd, const std::string& path) {
    if (bpf_obj_pin(fd, path.c_str()) != 0) return Error::from_errno("pin " + path, errno);
    return ok_status();
}

Status unpin(const std::string& path) {
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) return ok_status();
    return Error::from_errno("unpin " + path);
}

std::vector<std::string> list_pins(const std::string& dir) {
    std::vector<std::string> out;
    struct Closedir {
        void operator()(DIR* d) const noexcept { ::closedir(d); }
    };
    std::unique_ptr<DIR, Closedir> d(::opendir(dir.c_str()));
    if (!d) return out;
    while (dirent* e = ::readdir(d.get())) {
        std::string name = e->d_name;
        if (name != "." && name != "..") out.push_back(std::move(name));
    }
    return out;
}

}  // namespace smtpgov::kern
