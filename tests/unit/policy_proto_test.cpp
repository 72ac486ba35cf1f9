// The policy service's protocol (svc/policy_proto.h): Postfix's policy delegation
// requests split out of a byte stream, with its limits, and what each request asks.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "svc/policy_proto.h"

using namespace smtpgov;
using namespace smtpgov::svc::policy;

namespace {

// A request as Postfix writes it (SMTPD_POLICY_README), abridged.
const char* kPostfix =
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "protocol_name=ESMTP\n"
    "client_address=198.18.1.2\n"
    "client_name=unknown\n"
    "client_port=39485\n"
    "helo_name=vm1.customer.example\n"
    "sender=vm@customer.example\n"
    "recipient=someone@example.net\n"
    "queue_id=\n"
    "size=0\n"
    "\n";

Request one(const std::string& text) {
    Reader r;
    r.feed(text);
    auto got = r.next();
    EXPECT_TRUE(got && *got) << text;
    return got && *got ? std::move(**got) : Request{};
}

std::string error_of(const std::string& text) {
    Reader r;
    r.feed(text);
    auto got = r.next();
    if (!got) return "(incomplete)";
    return *got ? "(ok)" : got->error().message;
}

}  // namespace

TEST(PolicyProto, ReadsPostfixRequests) {
    Request q = one(kPostfix);
    EXPECT_EQ(q.attrs.size(), 11u);
    ASSERT_TRUE(q.get("client_port"));
    EXPECT_EQ(*q.get("client_port"), "39485");
    EXPECT_EQ(*q.get("queue_id"), "");
    EXPECT_EQ(q.get("nope"), nullptr);
    Query x = interpret(q);
    EXPECT_EQ(x.kind, Query::Kind::Access);
    EXPECT_EQ(x.client.to_string(), "198.18.1.2:39485");
    EXPECT_EQ(x.problem, "");
}

TEST(PolicyProto, SeveralRequestsOneByOneAndInPieces) {
    Reader r;
    const std::string two = std::string(kPostfix) + "request=smtpgov_report\r\nclient_address=2001:db8::7\r\n"
                                                    "client_port=25000\r\nverdict=spam\r\n\r\n";
    for (char c : two.substr(0, 20)) r.feed(std::string(1, c));
    EXPECT_FALSE(r.next());
    r.feed(two.substr(20));
    auto a = r.next();
    ASSERT_TRUE(a && *a);
    EXPECT_EQ(interpret(**a).kind, Query::Kind::Access);
    auto b = r.next();
    ASSERT_TRUE(b && *b);
    Query q = interpret(**b);
    EXPECT_EQ(q.kind, Query::Kind::Report);
    EXPECT_TRUE(q.spam);
    EXPECT_EQ(q.client.to_string(), "[2001:db8::7]:25000");
    EXPECT_FALSE(r.next());
    EXPECT_EQ(r.buffered(), 0u);
}

TEST(PolicyProto, RefusesWhatIsNotTheProtocol) {
    EXPECT_NE(error_of("request=x\nno equals sign\n\n").find("line 2: not name=value"), std::string::npos);
    EXPECT_NE(error_of("Request=x\n\n").find("bad attribute name"), std::string::npos);
    EXPECT_NE(error_of("=x\n\n").find("bad attribute name"), std::string::npos);
    EXPECT_NE(error_of("a=1\na=2\n\n").find("given twice"), std::string::npos);
    EXPECT_NE(error_of(std::string("a=1\0b\n\n", 8)).find("NUL"), std::string::npos);
    EXPECT_NE(error_of("\n").find("empty request"), std::string::npos);
    std::string many;
    for (int i = 0; i < 200; ++i) many += "a" + std::to_string(i) + "=1\n";
    EXPECT_NE(error_of(many + "\n").find("more than 128 attributes"), std::string::npos);
    // bounded however it arrives: a request that never ends, or ends too late
    EXPECT_NE(error_of("a=" + std::string(20000, 'x')).find("larger than 16384"), std::string::npos);
    EXPECT_NE(error_of("a=" + std::string(20000, 'x') + "\n\n").find("larger than 16384"), std::string::npos);
    EXPECT_EQ(error_of("a=" + std::string(1000, 'x')), "(incomplete)");
}

TEST(PolicyProto, Interprets) {
    auto q = [](std::string text) { return interpret(one(text + "\n")); };
    EXPECT_EQ(q("request=smtpd_access_policy\nclient_address=198.18.1.2\n").problem, "client_port missing");
    EXPECT_NE(q("request=smtpd_access_policy\nclient_address=198.18.1.2\nclient_port=0\n").problem.find("not a port"),
              std::string::npos);
    EXPECT_NE(q("request=smtpd_access_policy\nclient_address=198.18.1.2\nclient_port=65536\n").problem.find("not a port"),
              std::string::npos);
    EXPECT_NE(q("request=smtpd_access_policy\nclient_address=unknown\nclient_port=1\n").problem.find("not an IP"),
              std::string::npos);
    EXPECT_NE(q("request=smtpd_access_policy\nclient_address=10.0.0.0/8\nclient_port=1\n").problem.find("not an IP"),
              std::string::npos);
    EXPECT_EQ(q("request=smtpgov_report\nclient_address=198.18.1.2\nclient_port=1\n").problem,
              "verdict missing (spam or ham)");
    Query ham = q("request=smtpgov_verdict\nclient_address=198.18.1.2\nclient_port=1\nverdict=ham\naction=no action\n");
    EXPECT_EQ(ham.kind, Query::Kind::Report);
    EXPECT_FALSE(ham.spam);
    EXPECT_EQ(ham.problem, "");
    EXPECT_EQ(q("request=something_else\n").kind, Query::Kind::Other);
    EXPECT_EQ(q("client_address=198.18.1.2\n").kind, Query::Kind::Other);
}

TEST(PolicyProto, Answers) {
    EXPECT_EQ(answer("DUNNO"), "action=DUNNO\n\n");
    EXPECT_EQ(answer("REJECT a\nb"), "action=REJECT a b\n\n");
    EXPECT_EQ(filter_action(Endpoint::parse("203.0.113.25:25").value()), "FILTER smtp:[203.0.113.25]:25");
    EXPECT_EQ(filter_action(Endpoint::parse("[2001:db8::25]:2525").value()), "FILTER smtp:[2001:db8::25]:2525");
}

// ---- the token that reports must carry (policy_service_token_file) ----

TEST(PolicyToken, OnlyReportsNeedIt) {
    const std::string token = "0123456789abcdef0123456789abcdef";
    const std::string report = "request=smtpgov_report\nclient_address=198.18.1.2\nclient_port=1\nverdict=spam\n";
    EXPECT_TRUE(authorised(one(report + "\n"), "")) << "no token set: anyone may report";
    EXPECT_FALSE(authorised(one(report + "\n"), token)) << "no token given";
    EXPECT_TRUE(authorised(one(report + "token=" + token + "\n\n"), token));
    EXPECT_FALSE(authorised(one(report + "token=" + token.substr(0, 31) + "\n\n"), token)) << "a prefix";
    EXPECT_FALSE(authorised(one(report + "token=" + token + "0\n\n"), token)) << "longer";
    EXPECT_FALSE(authorised(one(report + "token=" + token.substr(0, 31) + "E\n\n"), token)) << "last byte differs";
    EXPECT_FALSE(authorised(one(report + "token=\n\n"), token)) << "empty";
    std::string verdict = report;
    verdict.replace(0, 22, "request=smtpgov_verdict");
    EXPECT_FALSE(authorised(one(verdict + "\n"), token)) << "the alias too";
    EXPECT_TRUE(authorised(one(kPostfix), token)) << "Postfix's own request carries no token";
    EXPECT_TRUE(authorised(one("request=other\n\n"), token));
}

class PolicyTokenFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/sgtokenXXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::string write(const std::string& text, mode_t mode) {
        const std::string p = dir + "/token";
        std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
        EXPECT_EQ(::chmod(p.c_str(), mode), 0);
        return p;
    }
    std::string dir;
};

TEST_F(PolicyTokenFile, ReadsOneLine) {
    auto t = read_token_file(write("0123456789abcdef0123456789abcdef\n", 0640));
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(*t, "0123456789abcdef0123456789abcdef");
    t = read_token_file(write("AZaz09-._~+/AZaz09-._~+/\r\n", 0600));
    ASSERT_TRUE(t.ok()) << t.error().message;
    EXPECT_EQ(*t, "AZaz09-._~+/AZaz09-._~+/");
}

TEST_F(PolicyTokenFile, RefusesWhatIsNoSecretOrNoToken) {
    auto err = [&](const std::string& text, mode_t mode) {
        auto t = read_token_file(write(text, mode));
        return t.ok() ? std::string("(read)") : t.error().message;
    };
    EXPECT_NE(err("0123456789abcdef0123456789abcdef\n", 0644).find("readable by every user"), std::string::npos);
    EXPECT_NE(err("0123456789abcde\n", 0600).find("16 to 256 characters, this is 15"), std::string::npos);
    EXPECT_NE(err("", 0600).find("this is 0"), std::string::npos);
    EXPECT_NE(err(std::string(257, 'a'), 0600).find("this is 257"), std::string::npos);
    EXPECT_NE(err("0123456789abcdef 0123456789abcdef\n", 0600).find("A-Z a-z 0-9"), std::string::npos);
    EXPECT_NE(err("0123456789abcdef\n0123456789abcdef\n", 0600).find("A-Z a-z 0-9"), std::string::npos)
        << "two lines";
    EXPECT_NE(err("0123456789abcdef=1\n", 0600).find("A-Z a-z 0-9"), std::string::npos);
    auto missing = read_token_file(dir + "/none");
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message.find(dir + "/none"), std::string::npos);
    auto directory = read_token_file(dir);
    ASSERT_FALSE(directory.ok());
    EXPECT_NE(directory.error().message.find("not a regular file"), std::string::npos);
}
