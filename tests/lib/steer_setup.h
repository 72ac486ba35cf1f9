// The steering set-up shared by the steering tests and the benchmark: a proxy per
// family in sg_runtime (IPv4 192.0.2.10:2525, IPv6 [2001:db8:aaaa::10]:2525; port 2525
// so that the port rewrite shows), steered port 25.
#pragma once

#include <smtpgov/abi.h>

#include <endian.h>

#include <cstring>
#include <string>

#include "packet.h"

namespace sgt {

inline const std::string kProxy4 = "192.0.2.10", kProxy6 = "2001:db8:aaaa::10";
inline constexpr uint16_t kProxyPort = 2525;

// sg_runtime with the proxies of `families` (4, 6 or both: 46) and the fail mode.
inline sg_runtime proxy_runtime(int families = 46, uint8_t nofamily_tier = SG_TIER_THROTTLED,
                                uint32_t conn_per_vm = 0)
{
    sg_runtime rt{};
    rt.conn_per_vm = conn_per_vm;
    if (families == 4 || families == 46) {
        rt.flags |= SG_RT_PROXY_V4;
        std::memcpy(rt.proxy_v4, addr(kProxy4).data(), 4);
        rt.proxy_v4_port = htobe16(kProxyPort);
    }
    if (families == 6 || families == 46) {
        rt.flags |= SG_RT_PROXY_V6;
        std::memcpy(rt.proxy_v6, addr(kProxy6).data(), 16);
        rt.proxy_v6_port = htobe16(kProxyPort);
    }
    rt.proxy_ports[0] = 25;
    rt.n_proxy_ports = 1;
    rt.nofamily_tier = nofamily_tier;
    return rt;
}

}  // namespace sgt
