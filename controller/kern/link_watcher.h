// rtnetlink link notifications (RTMGRP_LINK): VM interfaces that appear after start
// are attached within the loop's next turn, vanished ones are forgotten.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "core/unique_fd.h"

namespace smtpgov::kern {

struct LinkEvent {
    enum class Kind { Added, Removed } kind = Kind::Added;
    int ifindex = 0;
    std::string name;
};

struct LinkBatch {
    std::vector<LinkEvent> events;
    bool resync = false;  // the socket overran (ENOBUFS): re-list every interface
};

class LinkWatcher {
public:
    static Result<LinkWatcher> open();
    int fd() const { return fd_.get(); }
    // Drains the socket (non-blocking).
    Result<LinkBatch> read();
    // Every interface of this network namespace, {name, ifindex}.
    static std::vector<LinkEvent> list();

private:
    UniqueFd fd_;
};

// Shell-style match of an interface name against configured names/globs.
bool iface_matches(const std::vector<std::string>& patterns, const std::string& name);

}  // namespace smtpgov::kern
