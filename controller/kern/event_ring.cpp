#include "kern/event_ring.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace smtpgov::kern {
namespace {

int on_record(void* ctx, void* data, size_t size) {
    sg_event ev{};
    std::memcpy(&ev, data, std::min(size, sizeof(ev)));
    (*static_cast<EventRing::Handler*>(ctx))(ev);
    return 0;
}

}  // namespace

Result<EventRing> EventRing::open(const Datapath& dp, Handler handler) {
    EventRing r;
    r.handler_ = std::make_unique<Handler>(std::move(handler));
    r.map_fd_.reset(::fcntl(dp.map_fd(MapId::Events), F_DUPFD_CLOEXEC, 3));
    if (!r.map_fd_) return Error::from_errno("dup sg_events fd");
    r.rb_.reset(ring_buffer__new(r.map_fd_.get(), on_record, r.handler_.get(), nullptr));
    if (!r.rb_) return Error::from_errno("open ring buffer sg_events", errno);
    return r;
}

int EventRing::fd() const { return ring_buffer__epoll_fd(rb_.get()); }

Result<int> EventRing::consume() {
    int n = ring_buffer__consume(rb_.get());
    if (n < 0) return Error::from_errno("read ring buffer sg_events", -n);
    return n;
}

}  // namespace smtpgov::kern
