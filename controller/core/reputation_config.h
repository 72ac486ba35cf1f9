// Reputation settings of the policy: score decay, tier thresholds and signal weights.
#pragma once

#include <optional>

#include "core/tier.h"

namespace smtpgov {

// What the controller learns about a VM; each adds its weight to the VM's score.
enum class Signal : unsigned char { OverLimit, Spoofed, RemoteReject, SpamReport, Complaint, DnsblListing };

struct SignalWeights {
    double over_limit = 1;     // per SYN refused for being over the bucket
    double spoofed = 10;       // per SYN from an address the VM does not own
    double remote_reject = 2;  // per 4xx/5xx reply or RST from a remote server
    double spam_report = 50;   // per spam verdict from the proxy
    double complaint = 200;    // per feedback-loop complaint
    // per new DNSBL listing of an address the VM holds (one that appeared during its
    // tenure): reaches steered on its own, so its mail leaves from the quarantine egress
    double dnsbl_listing = 500;
    double of(Signal s) const;
    bool operator==(const SignalWeights&) const = default;
};

struct Thresholds {
    double throttled = 50, steered = 400, blocked = 2000;  // strictly increasing
    double of(Tier t) const;  // 0 for Tier::Ok
    bool operator==(const Thresholds&) const = default;
};

struct ReputationConfig {
    double half_life_s = 600;  // score halves every half_life_s without new signals
    Thresholds thresholds;
    // Applied to the sum of a tenant's VM scores (every host of a fleet): each VM of the
    // tenant is at least the tier the sum reaches. None: no tenant-wide scoring.
    std::optional<Thresholds> tenant_thresholds;
    double hysteresis = 0.5;   // leave a tier only below threshold * (1 - hysteresis)
    double min_dwell_s = 30;   // time at a tier before it may de-escalate
    SignalWeights weights;
    bool operator==(const ReputationConfig&) const = default;
};

inline double SignalWeights::of(Signal s) const {
    switch (s) {
    case Signal::OverLimit: return over_limit;
    case Signal::Spoofed: return spoofed;
    case Signal::RemoteReject: return remote_reject;
    case Signal::SpamReport: return spam_report;
    case Signal::Complaint: return complaint;
    case Signal::DnsblListing: return dnsbl_listing;
    }
    return 0;
}

inline double Thresholds::of(Tier t) const {
    switch (t) {
    case Tier::Ok: return 0;
    case Tier::Throttled: return throttled;
    case Tier::Steered: return steered;
    case Tier::Blocked: return blocked;
    }
    return 0;
}

}  // namespace smtpgov
