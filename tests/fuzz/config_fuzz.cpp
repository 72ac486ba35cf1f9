// Fuzz target: the daemon config parser, as smtpgovd runs it: the input is the file
// given to --config, then check_config and to_json (what --check-config prints).
// Property: a config that parsed survives its own round trip (to_json written back as
// the file parses to the same Config).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "check.h"
#include "daemon/config.h"

using namespace smtpgov::daemon;

namespace {

// One scratch file per fuzzing process, removed at exit.
std::string g_scratch;

void remove_scratch() { ::unlink(g_scratch.c_str()); }

const std::string& scratch() {
    if (g_scratch.empty()) {
        const char* dir = std::getenv("TMPDIR");
        std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/smtpgov-fuzz-config-XXXXXX";
        int fd = ::mkstemp(tmpl.data());
        FUZZ_CHECK(fd >= 0, "mkstemp for the config file");
        ::close(fd);
        g_scratch = tmpl;
        std::atexit(remove_scratch);
    }
    return g_scratch;
}

smtpgov::Result<Invocation> parse_file(const void* data, size_t size) {
    std::ofstream(scratch(), std::ios::binary | std::ios::trunc).write(static_cast<const char*>(data),
                                                                         static_cast<std::streamsize>(size));
    std::string argv0 = "smtpgovd", flag = "--config", file = scratch();
    char* argv[] = {argv0.data(), flag.data(), file.data(), nullptr};
    return parse_invocation(3, argv);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto inv = parse_file(data, size);
    if (!inv) return 0;
    (void)check_config(inv->config);
    std::string rendered = to_json(inv->config).dump();
    auto again = parse_file(rendered.data(), rendered.size());
    FUZZ_CHECK(again && again->config == inv->config, "to_json(config) parses back to the same config");
    return 0;
}
