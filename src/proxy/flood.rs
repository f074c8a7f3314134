//! Keeping fail-closed from becoming anyone's denial of service: refusals of unauthenticated
//! requests are logged one by one only up to an allowance per peer address per window; past it
//! they are counted, and each window ends with one aggregated `denied` entry per peer
//! (`denials_aggregated`: count and reasons). TLS handshake failures, which have no request to
//! log, are always counted this way (`tls_handshake_failed`: peer, reason, count).
//!
//! Pure bookkeeping behind a mutex: no I/O, no clock of its own (the caller drains it once per
//! window and appends what it returns). Must not import the writer, hyper or rustls. Aggregated
//! entries name the peer address and reasons only, never a request target or header value.

use crate::log::entry::{Actor, AuthMethod, Denial, Entry, EntryKind};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

/// Peers tracked at once; further peers share one bucket (the unspecified address, `::`), so a
/// flood from many addresses costs bounded memory and still ends in one entry per window.
const MAX_PEERS: usize = 16_384;
/// Longest handshake failure reason kept (characters); at most 8 distinct reasons per peer.
const MAX_REASON_LEN: usize = 96;

/// Per-peer allowances and counts for the current window.
#[derive(Debug)]
pub struct DenialGate {
    per_peer: usize,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    peers: HashMap<IpAddr, PeerCount>,
    handshakes: HashMap<IpAddr, BTreeMap<String, u64>>,
}

#[derive(Debug, Default)]
struct PeerCount {
    logged: usize,
    suppressed: BTreeMap<&'static str, u64>,
}

fn bucket<V>(map: &HashMap<IpAddr, V>, peer: IpAddr) -> IpAddr {
    if map.len() >= MAX_PEERS && !map.contains_key(&peer) {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        peer
    }
}

impl DenialGate {
    /// `per_peer` individual denial entries per peer per `window`.
    pub fn new(per_peer: usize, window: Duration) -> Self {
        DenialGate {
            per_peer,
            window,
            state: Mutex::new(Window::default()),
        }
    }

    /// The window drains are expected at.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // Nothing panics while holding the lock; if something did, the counts are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an unauthenticated refusal from `peer` may be logged on its own; `false` means it
    /// was counted into this window's aggregated entry instead.
    pub fn admit(&self, peer: IpAddr, reason: &'static str) -> bool {
        let mut w = self.lock();
        let key = bucket(&w.peers, peer);
        let count = w.peers.entry(key).or_default();
        if count.logged < self.per_peer {
            count.logged += 1;
            true
        } else {
            *count.suppressed.entry(reason).or_default() += 1;
            false
        }
    }

    /// Counts a failed TLS handshake from `peer`.
    pub fn handshake_failed(&self, peer: IpAddr, reason: &str) {
        let mut reason: String = reason.chars().take(MAX_REASON_LEN).collect();
        if reason.is_empty() {
            reason.push_str("unknown");
        }
        let mut w = self.lock();
        let key = bucket(&w.handshakes, peer);
        let reasons = w.handshakes.entry(key).or_default();
        if reasons.len() < 8 || reasons.contains_key(&reason) {
            *reasons.entry(reason).or_default() += 1;
        } else {
            *reasons.entry("other".to_owned()).or_default() += 1;
        }
    }

    /// Ends the window: the aggregated entries to append (none when nothing was suppressed).
    pub fn drain(&self) -> Vec<Entry> {
        let w = std::mem::take(&mut *self.lock());
        let window_ms = self.window.as_millis();
        let mut out = Vec::new();
        let mut peers: Vec<_> = w.peers.into_iter().collect();
        peers.sort_by_key(|(ip, _)| *ip);
        for (ip, count) in peers {
            let n: u64 = count.suppressed.values().sum();
            if n == 0 {
                continue;
            }
            let reasons = list(count.suppressed.iter().map(|(r, c)| (*r, *c)));
            out.push(aggregated(
                ip,
                "denials_aggregated",
                format!(
                    "{n} further refusals of unauthenticated requests from {ip} within {window_ms} \
                     ms were not logged one by one (after {} that were): {reasons}",
                    count.logged
                ),
            ));
        }
        let mut handshakes: Vec<_> = w.handshakes.into_iter().collect();
        handshakes.sort_by_key(|(ip, _)| *ip);
        for (ip, reasons) in handshakes {
            let n: u64 = reasons.values().sum();
            let reasons = list(reasons.iter().map(|(r, c)| (r.as_str(), *c)));
            out.push(aggregated(
                ip,
                "tls_handshake_failed",
                format!("{n} TLS handshakes from {ip} failed within {window_ms} ms: {reasons}"),
            ));
        }
        out
    }
}

fn list<'a>(items: impl Iterator<Item = (&'a str, u64)>) -> String {
    items
        .map(|(r, c)| format!("{r} x{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn aggregated(peer: IpAddr, reason: &str, detail: String) -> Entry {
    Entry {
        kind: EntryKind::Denied as i32,
        actor: Some(Actor {
            source_address: peer.to_string(),
            auth_method: AuthMethod::None as i32,
            ..Default::default()
        }),
        denial: Some(Denial {
            reason: reason.to_owned(),
            detail,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn past_the_allowance_refusals_are_counted_into_one_entry_per_peer() {
        let gate = DenialGate::new(3, Duration::from_secs(10));
        let admitted = (0..10)
            .filter(|i| {
                gate.admit(
                    ip("192.0.2.7"),
                    if i % 2 == 0 {
                        "no_identity"
                    } else {
                        "unmatched_route"
                    },
                )
            })
            .count();
        assert_eq!(admitted, 3);
        assert!(
            gate.admit(ip("192.0.2.8"), "no_identity"),
            "another peer has its own allowance"
        );
        let entries = gate.drain();
        assert_eq!(entries.len(), 1);
        let d = entries[0].denial.as_ref().expect("denial");
        assert_eq!(d.reason, "denials_aggregated");
        assert!(d.detail.starts_with("7 further refusals"), "{}", d.detail);
        assert!(d.detail.contains("no_identity x3") && d.detail.contains("unmatched_route x4"));
        assert_eq!(
            entries[0].actor.as_ref().expect("actor").source_address,
            "192.0.2.7"
        );
        assert!(gate.drain().is_empty(), "a new window starts empty");
        assert!(
            gate.admit(ip("192.0.2.7"), "no_identity"),
            "and with a fresh allowance"
        );
    }

    #[test]
    fn handshake_failures_are_counted_per_peer_and_reason() {
        let gate = DenialGate::new(3, Duration::from_secs(10));
        for _ in 0..5 {
            gate.handshake_failed(ip("198.51.100.1"), "peer sent no certificates");
        }
        gate.handshake_failed(ip("198.51.100.1"), "timeout");
        let entries = gate.drain();
        assert_eq!(entries.len(), 1);
        let d = entries[0].denial.as_ref().expect("denial");
        assert_eq!(d.reason, "tls_handshake_failed");
        assert!(
            d.detail.starts_with("6 TLS handshakes from 198.51.100.1"),
            "{}",
            d.detail
        );
        assert!(
            d.detail
                .contains("peer sent no certificates x5, timeout x1"),
            "{}",
            d.detail
        );
    }

    #[test]
    fn a_flood_from_many_addresses_costs_bounded_memory() {
        let gate = DenialGate::new(0, Duration::from_secs(1));
        for i in 0..(MAX_PEERS as u32 + 100) {
            gate.admit(IpAddr::V4(i.into()), "no_identity");
        }
        let entries = gate.drain();
        assert_eq!(
            entries.len(),
            MAX_PEERS + 1,
            "one shared bucket for the rest"
        );
        assert!(entries.iter().any(|e| {
            e.denial.as_ref().is_some_and(|d| {
                d.detail.starts_with("100 further") && d.detail.contains("from ::")
            })
        }));
    }
}
