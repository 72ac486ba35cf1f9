// smtpgovd's log entries in the journal's native protocol: the field encoding (plain and
// binary-safe), which fields an entry carries, the event kinds' MESSAGE_IDs, the
// JOURNAL_STREAM check, and the socket transport (datagram, and a sealed memfd past the
// datagram limit) against a listener of the test's own. Runs as nobody.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <regex>
#include <set>

#include "daemon/journal.h"
#include "daemon/log.h"

using namespace smtpgov;
using namespace smtpgov::log;

namespace {

std::string le64(uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return s;
}

// A datagram socket bound in a fresh directory, standing in for journald.
struct Listener {
    Listener() {
        char tmpl[] = "/tmp/sg-journal-test.XXXXXX";
        dir = ::mkdtemp(tmpl);
        path = dir + "/socket";
        fd.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
        EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << std::strerror(errno);
    }
    ~Listener() { std::filesystem::remove_all(dir); }

    // The next datagram's bytes, and the fd passed with it (or -1).
    std::pair<std::string, int> receive() {
        std::string buf(1 << 20, '\0');
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        iovec iov{buf.data(), buf.size()};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(fd.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        EXPECT_GE(n, 0) << std::strerror(errno);
        buf.resize(n < 0 ? 0 : static_cast<size_t>(n));
        int passed = -1;
        if (cmsghdr* c = CMSG_FIRSTHDR(&msg); c && c->cmsg_type == SCM_RIGHTS) std::memcpy(&passed, CMSG_DATA(c), sizeof(int));
        return {buf, passed};
    }

    std::string dir, path;
    UniqueFd fd;
};

}  // namespace

TEST(JournalEncoding, PlainFieldsAreNameEqualsValueLines) {
    EXPECT_EQ(journal::encode({{"MESSAGE", "vm vm-101: ok -> blocked"}, {"PRIORITY", "5"}, {"SMTPGOV_VM", "vm-101"}}),
              "MESSAGE=vm vm-101: ok -> blocked\nPRIORITY=5\nSMTPGOV_VM=vm-101\n");
    EXPECT_EQ(journal::encode({{"EMPTY", ""}, {"EQ", "a=b"}}), "EMPTY=\nEQ=a=b\n");
    EXPECT_EQ(journal::encode({}), "");
}

TEST(JournalEncoding, AValueWithANewlineIsSentBinarySafe) {
    EXPECT_EQ(journal::encode({{"MESSAGE", "two\nlines"}, {"PRIORITY", "3"}}),
              "MESSAGE\n" + le64(9) + "two\nlines\nPRIORITY=3\n");
    EXPECT_EQ(journal::encode({{"M", "\n"}}), "M\n" + le64(1) + "\n\n");
    std::string nul("a\0b", 3);  // no newline: the plain form carries any other byte
    EXPECT_EQ(journal::encode({{"M", nul}}), "M=" + nul + "\n");
}

TEST(JournalEncoding, NamesJournaldWouldDropAreLeftOut) {
    for (const char* bad : {"", "lower", "_TRUSTED", "1ST", "SP ACE", "DASH-ED", "MESSAGE="})
        EXPECT_FALSE(journal::valid_field_name(bad)) << bad;
    EXPECT_TRUE(journal::valid_field_name(std::string(64, 'A')));
    EXPECT_FALSE(journal::valid_field_name(std::string(65, 'A')));
    EXPECT_TRUE(journal::valid_field_name("SMTPGOV_FROM_TIER2"));
    EXPECT_EQ(journal::encode({{"lower", "x"}, {"OK", "y"}, {"_PID", "1"}}), "OK=y\n");
}

TEST(JournalFields, AnEventCarriesItsIdAndTheVmFields) {
    Entry e(Level::Notice, Event::TierChange, "vm vm-101: ok -> blocked (pin, score 0)");
    e.about("vm-101", "acme", "blocked").with("SMTPGOV_FROM_TIER", "ok");
    using F = std::vector<std::pair<std::string, std::string>>;
    EXPECT_EQ(journal_fields(e), (F{{"MESSAGE", "vm vm-101: ok -> blocked (pin, score 0)"},
                                    {"PRIORITY", "5"},
                                    {"SYSLOG_IDENTIFIER", "smtpgovd"},
                                    {"MESSAGE_ID", "e09964c0351a4dd3923448f014bf1177"},
                                    {"SMTPGOV_EVENT", "tier_change"},
                                    {"SMTPGOV_VM", "vm-101"},
                                    {"SMTPGOV_TENANT", "acme"},
                                    {"SMTPGOV_TIER", "blocked"},
                                    {"SMTPGOV_FROM_TIER", "ok"}}));
    // an ordinary message: no MESSAGE_ID, no empty SMTPGOV_* fields
    EXPECT_EQ(journal_fields(Entry(Level::Error, Event::None, "x")),
              (F{{"MESSAGE", "x"}, {"PRIORITY", "3"}, {"SYSLOG_IDENTIFIER", "smtpgovd"}}));
    Entry auto_vm(Level::Info, Event::OverLimit, "y");
    auto_vm.about("if:vnet7", "", "ok");
    auto f = journal_fields(auto_vm);
    EXPECT_EQ(std::count_if(f.begin(), f.end(), [](const auto& p) { return p.first == "SMTPGOV_TENANT"; }), 0);
}

TEST(JournalFields, PlainLinesKeepTheirFormat) {
    Entry e(Level::Warning, Event::PolicyRefused, "policy.apply refused: x");
    EXPECT_EQ(plain_line(e, false), "smtpgovd: warning: policy.apply refused: x");
    EXPECT_EQ(plain_line(e, true), "<4>policy.apply refused: x");
}

TEST(JournalFields, EveryEventKindHasItsOwnStableId) {
    const std::regex id("^[0-9a-f]{32}$"), name("^[a-z_]+$");
    std::set<std::string> ids, names;
    for (const EventKind& k : event_kinds()) {
        EXPECT_TRUE(std::regex_match(k.message_id, id)) << k.name;
        EXPECT_TRUE(std::regex_match(k.name, name)) << k.name;
        EXPECT_TRUE(ids.insert(k.message_id).second) << "duplicate id " << k.message_id;
        EXPECT_TRUE(names.insert(k.name).second) << "duplicate name " << k.name;
        EXPECT_EQ(kind_of(k.event), &k);
    }
    for (int e = static_cast<int>(Event::None) + 1; e <= static_cast<int>(Event::TierRecovered); ++e)
        EXPECT_NE(kind_of(static_cast<Event>(e)), nullptr) << "Event " << e << " has no kind";
    EXPECT_EQ(kind_of(Event::None), nullptr);
    // released ids never change: operators' queries and alerts name them
    EXPECT_STREQ(kind_of(Event::TierChange)->message_id, "e09964c0351a4dd3923448f014bf1177");
    EXPECT_STREQ(kind_of(Event::Ticket)->message_id, "69ec82900ec54347a103ed936e0cba5c");
}

TEST(JournalStream, OnlyTheDeviceAndInodeOfTheFdCount) {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd r(p[0]), w(p[1]);
    struct stat st {};
    ASSERT_EQ(::fstat(w.get(), &st), 0);
    const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    EXPECT_TRUE(journal::is_journal_stream(mine.c_str(), w.get()));
    const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
    EXPECT_FALSE(journal::is_journal_stream(other.c_str(), w.get()));
    for (const char* bad : {"", "12", "1:2:3", "a:b", ":", "1:", " 1:2"})
        EXPECT_FALSE(journal::is_journal_stream(bad, w.get())) << bad;
    EXPECT_FALSE(journal::is_journal_stream(nullptr, w.get()));
    EXPECT_FALSE(journal::is_journal_stream(mine.c_str(), -1));
}

TEST(JournalSocket, AnEntryIsOneDatagram) {
    Listener l;
    journal::Socket s(l.path);
    std::string entry = journal::encode({{"MESSAGE", "a\nb"}, {"PRIORITY", "6"}});
    ASSERT_TRUE(s.send(entry)) << "send";
    auto [got, fd] = l.receive();
    EXPECT_EQ(got, entry);
    EXPECT_EQ(fd, -1);
}

TEST(JournalSocket, AnEntryPastTheDatagramLimitGoesAsASealedMemfd) {
    Listener l;
    journal::Socket s(l.path);
    std::string entry = journal::encode({{"MESSAGE", std::string(32 << 20, 'x') + "\nend"}});
    ASSERT_TRUE(s.send(entry));
    auto [got, fd] = l.receive();
    ASSERT_GE(fd, 0) << "no memfd came with the datagram";
    UniqueFd mem(fd);
    EXPECT_EQ(got, "");
    int seals = ::fcntl(mem.get(), F_GET_SEALS);
    EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    std::string content(entry.size() + 1, '\0');
    ssize_t n = ::pread(mem.get(), content.data(), content.size(), 0);
    ASSERT_EQ(n, static_cast<ssize_t>(entry.size()));
    content.resize(static_cast<size_t>(n));
    EXPECT_TRUE(content == entry);
}

TEST(JournalSocket, NoListenerIsAnErrorNamingThePath) {
    journal::Socket s("/nonexistent/journal/socket");
    auto r = s.send("MESSAGE=x\n");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("/nonexistent/journal/socket"), std::string::npos) << r.error().message;
}
