// Consumer of the sg_events ring buffer; its epoll fd joins the daemon's loop.
#pragma once

#include <bpf/libbpf.h>

#include <functional>
#include <memory>

#include "core/result.h"
#include "kern/datapath.h"
#include "core/unique_fd.h"
#include "smtpgov/abi.h"

namespace smtpgov::kern {

class EventRing {
public:
    using Handler = std::function<void(const sg_event&)>;

    // Keeps its own fd of the map, so it outlives a program reload.
    static Result<EventRing> open(const Datapath& dp, Handler handler);

    EventRing(EventRing&&) noexcept = default;
    EventRing& operator=(EventRing&&) noexcept = default;

    int fd() const;             // readable when records are waiting
    Result<int> consume();      // hands every waiting record to the handler

private:
    struct RingCloser {
        void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
    };
    EventRing() = default;
    std::unique_ptr<Handler> handler_;  // stable address: the libbpf callback context
    UniqueFd map_fd_;
    std::unique_ptr<ring_buffer, RingCloser> rb_;
};

}  // namespace smtpgov::kern
