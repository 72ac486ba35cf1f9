#include "libvirt_source.h"

#include <atomic>
#include <mutex>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

namespace smtpgov::hv {
namespace {

virConnectPtr C(void* p) { return static_cast<virConnectPtr>(p); }

std::string last_error() {
    const virError* e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

// libvirt's own diagnostics go through our error messages, not straight to stderr
void quiet(void*, virErrorPtr) {}

struct LoopState {
    std::atomic<bool> changed{false};
    std::atomic<bool> closed{false};
};

void on_lifecycle(virConnectPtr, virDomainPtr, int, int, void* opaque) {
    static_cast<LoopState*>(opaque)->changed = true;
}

void on_close(virConnectPtr, int, void* opaque) { static_cast<LoopState*>(opaque)->closed = true; }

void on_tick(int, void* opaque) { static_cast<LoopState*>(opaque)->changed = true; }

}  // namespace

Result<LibvirtSource> LibvirtSource::open(const std::string& uri) {
    static std::once_flag once;
    std::call_once(once, [] {
        virSetErrorFunc(nullptr, quiet);
        virEventRegisterDefaultImpl();
    });
    virConnectPtr c = virConnectOpenReadOnly(uri.empty() ? nullptr : uri.c_str());
    if (!c) return Error::msg("libvirt: cannot connect to " + (uri.empty() ? "the default URI" : uri) + ": " + last_error());
    return LibvirtSource(c);
}

LibvirtSource::LibvirtSource(LibvirtSource&& o) noexcept : conn_(o.conn_) { o.conn_ = nullptr; }

LibvirtSource::~LibvirtSource() {
    if (conn_) virConnectClose(C(conn_));
}

Result<std::vector<Domain>> LibvirtSource::running() const {
    virDomainPtr* doms = nullptr;
    int n = virConnectListAllDomains(C(conn_), &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) return Error::msg("libvirt: listing domains: " + last_error());
    std::vector<Domain> out;
    std::string err;
    for (int i = 0; i < n; ++i) {
        char* xml = virDomainGetXMLDesc(doms[i], 0);
        if (xml) {
            auto d = parse_domain_xml(xml);
            if (d) out.push_back(std::move(*d));
            else err = d.error().message;
            free(xml);
        }
        // a domain that stopped between the listing and here simply has no XML
        virDomainFree(doms[i]);
    }
    free(doms);
    if (!err.empty() && out.empty() && n > 0) return Error::msg(err);
    return out;
}

void LibvirtSource::run(int interval_ms, const std::function<bool()>& on_change) {
    LoopState st;
    int cb = virConnectDomainEventRegisterAny(C(conn_), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                              VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &st, nullptr);
    virConnectRegisterCloseCallback(C(conn_), on_close, &st, nullptr);
    int timer = virEventAddTimeout(interval_ms, on_tick, &st, nullptr);
    st.changed = true;
    while (!st.closed) {
        if (st.changed.exchange(false) && !on_change()) break;
        if (virEventRunDefaultImpl() < 0) break;
    }
    if (timer >= 0) virEventRemoveTimeout(timer);
    virConnectUnregisterCloseCallback(C(conn_), on_close);
    if (cb >= 0) virConnectDomainEventDeregisterAny(C(conn_), cb);
}

}  // namespace smtpgov::hv
