#include "daemon/journal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <charconv>
#include <cstring>

namespace smtpgov::log::journal {
namespace {

void append_le64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// "DEV:INODE" -> both numbers, or false
bool parse_dev_ino(std::string_view s, unsigned long long& dev, unsigned long long& ino) {
    auto colon = s.find(':');
    if (colon == std::string_view::npos) return false;
    auto a = std::from_chars(s.data(), s.data() + colon, dev);
    auto b = std::from_chars(s.data() + colon + 1, s.data() + s.size(), ino);
    return a.ec == std::errc{} && a.ptr == s.data() + colon && b.ec == std::errc{} && b.ptr == s.data() + s.size();
}

sockaddr_un address_of(const std::string& path, socklen_t& len) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), std::min(path.size(), sizeof(sa.sun_path) - 1));
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::min(path.size(), sizeof(sa.sun_path) - 1));
    return sa;
}

Status write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("journal memfd write");
        data.remove_prefix(static_cast<size_t>(n));
    }
    return ok_status();
}

}  // namespace

bool valid_field_name(std::string_view name) {
    if (name.empty() || name.size() > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9')) return false;
    for (char c : name)
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

std::string encode(const std::vector<Field>& fields) {
    std::string out;
    for (const auto& [name, value] : fields) {
        if (!valid_field_name(name)) continue;
        out += name;
        if (value.find('\n') == std::string::npos) {
            out += '=';
        } else {  // binary-safe: the size says where the value ends
            out += '\n';
            append_le64(out, value.size());
        }
        out += value;
        out += '\n';
    }
    return out;
}

bool is_journal_stream(const char* env, int fd) {
    unsigned long long dev = 0, ino = 0;
    if (!env || !parse_dev_ino(env, dev, ino)) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

Socket::Socket(std::string path) : path_(std::move(path)) {}

Status Socket::send(std::string_view datagram) {
    if (!fd_) {
        fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd_) return Error::from_errno("journal socket");
        // Entries up to 8 MiB fit in one datagram where the host allows it; a slow
        // journald holds a sender up to a second, then the entry goes to stderr.
        int size = 8 << 20;
        (void)::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        timeval tv{1, 0};
        (void)::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    socklen_t len = 0;
    sockaddr_un sa = address_of(path_, len);
    ssize_t n;
    do {
        n = ::sendto(fd_.get(), datagram.data(), datagram.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sa), len);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) return ok_status();
    if (errno == EMSGSIZE || errno == ENOBUFS) return send_memfd(datagram);
    return Error::from_errno("send to " + path_);
}

// journald reads an entry from a memfd it receives when the memfd is sealed: nobody
// can change it after the fact.
Status Socket::send_memfd(std::string_view datagram) {
    UniqueFd mem(::memfd_create("smtpgov-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!mem) return Error::from_errno("journal memfd");
    if (auto s = write_all(mem.get(), datagram); !s) return s;
    if (::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        return Error::from_errno("journal memfd seal");
    socklen_t len = 0;
    sockaddr_un sa = address_of(path_, len);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_name = &sa;
    msg.msg_namelen = len;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int memfd = mem.get();
    std::memcpy(CMSG_DATA(c), &memfd, sizeof(int));
    ssize_t n;
    do {
        n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Error::from_errno("send memfd to " + path_);
    return ok_status();
}

}  // namespace smtpgov::log::journal
