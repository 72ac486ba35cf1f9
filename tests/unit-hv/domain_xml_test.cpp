#include <gtest/gtest.h>

#include "domain_xml.h"
#include "options.h"

using namespace smtpgov::hv;

namespace {

// the shape libvirt's qemu hook passes on stdin (trimmed): interfaces of several types,
// one not started yet (no target), MACs in upper case
constexpr const char* kDomain = R"(<domain type='kvm' id='7'>
  <name>web-01</name>
  <uuid>6695EB01-F6A4-8304-79AA-97F2502E193F</uuid>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='bridge'>
      <mac address='52:54:00:AA:00:01'/>
      <source bridge='br0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:aa:00:02'/>
      <source network='default'/>
    </interface>
    <interface type='ethernet'>
      <mac address='52:54:00:aa:00:03'/>
      <target dev='tap101i1' managed='no'/>
    </interface>
  </devices>
</domain>)";

}  // namespace

TEST(DomainXml, ReadsNameUuidAndTargetDevices) {
    auto d = parse_domain_xml(kDomain);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->name, "web-01");
    EXPECT_EQ(d->uuid, "6695eb01-f6a4-8304-79aa-97f2502e193f");
    ASSERT_EQ(d->nics.size(), 2u);  // the interface without <target> has no host device yet
    EXPECT_EQ(d->nics[0], (Nic{"vnet3", "52:54:00:aa:00:01"}));
    EXPECT_EQ(d->nics[1], (Nic{"tap101i1", "52:54:00:aa:00:03"}));
}

TEST(DomainXml, RefusesWhatIsNotADomain) {
    struct Row { const char* xml; const char* error; };
    const Row rows[] = {
        {"", "not well-formed"},
        {"<domain><name>x</name>", "not well-formed"},
        {"<network><name>x</name></network>", "not <domain>"},
        {"<domain><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid></domain>", "no <name>"},
        {"<domain><name>x</name><uuid>42</uuid></domain>", "no <uuid>"},
        // an external entity is neither fetched nor expanded
        {"<!DOCTYPE d [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><domain><name>&e;</name>"
         "<uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid></domain>", "no <name>"},
    };
    for (const Row& r : rows) {
        auto d = parse_domain_xml(r.xml);
        ASSERT_FALSE(d) << r.xml;
        EXPECT_NE(d.error().message.find(r.error), std::string::npos) << r.xml << ": " << d.error().message;
    }
}

TEST(DomainXml, UpdateRequestNamesEveryDomainAndTheGoneOnes) {
    auto d = parse_domain_xml(kDomain);
    ASSERT_TRUE(d);
    auto full = update_request({*d}, {}, true);
    EXPECT_EQ(full["cmd"], "hypervisor.update");
    EXPECT_EQ(full["source"], "libvirt");
    EXPECT_EQ(full["full"], true);
    EXPECT_EQ(full["domains"][0]["interfaces"][1]["dev"], "tap101i1");
    auto gone = update_request({}, {d->uuid}, false);
    EXPECT_EQ(gone["gone"][0], d->uuid);
    EXPECT_TRUE(gone["domains"].empty());
}

TEST(Options, ParsesTheTableAndRefusesTheRest) {
    auto o = parse_options({"--connect", "test:///x.xml", "--socket", "/tmp/s", "--interval", "5", "--once"});
    ASSERT_TRUE(o);
    EXPECT_EQ(o->uri, "test:///x.xml");
    EXPECT_EQ(o->socket, "/tmp/s");
    EXPECT_EQ(o->interval_s, 5);
    EXPECT_TRUE(o->once);
    // libvirt's hook arguments: domain, op, sub-op, extra
    auto h = parse_options({"--hook", "web-01", "started", "begin", "-"});
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->hook);
    EXPECT_EQ(h->hook_op, "started");
    for (auto bad : std::vector<std::vector<std::string>>{
             {"--interval", "0"}, {"--interval", "5s"}, {"--socket"}, {"--bogus"}, {"--hook", "web-01"}})
        EXPECT_FALSE(parse_options(bad)) << bad[0];
}

TEST(Options, ManPageAndUsageComeFromOneTable) {
    for (const char* flag : {"--connect", "--socket", "--interval", "--once", "--print", "--hook"}) {
        EXPECT_NE(usage().find(flag), std::string::npos) << flag;
        EXPECT_NE(man_page().find(std::string(".B ") + flag), std::string::npos) << flag;
    }
}
