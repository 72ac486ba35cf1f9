// Authentication-Results fields (core/auth_results.h) and arf::parse with Reporters: a
// report is trusted only on the word of the topmost field naming our own MTA.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/arf.h"
#include "core/auth_results.h"

using namespace smtpgov;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// RFC 5965's example report with `headers` put on top, as an MTA prepends its own.
std::string report_with(const std::string& headers) {
    return headers + slurp(std::string(SG_ARF_DIR) + "/rfc5965_example.eml");
}

const arf::Reporters kTrust{"mx.hoster.example", {"example.com", "yahoo.com"}};

}  // namespace

TEST(AuthResults, ParsesResultsPropertiesCommentsAndQuotes) {
    auto ar = arf::parse_auth_results(
        "MX.hoster.example 1; dkim=pass (2048-bit key; unprotected) header.d=Yahoo.com header.i=@yahoo.com\n"
        "  header.s=\"s2048\"; spf = pass smtp.mailfrom=yahoo.com (sender (nested) ok)");
    ASSERT_TRUE(ar);
    EXPECT_EQ(ar->authserv_id, "mx.hoster.example");
    ASSERT_EQ(ar->results.size(), 2u);
    EXPECT_EQ(ar->results[0].method, "dkim");
    EXPECT_EQ(ar->results[0].result, "pass");
    EXPECT_EQ(ar->results[0].props.at("header.d"), "Yahoo.com");
    EXPECT_EQ(ar->results[0].props.at("header.s"), "s2048");
    EXPECT_EQ(ar->results[1].method, "spf");
    EXPECT_EQ(ar->results[1].props.at("smtp.mailfrom"), "yahoo.com");
    auto none = arf::parse_auth_results("mx.hoster.example; none");
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->results.empty());
    auto versioned = arf::parse_auth_results("mx.hoster.example; dkim/1=fail header.d=a.example");
    ASSERT_TRUE(versioned);
    EXPECT_EQ(versioned->results[0].method, "dkim");
    EXPECT_EQ(versioned->results[0].result, "fail");
}

TEST(AuthResults, MalformedFieldsAreNotParsed) {
    for (const char* bad : {"", "; dkim=pass", "mx; dkim", "mx; dkim=", "mx; dkim=pass header.d=", "mx (open",
                            "mx; dkim=pass header.d=\"open", "mx; dkim=pass header.d"})
        EXPECT_FALSE(arf::parse_auth_results(bad)) << bad;
}

TEST(AuthResults, OnlyAPassFromAListedDomainOrBelowIsTrusted) {
    const std::vector<std::string> yahoo{"yahoo.com"};
    auto signer = [&](const char* v) { return arf::trusted_signer(*arf::parse_auth_results(v), yahoo); };
    EXPECT_EQ(signer("mx; dkim=pass header.d=yahoo.com"), "yahoo.com");
    EXPECT_EQ(signer("mx; dkim=pass header.d=FBL.Yahoo.com."), "fbl.yahoo.com");
    EXPECT_EQ(signer("mx; dkim=pass header.i=fbl@mail.yahoo.com"), "mail.yahoo.com");
    EXPECT_EQ(signer("mx; dkim=pass header.d=evilyahoo.com"), "");
    EXPECT_EQ(signer("mx; dkim=pass header.d=yahoo.com.evil.example"), "");
    EXPECT_EQ(signer("mx; dkim=fail header.d=yahoo.com"), "");
    EXPECT_EQ(signer("mx; dkim=neutral header.d=yahoo.com; spf=pass smtp.mailfrom=yahoo.com"), "");
    EXPECT_EQ(signer("mx; dkim=fail header.d=yahoo.com; dkim=pass header.d=yahoo.com"), "yahoo.com");
}

TEST(ArfReporters, AReportVouchedForByOurMtaIsParsed) {
    auto out = arf::parse(report_with("Authentication-Results: mx.hoster.example;\n"
                                      "\tdkim=pass header.d=example.com header.s=fbl\n"),
                          &kTrust);
    ASSERT_TRUE(std::holds_alternative<arf::Report>(out)) << std::get<arf::Refused>(out).message;
    EXPECT_EQ(std::get<arf::Report>(out).signed_by, "example.com");
    EXPECT_EQ(std::get<arf::Report>(out).source_ip, "192.0.2.1");
}

TEST(ArfReporters, ForgedOrMissingVouchersAreRefused) {
    auto refusal = [](const std::string& headers) {
        auto out = arf::parse(report_with(headers), &kTrust);
        EXPECT_TRUE(std::holds_alternative<arf::Refused>(out)) << headers;
        if (!std::holds_alternative<arf::Refused>(out)) return std::string();
        EXPECT_EQ(std::get<arf::Refused>(out).why, arf::Refusal::UntrustedReporter);
        return std::get<arf::Refused>(out).message;
    };
    // no field from our MTA at all; the report's own (RFC 5965 example) names mail.example.com
    EXPECT_NE(refusal("").find("no Authentication-Results header from mx.hoster.example"), std::string::npos);
    // another MTA's word is anyone's to write
    refusal("Authentication-Results: mx.attacker.example; dkim=pass header.d=example.com\n");
    // our MTA found the signature failing; a forged pass further down does not count
    EXPECT_NE(refusal("Authentication-Results: mx.hoster.example; dkim=fail header.d=example.com\n"
                      "Authentication-Results: mx.hoster.example; dkim=pass header.d=example.com\n")
                  .find("dkim=fail header.d=example.com"),
              std::string::npos);
    // a pass from a domain that is not a reporter
    refusal("Authentication-Results: mx.hoster.example; dkim=pass header.d=attacker.example\n");
    // not signed at all
    EXPECT_NE(refusal("Authentication-Results: mx.hoster.example; none\n").find("no DKIM result"), std::string::npos);
    // without Reporters, the same report is parsed as before
    EXPECT_TRUE(std::holds_alternative<arf::Report>(arf::parse(report_with(""))));
}
