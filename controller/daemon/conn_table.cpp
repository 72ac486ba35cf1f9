#include "daemon/conn_table.h"

#include <arpa/inet.h>

#include "core/clock.h"

#include <cstring>

namespace smtpgov::daemon {
namespace {

template <typename T>
bool same(const T& a, const T& b) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}

sg_conn_nat_key nat_of(const sg_conn_key& k) {
    sg_conn_nat_key n{};
    n.family = k.family;
    n.vm_port = k.vm_port;
    std::memcpy(n.vm_addr, k.vm_addr, sizeof n.vm_addr);
    return n;
}

}  // namespace

bool conn_expired(const sg_conn& c, uint64_t now_ns) {
    if (c.last_ns >= now_ns) return false;  // a packet newer than our clock reading
    const bool closing = (c.flags & (SG_CONNF_FIN_VM | SG_CONNF_FIN_REMOTE)) == (SG_CONNF_FIN_VM | SG_CONNF_FIN_REMOTE);
    const uint64_t limit = c.state == SG_CONN_ESTABLISHED && !closing ? SG_CONN_IDLE_NS : SG_CONN_SHORT_NS;
    return now_ns - c.last_ns > limit;
}

sg_conn_nat_key nat_key(const Endpoint& client) {
    sg_conn_nat_key n{};
    const bool v4 = client.addr.family == IpPrefix::Family::V4;
    n.family = v4 ? 4 : 6;
    n.vm_port = htons(client.port);
    std::memcpy(n.vm_addr, client.addr.addr.data(), v4 ? 4 : 16);
    return n;
}

Endpoint original_dst(const sg_conn_key& k) {
    Endpoint e;
    e.addr.family = k.family == 4 ? IpPrefix::Family::V4 : IpPrefix::Family::V6;
    e.addr.len = static_cast<uint8_t>(e.addr.max_len());
    std::memcpy(e.addr.addr.data(), k.dst_addr, k.family == 4 ? 4 : 16);
    e.port = ntohs(k.dst_port);
    return e;
}

// Reads the next batch once the last one is done with; deletes at most kMaxDeletes
// entries (and stops after its time budget, kStepBudgetNs) per step: what is left of the batch waits for
// the next step, so a step is short even when a whole batch is idle.
Result<uint32_t> ConnTable::step(uint64_t now_ns) {
    if (!in_pass_) {
        counting_ = Counts{};
        in_pass_ = true;
        ++pass_id_;
    }
    if (pos_ >= buf_.size()) {
        buf_.clear();
        pos_ = 0;
        if (auto s = maps_.conn_entries(cursor_, kBatch, buf_); !s) {
            cursor_ = BatchCursor{};  // start over next time
            in_pass_ = false;
            return s.error();
        }
    }
    const uint64_t t0 = mono_ns();
    uint32_t removed = 0;
    for (; pos_ < buf_.size(); ++pos_) {
        const auto& [k, c] = buf_[pos_];
        if (purged(c) || conn_expired(c, now_ns)) {
            if (removed >= kMaxDeletes || (removed % 256 == 255 && mono_ns() - t0 > budget_ns_)) break;
            auto gone = remove_expired(k, now_ns);
            if (!gone) return gone.error();  // this entry is tried again by the next step
            if (*gone) {
                ++removed;
                continue;
            }
        }
        count(c);
    }
    if (pos_ >= buf_.size() && cursor_.done) finish_pass();
    return removed;
}

void ConnTable::finish_pass() {
    done_ = std::move(counting_);
    counting_ = Counts{};
    cursor_ = BatchCursor{};
    in_pass_ = false;
    ++passes_;
    // a purge is complete once a whole pass that started after it has run
    for (auto it = purge_.begin(); it != purge_.end();)
        it = it->second.pass < pass_id_ ? purge_.erase(it) : std::next(it);
}

void ConnTable::purge_slots(const std::set<uint32_t>& slots, uint64_t now_ns) {
    for (uint32_t s : slots) purge_[s] = {now_ns, pass_id_};
}

bool ConnTable::purged(const sg_conn& c) const {
    if (c.slot == SG_SLOT_NONE) return false;
    auto it = purge_.find(c.slot);
    return it != purge_.end() && c.created_ns < it->second.before_ns;
}

// Deletes an entry that looked expired unless a packet refreshed it since it was read
// (the datapath updates entries while we walk them): true when it is gone. Its ring
// slot and NAT entry go with it when they still name it; the datapath may reuse either
// between our lookup and delete, which at worst leaves a newer connection out of its
// owner's ring (still bounded by the idle timeout).
Result<bool> ConnTable::remove_expired(const sg_conn_key& k, uint64_t now_ns) {
    sg_conn cur{};
    auto had = maps_.lookup(MapId::Conn, &k, &cur);
    if (!had) return had.error();
    if (!*had) return true;
    if (!purged(cur) && !conn_expired(cur, now_ns)) return false;
    if (auto s = maps_.remove(MapId::Conn, &k); !s) return s.error();
    ++deleted_;
    sg_conn_ring_key rk{};
    rk.slot = cur.slot;
    rk.idx = cur.ring_idx;
    rk.owner_key = cur.owner_key;
    sg_conn_key named{};
    if (auto r = maps_.lookup(MapId::ConnRing, &rk, &named); r && *r && same(named, k))
        if (auto s = maps_.remove(MapId::ConnRing, &rk); !s) return s.error();
    if (cur.flags & SG_CONNF_STEERED) {
        const sg_conn_nat_key nk = nat_of(k);
        if (auto r = maps_.lookup(MapId::ConnNat, &nk, &named); r && *r && same(named, k))
            if (auto s = maps_.remove(MapId::ConnNat, &nk); !s) return s.error();
    }
    return true;
}

void ConnTable::count(const sg_conn& c) {
    ++counting_.tracked;
    if (c.flags & SG_CONNF_STEERED) ++counting_.steered;
    if (c.slot != SG_SLOT_NONE) ++counting_.by_slot[c.slot];
    else ++counting_.by_auto[KeyBytes<sg_auto_key>{c.owner_key}];
}

uint32_t ConnTable::live(uint32_t slot) const {
    auto it = done_.by_slot.find(slot);
    return it == done_.by_slot.end() ? 0 : it->second;
}

uint32_t ConnTable::live(const sg_auto_key& owner) const {
    auto it = done_.by_auto.find(KeyBytes<sg_auto_key>{owner});
    return it == done_.by_auto.end() ? 0 : it->second;
}

Result<std::optional<ConnTable::Flow>> ConnTable::steered_flow(const Endpoint& client, uint64_t now_ns) {
    const sg_conn_nat_key nk = nat_key(client);
    Flow f;
    auto named = maps_.lookup(MapId::ConnNat, &nk, &f.key);
    if (!named) return named.error();
    if (!*named) return std::optional<Flow>{};
    auto had = maps_.lookup(MapId::Conn, &f.key, &f.conn);
    if (!had) return had.error();
    // the entry must be the steered connection of this very client, and not expired
    if (!*had || !(f.conn.flags & SG_CONNF_STEERED) || !same(nat_of(f.key), nk) || conn_expired(f.conn, now_ns))
        return std::optional<Flow>{};
    return std::optional<Flow>(f);
}

bool ReportLedger::take(const sg_conn_key& k, uint64_t created_ns) {
    const Id id{KeyBytes<sg_conn_key>{k}, created_ns};
    auto [it, fresh] = counts_.try_emplace(id, 0);
    if (fresh) {
        order_.push_back(id);
        if (order_.size() > kMaxConns) {
            counts_.erase(order_.front());
            order_.pop_front();
        }
    }
    if (it->second >= kPerConn) return false;
    ++it->second;
    return true;
}

}  // namespace smtpgov::daemon
