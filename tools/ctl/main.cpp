// smtpgovctl: the operator CLI of smtpgov (DESIGN.md "CLI contract").
#include <iostream>
#include <string>
#include <vector>

#include "args.h"
#include "client.h"
#include "commands.h"
#include "docs.h"

int main(int argc, char** argv) {
    using namespace smtpgov::ctl;
    std::vector<std::string> args(argv + 1, argv + argc);
    Invocation inv;
    try {
        inv = parse_args(args);
    } catch (const UsageError& e) {
        std::cerr << "smtpgovctl: " << e.what() << "\n";
        return kExitUsage;
    }
    if (inv.help) {
        std::cout << (inv.command ? command_help(*inv.command) : general_help(inv.words));
        return kExitOk;
    }
    try {
        SocketTransport daemon(inv.socket);
        return run(inv, daemon, std::cout, std::cerr);
    } catch (const UsageError& e) {
        std::cerr << "smtpgovctl: " << e.what() << "\n";
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "smtpgovctl: " << e.what() << "\n";
        return kExitRuntime;
    }
}
