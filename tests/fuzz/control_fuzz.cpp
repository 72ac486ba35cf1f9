// Fuzz target: control requests, along the control server's path into the daemon's
// handler. The input is what clients send: each line is read with svc::read_line off a
// socket (the server's reader and its size limit), parsed and screened as
// ControlServer::answer does, then handled by a real Controller on in-memory maps (the
// unit-daemon MemoryMaps) with a sweep between requests; every reply is rendered as the
// server sends it. Properties: the handler never throws (the server would answer
// "internal error"), and a controller restarted on the state dir the requests left
// behind loads and starts.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "check.h"
#include "core/clock.h"
#include "daemon/controller.h"
#include "daemon/log.h"
#include "memory_maps.h"
#include "svc/control_server.h"
#include "svc/fd_io.h"

using namespace smtpgov;
using namespace smtpgov::daemon;
using nlohmann::json;

namespace {

constexpr size_t kMaxInput = 64 * 1024;  // fits a socket buffer: written before it is read
constexpr int kMaxRequests = 16;

// tap-a and tap-b exist; web-1 is on tap-a, mx-2 by address only, pinned on tap-b.
constexpr const char* kPolicy = R"({"vms": [
  {"id": "web-1", "tenant": "acme", "interface": "tap-a", "addresses": ["203.0.113.7"]},
  {"id": "mx-2", "tenant": "globex", "addresses": ["198.51.100.25", "2001:db8::/64"], "rate": 100, "burst": 200},
  {"id": "pinned", "interface": "tap-b", "tier": "throttled"}]})";

class FuzzHost final : public Host {
public:
    int ifindex(const std::string& name) const override { return name == "tap-a" ? 3 : name == "tap-b" ? 4 : 0; }
    std::string ifname(uint32_t i) const override { return i == 3 ? "tap-a" : i == 4 ? "tap-b" : ""; }
    std::vector<std::pair<std::string, int>> governed() const override { return {{"tap-a", 3}, {"tap-b", 4}}; }
    Status load_ports(const std::vector<uint16_t>&) override { return ok_status(); }
    Status swap_ports() override { return ok_status(); }
    void drop_ports() override {}
    json status() const override { return {{"interfaces", json::array()}}; }
};

// A state dir per fuzzing process, emptied before each input and removed at exit: in
// TMPDIR (run-fuzz.sh's scratch dir), else on tmpfs when there is one (the controller
// fsyncs).
std::string g_dir;

void remove_dir() { std::filesystem::remove_all(g_dir); }

const std::string& state_dir() {
    if (g_dir.empty()) {
        const char* tmp = std::getenv("TMPDIR");
        std::string base = tmp && *tmp ? tmp : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        std::string tmpl = base + "/smtpgov-fuzz-control-XXXXXX";
        FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp for the state dir");
        g_dir = tmpl;
        std::atexit(remove_dir);
        log::set_level(log::Level::Error);
    }
    return g_dir;
}

std::unique_ptr<Controller> start(const Clock& clock, Maps& maps, Host& host) {
    ControllerOptions o;
    o.state_dir = state_dir();
    o.policy_file = state_dir() + "/policy-file.json";
    o.max_vms = maps.max_vms();
    auto c = Controller::load(o, clock);
    if (!c) std::fprintf(stderr, "load: %s\n", c.error().message.c_str());
    FUZZ_CHECK(c, "the controller loads from its state dir");
    auto s = (*c)->start(maps, host);
    if (!s) std::fprintf(stderr, "start: %s\n", s.error().message.c_str());
    FUZZ_CHECK(s, "the controller starts on its state dir");
    return std::move(*c);
}

// ControlServer::answer after read_line: the server's own screening, then the handler.
void serve(Controller& ctl, const std::string& line) {
    auto parsed = svc::parse_request(line);
    if (std::holds_alternative<svc::Reply>(parsed)) return;
    svc::Reply r = ctl.handle(std::get<json>(parsed));
    (void)r.body.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > kMaxInput) return 0;
    std::filesystem::remove_all(state_dir());
    std::filesystem::create_directories(state_dir());
    std::ofstream(state_dir() + "/policy-file.json") << kPolicy;

    int fds[2];
    FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0, "socketpair");
    UniqueFd client(fds[0]), server(fds[1]);
    std::string_view input(reinterpret_cast<const char*>(data), size);
    FUZZ_CHECK(svc::send_all(client.get(), input, svc::mono_ms() + 1000) == svc::IoStatus::Ok, "write the input");
    ::shutdown(client.get(), SHUT_WR);

    ManualClock clock;
    sgt::MemoryMaps maps;
    FuzzHost host;
    auto ctl = start(clock, maps, host);
    const size_t max = svc::ControlServerOptions{}.max_request_bytes;
    std::string buf, line;
    for (int i = 0; i < kMaxRequests; ++i) {
        // One request per connection on the real socket; here each line is the next one.
        if (svc::read_line(server.get(), buf, line, max, svc::mono_ms() + 1000) != svc::IoStatus::Ok) break;
        serve(*ctl, line);
        clock.advance_s(1);
        ctl->sweep();
    }
    ctl.reset();
    start(clock, maps, host);  // a restart: the daemon must come back on what it wrote
    return 0;
}
