// The kernel's interface list from if_nameindex(3), freed by its owner.
#pragma once

#include <net/if.h>

#include <memory>

namespace smtpgov::kern {

struct IfNameIndexFree {
    void operator()(struct if_nameindex* names) const noexcept { ::if_freenameindex(names); }
};

// Iterate with: for (auto* n = names.get(); n->if_index; ++n). Null (errno set) on failure.
using IfNameIndex = std::unique_ptr<struct if_nameindex, IfNameIndexFree>;

inline IfNameIndex list_interfaces() { return IfNameIndex(::if_nameindex()); }

}  // namespace smtpgov::kern
