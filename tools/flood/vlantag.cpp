// vlan-tag: attach the tc 802.1Q push/pop programs (vlantag.bpf.c) to a device.
// tc filters keep their programs after this process exits; deleting the device
// or its namespace removes them.
#include <cerrno>

#include <bpf/libbpf.h>
#include <net/if.h>

#include "flood.h"
#include "vlantag.skel.h"

namespace flood {

nlohmann::json run_vlantag(const VlanTagOptions& o)
{
    if (o.iface.empty())
        throw std::invalid_argument("vlan-tag: --iface is required");
    if (o.vlan < 1 || o.vlan > 4094)
        throw std::invalid_argument("vlan-tag: --vlan must be 1..4094");
    int ifindex = ifindex_of(o.iface);
    vlantag_bpf* skel = vlantag_bpf__open();
    if (!skel)
        fail_errno("open vlantag BPF object", errno);
    std::unique_ptr<vlantag_bpf, void (*)(vlantag_bpf*)> owner(skel, vlantag_bpf__destroy);
    skel->rodata->vlan_id = o.vlan;
    if (int err = vlantag_bpf__load(skel))
        fail_errno("load vlantag BPF programs", -err);

    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = (bpf_tc_attach_point)(BPF_TC_INGRESS | BPF_TC_EGRESS));
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        fail_errno("create clsact on " + o.iface, -err);
    struct {
        bpf_tc_attach_point point;
        bpf_program* prog;
    } att[] = {{BPF_TC_INGRESS, skel->progs.vlan_pop}, {BPF_TC_EGRESS, skel->progs.vlan_push}};
    for (auto& a : att) {
        LIBBPF_OPTS(bpf_tc_hook, h, .ifindex = ifindex, .attach_point = a.point);
        LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(a.prog), .flags = BPF_TC_F_REPLACE,
                    .handle = 1, .priority = 1);
        if ((err = bpf_tc_attach(&h, &opts)))
            fail_errno("attach tc program to " + o.iface, -err);
    }
    return {{"mode", "vlan-tag"}, {"iface", o.iface}, {"vlan", o.vlan}};
}

} // namespace flood
