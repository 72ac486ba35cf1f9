#include "netns.h"

#include <net/if.h>
#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace sgt {
namespace {

void run(const std::string& cmd)
{
    if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error(cmd + ": failed");
}

}  // namespace

int test_iface(const std::string& name, unsigned index)
{
    static std::once_flag once;
    std::call_once(once, [] {
        if (unshare(CLONE_NEWNET) != 0)
            throw std::runtime_error(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno));
        run("ip link set lo up");
    });
    if (unsigned idx = if_nametoindex(name.c_str()))
        return int(idx);
    // veth, not dummy: the test kernel has no dummy driver; the peer stays unused
    std::string at = index ? " index " + std::to_string(index) : "";
    run("ip link add " + name + at + " type veth peer name " + name + "p && ip link set " + name +
        " up && ip link set " + name + "p up");
    return int(if_nametoindex(name.c_str()));
}

}  // namespace sgt
