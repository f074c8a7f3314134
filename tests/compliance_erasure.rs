//! Issue 11, erasure attestation and zombie detection, through the real proxy in front of the
//! records service, which can be told to erase for real, to only hide a person from search, or
//! to remove the person but leave them listed in events (the "deletion only hid records" flaw).
//!
//! After a 2xx erasure the compliance watch asks the records system for the erased subject as
//! itself (a logged consultation, purpose integrity) and writes an `erasure-check` entry; a later
//! response that returns a subject whose erasure was confirmed raises a `zombie` alert entry.
//! Everything the watch does is derived from the log, so a restarted watch carries on: checks
//! still due are made, checks made are not repeated, and a sighting it missed is alerted once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use proxy_support::*;
use s62::compliance::{self, ComplianceMetrics, ProbeRoutes};
use s62::log::entry::{Entry, EntryKind};
use s62::log::store::Store;
use s62::proxy::upstream::Upstream as UpstreamClient;
use s62::records::ErasureMode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The example config's probed erasure rule, rechecked once after `recheck`.
fn probes(recheck: Duration) -> ProbeRoutes {
    config()
        .routes
        .rules
        .iter()
        .filter_map(|r| {
            let mut p = r.erasure_probe.clone()?;
            p.recheck_after = vec![recheck];
            Some((r.name.clone(), p))
        })
        .collect()
}

struct Watch {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start_watch(sidecar: &Sidecar, upstream: &Upstream, recheck: Duration) -> Watch {
    let client =
        UpstreamClient::new(&settings(&config(), upstream.addr).upstream).expect("upstream client");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(compliance::run(
        probes(recheck),
        sidecar.store.clone() as Arc<dyn Store>,
        sidecar.writer.clone(),
        Arc::new(client),
        ComplianceMetrics::default(),
        async {
            let _ = stopped.await;
        },
    ));
    Watch { stop, task }
}

impl Watch {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the watch stops")
            .expect("the watch did not panic");
    }
}

fn checks(store: &TestStore) -> Vec<Entry> {
    store.of_kind(EntryKind::ErasureCheck)
}

fn alerts(store: &TestStore) -> Vec<Entry> {
    store.of_kind(EntryKind::Alert)
}

async fn erase(sidecar: &Sidecar, id: &str) -> Reply {
    let r = send(
        "DELETE",
        &sidecar.url(&format!("/people/{id}")),
        None,
        JUSTIFIED,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_erasure_whose_subject_turns_up_again_raises_one_zombie_alert_across_a_restart()
{
    let upstream = Upstream::start().await;
    // The person record goes, but events still list the person.
    upstream.records.set_erasure_mode(ErasureMode::LeaveLinks);
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let recheck = Duration::from_millis(1500);
    let watch = start_watch(&sidecar, &upstream, recheck);

    let erased = erase(&sidecar, "P-1001").await;
    let store = sidecar.store.clone();
    eventually("the first erasure check", || !checks(&store).is_empty()).await;
    let first = checks(&store).remove(0);
    let c = first.erasure_check.clone().expect("check");
    let erasure_intent = for_request(&store, EntryKind::Intent, &reply_id(&erased)).remove(0);
    assert_eq!(c.result, "confirmed");
    assert_eq!(c.probe_status, 404);
    assert_eq!(c.attempt, 0);
    assert_eq!(c.erasure_seq, erasure_intent.seq);
    assert_eq!(first.answers_seq, Some(erasure_intent.seq));
    assert_eq!(first.subject_ids, ["P-1001"]);
    // The probe was itself logged: the sidecar consulting the subject, for integrity.
    let probe = store
        .entries()
        .into_iter()
        .find(|e| e.seq == c.probe_seq)
        .expect("probe intent");
    assert_eq!(probe.kind, EntryKind::Intent as i32);
    assert_eq!(probe.actor.as_ref().expect("actor").id, "s62");
    assert_eq!(
        probe.justification.as_ref().expect("why").purpose_code,
        "integrity"
    );
    assert_eq!(probe.subject_ids, ["P-1001"]);
    let request = probe.request.expect("request");
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/people/P-1001")
    );
    watch.stop().await;

    // While the watch is down, an officer reads an event that still lists the erased person,
    // and another that does not.
    let sighting = send("GET", &sidecar.url("/events/E-4001"), None, JUSTIFIED).await;
    assert_eq!(sighting.status, 200);
    assert!(
        String::from_utf8_lossy(&sighting.body).contains("P-1001"),
        "control: the records system still lists the erased person"
    );
    let ordinary = send("GET", &sidecar.url("/events/E-4002"), None, JUSTIFIED).await;
    assert_eq!(ordinary.status, 200);
    let sighting_outcome = for_request(&store, EntryKind::Outcome, &reply_id(&sighting)).remove(0);

    // A new watch reads the log: it alerts on the missed sighting once, makes the recheck that is
    // now due, and does not repeat the first check.
    let watch = start_watch(&sidecar, &upstream, recheck);
    eventually("the zombie alert and the recheck", || {
        !alerts(&store).is_empty() && checks(&store).len() >= 2
    })
    .await;
    // A sighting after the restart is alerted too.
    let again = send("GET", &sidecar.url("/events/E-4001"), None, JUSTIFIED).await;
    let again_outcome = for_request(&store, EntryKind::Outcome, &reply_id(&again)).remove(0);
    eventually("the second zombie alert", || alerts(&store).len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.stop().await;

    let all_checks = checks(&store);
    let attempts: Vec<u32> = all_checks
        .iter()
        .map(|e| e.erasure_check.as_ref().expect("check").attempt)
        .collect();
    assert_eq!(attempts, [0, 1], "each check once");
    assert_eq!(
        all_checks[1].erasure_check.as_ref().expect("check").result,
        "confirmed"
    );
    let found = alerts(&store);
    assert_eq!(found.len(), 2, "one alert per sighting: {found:?}");
    for (alert, outcome) in found.iter().zip([&sighting_outcome, &again_outcome]) {
        let a = alert.alert.as_ref().expect("alert");
        assert_eq!(a.rule, "zombie");
        assert_eq!(a.sighting_seq, outcome.seq);
        assert_eq!(a.related_seq, erasure_intent.seq);
        assert_eq!(alert.subject_ids, ["P-1001"]);
    }
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_that_only_hides_the_person_is_logged_still_present_and_raises_no_zombie_alert()
{
    let upstream = Upstream::start().await;
    upstream
        .records
        .set_erasure_mode(ErasureMode::HideFromSearch);
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let watch = start_watch(&sidecar, &upstream, Duration::from_secs(3600));
    erase(&sidecar, "P-1002").await;
    let store = sidecar.store.clone();
    eventually("the erasure check", || !checks(&store).is_empty()).await;
    // Still served: a read returns the "erased" person, but the erasure was never confirmed,
    // so it is the check that says so, not a zombie alert.
    let read = send("GET", &sidecar.url("/people/P-1002"), None, JUSTIFIED).await;
    assert_eq!(read.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.stop().await;
    let found = checks(&store);
    assert_eq!(found.len(), 1, "the recheck is not due for an hour");
    let c = found[0].erasure_check.as_ref().expect("check");
    assert_eq!(c.result, "still-present");
    assert_eq!(c.probe_status, 200);
    assert!(alerts(&store).is_empty());
    sidecar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_erasure_is_not_checked_and_a_real_one_is_confirmed() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(settings(&config(), upstream.addr)).await;
    let watch = start_watch(&sidecar, &upstream, Duration::from_secs(3600));
    let missing = send("DELETE", &sidecar.url("/people/P-9999"), None, JUSTIFIED).await;
    assert_eq!(missing.status, 404, "nobody to erase");
    erase(&sidecar, "P-1003").await;
    let store = sidecar.store.clone();
    eventually("the erasure check", || !checks(&store).is_empty()).await;
    // Reading an event the erased person was in no longer lists them: nothing to alert on.
    let event = send("GET", &sidecar.url("/events/E-4001"), None, JUSTIFIED).await;
    assert!(!String::from_utf8_lossy(&event.body).contains("P-1003"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.stop().await;
    let found = checks(&store);
    assert_eq!(found.len(), 1, "only the 2xx erasure is checked: {found:?}");
    assert_eq!(found[0].subject_ids, ["P-1003"]);
    assert_eq!(
        found[0].erasure_check.as_ref().expect("check").result,
        "confirmed"
    );
    assert!(alerts(&store).is_empty());
    sidecar.stop().await;
}
