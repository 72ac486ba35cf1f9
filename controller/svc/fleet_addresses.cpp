// FleetAgent's address records (core/address_fleet.h; README "Running a fleet"):
//   start   before it writes any, the writer reads this host's own records back (a key
//           scan of <prefix>/addresses/, then each of its keys) and hands them to the
//           daemon, which recovers what its history lacks (a lost state dir) and offers
//           a state marked recovered; until one comes, nothing is written, so a host
//           never overwrites the fleet's copy of its history with a shorter one. What
//           was read is what etcd holds: buckets that emptied meanwhile are deleted.
//   writer  the loop thread offers this host's history and DNSBL state after a change;
//           the writer thread turns it into one value per bucket and writes the values
//           that differ from what it last wrote, deleting the buckets that emptied. Each
//           key has one writer: this host. etcd away: the difference stays and is
//           written when it is back (the newest state wins; nothing is replayed).
//   reader  (FleetAddressReader) ip.check / ip.show on a control worker thread: one
//           range read of the buckets the address or prefix overlaps (and, for ip.show,
//           the hosts' wide records), bounded; an error when etcd cannot answer.
#include "svc/fleet_agent.h"

namespace smtpgov::svc {

namespace {

constexpr size_t kTxnOps = 64;             // etcd's default --max-txn-ops is 128
constexpr size_t kTxnBytes = 1024 * 1024;  // of values per txn: under etcd's default 1.5 MiB request limit

}  // namespace

void FleetAgent::offer_addresses(std::shared_ptr<const addrfleet::AddressState> s) {
    std::lock_guard l(mu_);
    addr_offered_ = std::move(s);
}

void FleetAgent::write_addresses(etcd::Client& c) {
    std::shared_ptr<const addrfleet::AddressState> offered;
    bool up;
    {
        std::lock_guard l(mu_);
        offered.swap(addr_offered_);
        up = stats_.etcd_up;  // keep_live's verdict this round: no second timeout when etcd is away
    }
    if (up && !addr_read_) addr_read_ = read_own_addresses(c);
    if (offered && offered->recovered && addr_read_) {
        addr_want_ = addrfleet::host_records(offered->history, offered->listings, opts_.host);
        addr_ready_ = true;
    }
    if (!addr_ready_) return;  // (an offer before the recovery is dropped: the daemon offers again)
    std::vector<std::pair<std::string, const std::string*>> todo;  // bucket, value (null: delete)
    for (const auto& [bucket, value] : addr_want_)
        if (auto it = addr_have_.find(bucket); it == addr_have_.end() || it->second != value) todo.emplace_back(bucket, &value);
    for (const auto& [bucket, value] : addr_have_)
        if (!addr_want_.count(bucket)) todo.emplace_back(bucket, nullptr);
    size_t written = 0, txns = 0;
    while (up && written < todo.size()) {
        // a batch: at most kTxnOps keys and kTxnBytes of values (one value fits: kMaxValueBytes)
        size_t end = written, bytes = 0;
        std::vector<etcd::Op> ops;
        for (; end < todo.size() && ops.size() < kTxnOps; ++end) {
            const std::string* v = todo[end].second;
            if (!ops.empty() && v && bytes + v->size() > kTxnBytes) break;
            bytes += v ? v->size() : 0;
            const std::string key = addrfleet::record_key(keys_, todo[end].first, opts_.host);
            ops.push_back(v ? etcd::Op{etcd::Op::Kind::Put, key, *v, 0} : etcd::Op{etcd::Op::Kind::Delete, key, "", 0});
        }
        auto t = c.txn({}, ops);
        ++txns;
        if (!t) break;  // etcd away: the rest (and these) next round
        for (size_t i = written; i < end; ++i) {
            if (todo[i].second) addr_have_[todo[i].first] = *todo[i].second;
            else addr_have_.erase(todo[i].first);
        }
        written = end;
    }
    std::lock_guard l(mu_);
    stats_.txns += txns;
    stats_.writes_addresses += written;
    stats_.addresses_pending = todo.size() - written;
}

bool FleetAgent::read_own_addresses(etcd::Client& c) {
    const std::string prefix = addrfleet::records_prefix(keys_), end = etcd::Client::prefix_end(prefix);
    std::vector<std::pair<std::string, std::string>> mine;  // key, bucket
    for (std::string from = prefix;;) {  // keys only, a page at a time: every host's are here
        auto r = c.get_range(from, end, 4096, /*keys_only=*/true);
        if (!r) return false;
        for (const etcd::Kv& kv : r->kvs)
            if (auto k = addrfleet::parse_key(keys_, kv.key); k && k->second == opts_.host) mine.emplace_back(kv.key, k->first);
        if (!r->more || r->kvs.empty()) break;
        from = r->kvs.back().key + '\0';
    }
    std::map<std::string, std::string> have;
    std::vector<addrfleet::HostRecord> own;
    std::vector<std::pair<std::string, std::string>> refused;
    for (const auto& [key, bucket] : mine) {
        auto r = c.get(key);
        if (!r) return false;
        if (r->kvs.empty()) continue;  // deleted meanwhile (by hand: only this host writes it)
        have[bucket] = r->kvs.front().value;
        if (auto rec = addrfleet::decode(keys_, key, r->kvs.front().value)) own.push_back(std::move(*rec));
        else refused.emplace_back(key, rec.error().message);
    }
    addr_have_ = std::move(have);
    if (cb_.on_own_addresses) cb_.on_own_addresses(std::move(own), std::move(refused));
    return true;
}

FleetAddressReader::FleetAddressReader(const fleet::Options& opts, std::string password)
    : etcd_(etcd_options(opts, std::move(password))), host_(opts.host) {
    keys_.prefix = opts.prefix;
}

Result<std::vector<std::pair<std::string, std::string>>> FleetAddressReader::read(const IpPrefix& q, bool wide) const {
    etcd::Client c(etcd_);
    std::vector<std::pair<std::string, std::string>> out;
    auto take = [&](const Result<etcd::Range>& r, const std::string& what) -> Status {
        if (!r) return Error{r.error().errnum, "fleet history unavailable: etcd: " + r.error().message};
        if (r->more || out.size() + r->kvs.size() > size_t(addrfleet::kMaxRead))
            return Error{E2BIG, "fleet history of " + what + ": more than " + std::to_string(addrfleet::kMaxRead) +
                                    " host records; ask about a narrower prefix"};
        for (const etcd::Kv& kv : r->kvs) out.emplace_back(kv.key, kv.value);
        return ok_status();
    };
    const auto [begin, end] = addrfleet::bucket_range(keys_, q);
    if (auto s = take(c.get_range(begin, end, addrfleet::kMaxRead), q.to_string()); !s) return s.error();
    if (wide)
        if (auto s = take(c.get_prefix(addrfleet::wide_prefix(keys_), addrfleet::kMaxRead), "the wide prefixes"); !s)
            return s.error();
    return out;
}

}  // namespace smtpgov::svc
