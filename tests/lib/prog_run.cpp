#include "prog_run.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sgt {
namespace {

void check(int rc, const char* what)
{
    if (rc != 0)
        throw std::runtime_error(std::string(what) + ": " + std::strerror(rc == -1 ? errno : -rc));
}

}  // namespace

XdpRun run_xdp(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat)
{
    XdpRun r;
    r.out.resize(frame.size() + 256);
    xdp_md ctx{};
    ctx.data_end = uint32_t(frame.size());
    ctx.ingress_ifindex = uint32_t(ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
                .data_size_in = uint32_t(frame.size()), .data_size_out = uint32_t(r.out.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = int(repeat));
    check(bpf_prog_test_run_opts(prog_fd, &opts), "BPF_PROG_TEST_RUN xdp");
    r.action = opts.retval;
    r.duration_ns = opts.duration;
    r.out.resize(opts.data_size_out);
    return r;
}

TcRun run_tc_frame(int prog_fd, const Bytes& frame, int ifindex, uint32_t repeat)
{
    TcRun r;
    r.out.resize(frame.size() + 256);
    __sk_buff ctx{};
    ctx.ifindex = uint32_t(ifindex);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
                .data_size_in = uint32_t(frame.size()), .data_size_out = uint32_t(r.out.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = int(repeat));
    check(bpf_prog_test_run_opts(prog_fd, &opts), "BPF_PROG_TEST_RUN tc");
    r.action = int(opts.retval);
    r.duration_ns = opts.duration;
    r.out.resize(opts.data_size_out);
    return r;
}

int run_tc(int prog_fd, const Bytes& frame, int ifindex) { return run_tc_frame(prog_fd, frame, ifindex).action; }

}  // namespace sgt
