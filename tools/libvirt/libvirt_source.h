// What libvirt says is running: the companion's only contact with libvirt's C API.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/result.h"
#include "domain_xml.h"

namespace smtpgov::hv {

class LibvirtSource {
public:
    // Registers libvirt's default event loop (once per process) and opens a read-only
    // connection to uri ("" = libvirt's default, qemu:///system for root).
    static Result<LibvirtSource> open(const std::string& uri);
    LibvirtSource(LibvirtSource&&) noexcept;
    LibvirtSource& operator=(LibvirtSource&&) = delete;
    ~LibvirtSource();

    // Every running domain with its interfaces.
    Result<std::vector<Domain>> running() const;

    // Calls on_change after each lifecycle event and every interval_ms; returns when the
    // connection closes (libvirtd restarted) or stop is set. on_change returns false to stop.
    void run(int interval_ms, const std::function<bool()>& on_change);

private:
    explicit LibvirtSource(void* conn) : conn_(conn) {}
    void* conn_;  // virConnectPtr
};

}  // namespace smtpgov::hv
