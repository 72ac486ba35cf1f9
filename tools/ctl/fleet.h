// smtpgovctl fleet ...: the commands that talk to the fleet's etcd directly (not to a
// daemon). The protocol of `fleet policy apply` is in README "Running a fleet".
#pragma once

#include <iosfwd>

#include "args.h"
#include "client.h"

namespace smtpgov::ctl {

int cmd_fleet_policy_apply(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err);
int cmd_fleet_policy_get(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err);
int cmd_fleet_status(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err);
int cmd_fleet_vm_list(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err);
int cmd_fleet_vm_set_tier(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err);
int cmd_fleet_vm_clear(const Invocation& inv, Transport&, std::ostream& out, std::ostream& err);

}  // namespace smtpgov::ctl
