// A libvirt domain (core/hypervisor.h) read from the domain XML that libvirt's API
// returns and that its qemu hook passes on stdin. Pure: no libvirt, testable without root.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/hypervisor.h"
#include "core/result.h"

namespace smtpgov::hv {

// Parses <domain>...</domain>. Errors name what is missing (no <name>, no <uuid>, not XML).
// Interfaces without a target dev are skipped: they have no host device to govern yet.
Result<Domain> parse_domain_xml(std::string_view xml);


}  // namespace smtpgov::hv
