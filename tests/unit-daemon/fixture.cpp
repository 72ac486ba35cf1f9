#include "fixture.h"

#include <arpa/inet.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace sgt {

int FakeHost::ifindex(const std::string& name) const {
    auto it = links.find(name);
    return it == links.end() ? 0 : it->second;
}

std::string FakeHost::ifname(uint32_t ifindex) const {
    for (const auto& [name, idx] : links)
        if (static_cast<uint32_t>(idx) == ifindex) return name;
    return "";
}

std::vector<std::pair<std::string, int>> FakeHost::governed() const {
    std::vector<std::pair<std::string, int>> out;
    for (const auto& [name, idx] : links)
        if (patterns.empty() || std::find(patterns.begin(), patterns.end(), name) != patterns.end())
            out.emplace_back(name, idx);
    return out;
}

Status FakeHost::load_ports(const std::vector<uint16_t>& ports) {
    if (fail_load) return Error{fail_load, "load BPF object: injected"};
    loaded = ports;
    return ok_status();
}

Status FakeHost::swap_ports() {
    if (fail_swap) return Error{fail_swap, "link update: injected"};
    attached_ports = loaded;
    loaded.clear();
    ++swaps;
    return ok_status();
}

void FakeHost::drop_ports() {
    loaded.clear();
    ++drops;
}

void ControllerTest::SetUp() {
    char tmpl[] = "/tmp/sg-unit-daemon-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
}

void ControllerTest::TearDown() {
    ctl.reset();
    std::filesystem::remove_all(dir);
}

void ControllerTest::start(const json& p) {
    std::ofstream(dir + "/policy-file.json") << p.dump();
    restart();
}

void ControllerTest::restart() {
    ctl.reset();
    ControllerOptions o;
    o.state_dir = dir;
    o.policy_file = dir + "/policy-file.json";
    o.max_vms = maps.max_vms();
    o.gateway_interfaces = gateways;
    o.auto_hold_s = hold_s;
    o.fleet_host = fleet_host;
    o.dnsbl = dnsbl;
    auto c = Controller::load(o, clock);
    ASSERT_TRUE(c) << c.error().message;
    ctl = std::move(*c);
    ctl->subscribe([this](const TierChange& ch) { heard.push_back(ch); });
    auto s = ctl->start(maps, host);
    ASSERT_TRUE(s) << s.error().message;
    ctl->sweep();
}

json ControllerTest::call(const json& req) {
    svc::Reply r = ctl->handle(req);
    EXPECT_TRUE(r.body.value("ok", false)) << req.dump() << " -> " << r.body.dump();
    return r.body.value("result", json());
}

json ControllerTest::apply(const json& p) { return ctl->handle({{"cmd", "policy.apply"}, {"policy", p}}).body; }

uint32_t ControllerTest::slot(const std::string& id) {
    json v = call({{"cmd", "vm.show"}, {"id", id}});
    return v.at("slot").get<uint32_t>();
}

sg_vm_policy ControllerTest::vm_entry(const std::string& id) {
    return maps.get<sg_vm_policy>(MapId::VmPolicy, slot(id)).value_or(sg_vm_policy{});
}

void ControllerTest::syn(const std::string& id, int verdict, uint64_t n) {
    uint32_t s = slot(id);
    sg_vm_stats st{};
    if (auto cur = maps.vm_stats_one(s)) st = *cur;
    st.syn[verdict] += n;
    maps.set_stats(s, st);
}

sg_auto_key auto_key(uint32_t ifindex, uint8_t family, const char* addr) {
    sg_auto_key k{};
    k.ifindex = ifindex;
    k.family = family;
    if (addr) inet_pton(family == 4 ? AF_INET : AF_INET6, addr, k.addr);
    return k;
}

sg_auto_vm refused(uint64_t n) {
    sg_auto_vm v{};
    v.stats.syn[SG_VERDICT_THROTTLE] = n;
    return v;
}

std::string refusal(const svc::Reply& r) {
    return r.body.value("ok", false) ? "" : r.body.value("kind", std::string("?"));
}

json vm(const std::string& id, json extra) {
    json v = {{"id", id}};
    if (!extra.contains("interface") && !extra.contains("addresses")) v["interface"] = "tap-" + id;  // not present
    v.update(extra);
    return v;
}

json policy(std::vector<json> vms, json extra) {
    json p = {{"vms", vms}};
    p.update(extra);
    return p;
}

}  // namespace sgt
