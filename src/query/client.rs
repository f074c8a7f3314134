//! `s62 query`: the auditors' command-line client. Connects with the auditor's client certificate,
//! states the purpose and case reference on every call, and prints tables (default) or JSON lines
//! (`--json`); `export` writes a bundle file. With `--log-key` it also checks what it receives:
//! checkpoint signatures, inclusion and consistency proofs, and the exported bundle. Against an
//! audit hub, `--origin` picks one of the logs it serves; searches and reports from a hub carry
//! each entry's origin, printed as a first ORIGIN column (and an `origin` JSON field).
//!
//! Client side only: it uses the generated tonic client and must not import the server, the store
//! or RocksDB.

use super::pb::audit_query_client::AuditQueryClient;
use super::pb::{
    ActorReportRequest, CallContext, CheckpointAtRequest, ConsistencyProofRequest,
    CoverageReportRequest, ExportRequest, Filter, GetEntryRequest, LatestCheckpointRequest,
    ListAlertsRequest, LoggedEntry, RedactValuesRequest, ReviewAlertRequest, SearchRequest,
    SubjectEvent, SubjectReportRequest, export_response, list_alerts_response, search_response,
    subject_report_response,
};
use super::service::AUDIT_SEQ_HEADER;
use crate::keys;
use crate::log::checkpoint::open_checkpoint;
use crate::log::entry::{AuditPurpose, EntryKind, Operation};
use crate::log::epoch::LogKeys;
use crate::log::hash::{Hash, leaf_hash};
use crate::log::merkle::{verify_consistency, verify_inclusion};
use crate::render::{entry_json, parse_rfc3339, rfc3339_utc};
use crate::verify::bundle::{BundleWriter, ProvedEntry, verify_bundle};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Connection, purpose and output options shared by every `s62 query` subcommand.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The query listener, HOST:PORT.
    #[arg(long)]
    pub addr: String,
    /// CA certificate (PEM) that issued the server's certificate.
    #[arg(long)]
    pub ca: PathBuf,
    /// Your auditor client certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Name the server certificate must carry (default: the host part of --addr).
    #[arg(long)]
    pub server_name: Option<String>,
    /// Why you are using the log (s62(4)/(5)): lawfulness, self-monitoring,
    /// integrity-and-security, criminal-proceedings or commissioner-request.
    #[arg(long)]
    pub purpose: String,
    /// The case, complaint or request reference this query belongs to.
    #[arg(long = "case")]
    pub case_reference: String,
    /// Print JSON lines instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The log's verifier key file (as `s62 keygen` wrote it): check signatures and proofs locally.
    #[arg(long)]
    pub log_key: Option<PathBuf>,
    /// On an audit hub: the log to read, by its checkpoint origin. Searches and reports then read
    /// only that log (default: every log the hub follows); entry, checkpoint, consistency,
    /// coverage-report, export and redact need it when the hub follows more than one log.
    #[arg(long, default_value = "")]
    pub origin: String,
    #[command(subcommand)]
    pub command: QueryCommand,
}

/// Which entries (every option given must match).
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Actor id.
    #[arg(long)]
    pub actor: Option<String>,
    /// Data subject id (asked for or returned).
    #[arg(long)]
    pub subject: Option<String>,
    /// Record id (asked for or returned).
    #[arg(long)]
    pub record: Option<String>,
    /// Recipient of a disclosure.
    #[arg(long)]
    pub recipient: Option<String>,
    /// collection, alteration, consultation, disclosure, combination or erasure.
    #[arg(long)]
    pub operation: Option<String>,
    /// intent, outcome, denied, audit-query, admin, redaction, erasure-check, alert or
    /// alert-review.
    #[arg(long)]
    pub kind: Option<String>,
    /// Route rule name.
    #[arg(long)]
    pub route: Option<String>,
    /// A case reference the entry was made under, exactly: an officer's (`x-s62-case-ref`) or
    /// an auditor's (`--case`). Not your own `--case`, which says why you are asking.
    #[arg(long = "case-ref")]
    pub case_reference: Option<String>,
    /// A purpose the entry was made for, exactly: an officer's purpose code (`investigation`) or
    /// an auditor's purpose (`self-monitoring`). Not your own `--purpose`.
    #[arg(long = "purpose-code")]
    pub purpose_code: Option<String>,
    /// From this time on (RFC 3339, e.g. 2026-11-01T00:00:00Z or 2026-11-01T00:00:00+01:00).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum QueryCommand {
    /// Entries matching a filter, oldest first, one page at a time.
    Search {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Continue from a previous page.
        #[arg(long)]
        page_token: Option<String>,
        /// Fetch every page (each page is a logged call).
        #[arg(long)]
        all: bool,
    },
    /// One entry with its inclusion proof.
    Entry {
        seq: u64,
        /// Prove against the checkpoint of this size (default: the latest).
        #[arg(long, default_value_t = 0)]
        tree_size: u64,
    },
    /// Subject access report: every logged operation on one person's data.
    Report {
        subject: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// Write a self-verifying bundle of the matching entries (check it with `s62 verify-bundle`).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// Bundle file to write.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this many entries (0 = all).
        #[arg(long, default_value_t = 0)]
        max_entries: u64,
    },
    /// The latest signed checkpoint (or the one at --size).
    Checkpoint {
        #[arg(long)]
        size: Option<u64>,
    },
    /// Remove personal values of the matching entries (dpo and commissioner only; format-2 and format-3 logs).
    /// The leaves and their commitments stay, so the log still verifies; a redaction entry
    /// records who, why and what.
    Redact {
        #[command(flatten)]
        filter: FilterArgs,
        /// correction, court-order or erasure-request.
        #[arg(long)]
        reason: String,
        /// Personal field to remove (repeatable; e.g. subject_id, justification_text). Default:
        /// every personal field.
        #[arg(long = "field")]
        fields: Vec<String>,
        /// A note kept in the redaction entry (no personal data).
        #[arg(long, default_value = "")]
        detail: String,
        /// Refuse if more entries than this match (0 = the largest one redaction may name).
        #[arg(long, default_value_t = 0)]
        max_entries: u64,
    },
    /// One officer's activity: the subjects their requests named, how many requests stated a
    /// justification and a case reference, their refusals (dpo and commissioner by default).
    ActorReport {
        /// The officer's actor id.
        actor: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Print CSV (`measure,key,value` rows) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Route-config health: requests by route rule, how many fell to the method defaults, named
    /// no data subject, or succeeded without returned ids (dpo and commissioner by default).
    CoverageReport {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Print CSV (one row per route, then a total row) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Alerts, oldest first, each with its latest review outcome or `unreviewed` (dpo and
    /// commissioner by default). Each page is a logged call.
    Alerts {
        /// Only alerts of this rule (`zombie`, ...).
        #[arg(long)]
        rule: Option<String>,
        /// Only alerts nobody has reviewed yet.
        #[arg(long)]
        unreviewed: bool,
        /// Only alerts at or after this seq.
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Continue from a previous page.
        #[arg(long)]
        page_token: Option<String>,
        /// Fetch every page.
        #[arg(long)]
        all: bool,
        /// Print CSV (one row per alert) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Record your finding on an alert (dpo and commissioner by default). The review is itself an
    /// entry in the log, under your purpose and case reference; a later review supersedes it.
    Review {
        /// The alert's seq.
        #[arg(long = "alert")]
        alert_seq: u64,
        /// justified, misuse, false-positive or referred.
        #[arg(long)]
        outcome: String,
    },
    /// Prove that the log at OLD size is a prefix of the log now (or at --new).
    Consistency {
        old: u64,
        #[arg(long, default_value_t = 0)]
        new: u64,
    },
}

/// Runs `s62 query ...`.
pub fn run(args: QueryArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

struct Session {
    client: AuditQueryClient<Channel>,
    context: CallContext,
    json: bool,
    keys: Option<LogKeys>,
    /// `--origin` ("" = none).
    origin: String,
}

async fn run_async(args: QueryArgs) -> Result<()> {
    let purpose = AuditPurpose::from_label(&args.purpose).ok_or_else(|| {
        anyhow!(
            "--purpose {:?} is not one of lawfulness, self-monitoring, integrity-and-security, \
             criminal-proceedings, commissioner-request",
            args.purpose
        )
    })?;
    let keys = args
        .log_key
        .as_deref()
        .map(keys::read_log_keys)
        .transpose()?;
    let channel = connect(&args).await?;
    let mut s = Session {
        client: AuditQueryClient::new(channel),
        context: CallContext {
            purpose: purpose as i32,
            case_reference: args.case_reference.clone(),
        },
        json: args.json,
        keys,
        origin: args.origin.clone(),
    };
    match args.command {
        QueryCommand::Search {
            filter,
            page_size,
            page_token,
            all,
        } => search(&mut s, &filter, page_size, page_token, all).await,
        QueryCommand::Entry { seq, tree_size } => get_entry(&mut s, seq, tree_size).await,
        QueryCommand::Report {
            subject,
            since,
            until,
        } => report(&mut s, subject, since, until).await,
        QueryCommand::Export {
            filter,
            out,
            max_entries,
        } => export(&mut s, &filter, &out, max_entries).await,
        QueryCommand::Checkpoint { size } => checkpoint(&mut s, size).await,
        QueryCommand::ActorReport {
            actor,
            since,
            until,
            csv,
        } => actor_report(&mut s, actor, since, until, csv).await,
        QueryCommand::CoverageReport { since, until, csv } => {
            coverage_report(&mut s, since, until, csv).await
        }
        QueryCommand::Consistency { old, new } => consistency(&mut s, old, new).await,
        QueryCommand::Alerts {
            rule,
            unreviewed,
            from_seq,
            page_size,
            page_token,
            all,
            csv,
        } => {
            let request = ListAlertsRequest {
                context: Some(s.context.clone()),
                rule: rule.unwrap_or_default(),
                unreviewed_only: unreviewed,
                from_seq,
                page_size,
                page_token: String::new(),
            };
            alerts(&mut s, request, page_token, all, csv).await
        }
        QueryCommand::Review { alert_seq, outcome } => {
            let r = s
                .client
                .review_alert(ReviewAlertRequest {
                    context: Some(s.context.clone()),
                    alert_seq,
                    outcome: outcome.clone(),
                })
                .await
                .map_err(|e| status_error("ReviewAlert", e))?
                .into_inner();
            if s.json {
                println!(
                    "{}",
                    json!({"alert_seq": alert_seq, "outcome": outcome, "review_seq": r.review_seq, "checkpoint_size": r.checkpoint_size})
                );
            } else {
                println!(
                    "alert {alert_seq} reviewed as {outcome}: review entry {}, covered by the checkpoint of size {}",
                    r.review_seq, r.checkpoint_size
                );
            }
            Ok(())
        }
        QueryCommand::Redact {
            filter,
            reason,
            fields,
            detail,
            max_entries,
        } => {
            let r = s
                .client
                .redact_values(RedactValuesRequest {
                    context: Some(s.context.clone()),
                    filter: Some(filter_pb(&filter, &s.origin)?),
                    reason,
                    fields,
                    detail,
                    max_entries,
                })
                .await
                .map_err(|e| status_error("RedactValues", e))?
                .into_inner();
            if s.json {
                println!(
                    "{}",
                    json!({"entries": r.entries, "redaction_seq": r.redaction_seq, "checkpoint_size": r.checkpoint_size})
                );
            } else {
                match r.redaction_seq {
                    Some(seq) => println!(
                        "redacted values of {} entries; redaction entry {seq}, covered by the checkpoint of size {}",
                        r.entries, r.checkpoint_size
                    ),
                    None => println!("no entry matched; nothing was redacted"),
                }
            }
            Ok(())
        }
    }
}

/// The host part of HOST:PORT (without IPv6 brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

async fn connect(args: &QueryArgs) -> Result<Channel> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&args.ca)?))
        .identity(Identity::from_pem(read(&args.cert)?, read(&args.key)?))
        .domain_name(
            args.server_name
                .clone()
                .unwrap_or_else(|| host_of(&args.addr).to_owned()),
        );
    Endpoint::from_shared(format!("https://{}", args.addr))
        .with_context(|| format!("--addr {:?}", args.addr))?
        .tls_config(tls)
        .context("TLS client configuration")?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.addr))
}

fn status_error(call: &str, s: tonic::Status) -> anyhow::Error {
    anyhow!("{call} refused: {} ({:?})", s.message(), s.code())
}

fn audit_seq<T>(r: &tonic::Response<T>) -> Option<u64> {
    r.metadata()
        .get(AUDIT_SEQ_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn time_arg(name: &str, v: Option<&String>) -> Result<i64> {
    match v {
        None => Ok(0),
        Some(s) => parse_rfc3339(s).ok_or_else(|| {
            anyhow!("--{name} {s:?} is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)")
        }),
    }
}

fn filter_pb(f: &FilterArgs, origin: &str) -> Result<Filter> {
    let operation = match &f.operation {
        None => Operation::Unspecified,
        Some(o) => {
            Operation::from_label(o).ok_or_else(|| anyhow!("--operation {o:?} is unknown"))?
        }
    };
    let kind = match &f.kind {
        None => EntryKind::Unspecified,
        Some(k) => EntryKind::from_label(k).ok_or_else(|| anyhow!("--kind {k:?} is unknown"))?,
    };
    Ok(Filter {
        actor: f.actor.clone().unwrap_or_default(),
        subject: f.subject.clone().unwrap_or_default(),
        record: f.record.clone().unwrap_or_default(),
        recipient: f.recipient.clone().unwrap_or_default(),
        operation: operation as i32,
        kind: kind as i32,
        route: f.route.clone().unwrap_or_default(),
        case_reference: f.case_reference.clone().unwrap_or_default(),
        purpose: f.purpose_code.clone().unwrap_or_default(),
        since_unix_nanos: time_arg("since", f.since.as_ref())?,
        until_unix_nanos: time_arg("until", f.until.as_ref())?,
        origin: origin.to_owned(),
    })
}

/// Table rows with an ORIGIN column first when any result carries an origin (from a hub), else as
/// they are.
fn with_origins(
    headers: &[&'static str],
    rows: Vec<(String, Vec<String>)>,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    if rows.iter().all(|(origin, _)| origin.is_empty()) {
        return (headers.to_vec(), rows.into_iter().map(|(_, r)| r).collect());
    }
    let headers = std::iter::once("ORIGIN")
        .chain(headers.iter().copied())
        .collect();
    let rows = rows
        .into_iter()
        .map(|(origin, r)| std::iter::once(origin).chain(r).collect())
        .collect();
    (headers, rows)
}

/// A result's JSON with its `origin`, when it carries one.
fn json_with_origin(mut v: Value, origin: &str) -> Value {
    if !origin.is_empty() {
        v["origin"] = json!(origin);
    }
    v
}

fn hashes(raw: &[Vec<u8>]) -> Result<Vec<Hash>> {
    raw.iter()
        .map(|b| Hash::from_slice(b).ok_or_else(|| anyhow!("a proof node is not 32 bytes")))
        .collect()
}

/// Prints rows as an aligned table; cells longer than 48 characters are cut, except in the last
/// column (the justification, which an auditor needs whole).
fn table(headers: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let cut = |s: &str| -> String {
        if s.chars().count() > 48 {
            format!("{}…", s.chars().take(47).collect::<String>())
        } else {
            s.to_owned()
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let last = r.len().saturating_sub(1);
            r.iter()
                .enumerate()
                .map(|(i, c)| if i == last { c.clone() } else { cut(c) })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |out: &mut std::io::StdoutLock<'_>, cells: Vec<String>| -> Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        writeln!(out, "{}", s.trim_end())?;
        Ok(())
    };
    line(&mut out, headers.iter().map(|h| (*h).to_owned()).collect())?;
    for r in rows {
        line(&mut out, r)?;
    }
    Ok(())
}

fn entry_row(le: &LoggedEntry) -> Vec<String> {
    let Some(e) = &le.entry else {
        return vec![le.seq.to_string()];
    };
    let kind = EntryKind::try_from(e.kind).unwrap_or(EntryKind::Unspecified);
    let op = Operation::try_from(e.operation).unwrap_or(Operation::Unspecified);
    let why = if let Some(q) = &e.audit_query {
        let purpose = AuditPurpose::try_from(q.purpose).unwrap_or(AuditPurpose::Unspecified);
        format!("{} {} [{}]", q.call, purpose.label(), q.case_reference)
    } else if let Some(d) = &e.denial {
        format!("denied: {}", d.reason)
    } else if let Some(j) = &e.justification {
        format!("{}: {} [{}]", j.purpose_code, j.text, j.case_reference)
    } else {
        String::new()
    };
    let mut subjects = e.subject_ids.clone();
    if let Some(o) = &e.outcome {
        subjects.extend(o.returned_subject_ids.iter().map(|s| format!("→{s}")));
    }
    vec![
        le.seq.to_string(),
        rfc3339_utc(e.time_unix_nanos),
        kind.label().to_owned(),
        op.label().to_owned(),
        e.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
        subjects.join(","),
        e.recipients.join(","),
        why,
    ]
}

async fn search(
    s: &mut Session,
    filter: &FilterArgs,
    page_size: u32,
    mut page_token: Option<String>,
    all: bool,
) -> Result<()> {
    let filter = filter_pb(filter, &s.origin)?;
    let mut rows = Vec::new();
    loop {
        let response = s
            .client
            .search(SearchRequest {
                context: Some(s.context.clone()),
                filter: Some(filter.clone()),
                page_size,
                page_token: page_token.clone().unwrap_or_default(),
            })
            .await
            .map_err(|e| status_error("Search", e))?;
        let seq = audit_seq(&response);
        let mut stream = response.into_inner();
        let mut next = String::new();
        while let Some(item) = stream
            .message()
            .await
            .map_err(|e| status_error("Search", e))?
        {
            match item.item {
                Some(search_response::Item::Entry(le)) => {
                    if s.json {
                        let opened = opened_entry(&le)?;
                        let v = entry_json(&opened.entry, &le.leaf, &le.redacted);
                        println!("{}", json_with_origin(v, &le.origin));
                    } else {
                        rows.push((le.origin.clone(), entry_row(&le)));
                    }
                }
                Some(search_response::Item::PageEnd(end)) => next = end.next_page_token,
                None => {}
            }
        }
        if let Some(seq) = seq {
            eprintln!("(this search is logged as audit entry {seq})");
        }
        if next.is_empty() {
            break;
        }
        if !all {
            eprintln!("more results: --page-token {next}");
            break;
        }
        page_token = Some(next);
    }
    if !s.json {
        let (headers, rows) = with_origins(&ENTRY_COLUMNS, rows);
        table(&headers, &rows)?;
    }
    Ok(())
}

/// The columns of [`entry_row`].
const ENTRY_COLUMNS: [&str; 8] = [
    "SEQ",
    "TIME",
    "KIND",
    "OPERATION",
    "ACTOR",
    "SUBJECTS",
    "RECIPIENTS",
    "WHY",
];

async fn alerts(
    s: &mut Session,
    mut request: ListAlertsRequest,
    mut page_token: Option<String>,
    all: bool,
    csv: bool,
) -> Result<()> {
    use super::report_output::{ALERT_COLUMNS, alert_row, alerts_csv, latest_review};
    let mut items = Vec::new();
    loop {
        request.page_token = page_token.clone().unwrap_or_default();
        let response = s
            .client
            .list_alerts(request.clone())
            .await
            .map_err(|e| status_error("ListAlerts", e))?;
        let seq = audit_seq(&response);
        let mut stream = response.into_inner();
        let mut next = String::new();
        while let Some(item) = stream
            .message()
            .await
            .map_err(|e| status_error("ListAlerts", e))?
        {
            match item.item {
                Some(list_alerts_response::Item::Alert(a)) => {
                    if s.json && !csv {
                        let json_of = |le: &LoggedEntry| -> Result<Value> {
                            let opened = opened_entry(le)?;
                            Ok(entry_json(&opened.entry, &le.leaf, &le.redacted))
                        };
                        let alert = a.alert.as_ref().map(json_of).transpose()?;
                        let reviews = a.reviews.iter().map(json_of).collect::<Result<Vec<_>>>()?;
                        println!(
                            "{}",
                            json!({"alert": alert, "reviews": reviews, "review": latest_review(&a)})
                        );
                    } else {
                        items.push(a);
                    }
                }
                Some(list_alerts_response::Item::PageEnd(end)) => next = end.next_page_token,
                None => {}
            }
        }
        if let Some(seq) = seq {
            eprintln!("(this listing is logged as audit entry {seq})");
        }
        if next.is_empty() {
            break;
        }
        if !all {
            eprintln!("more alerts: --page-token {next}");
            break;
        }
        page_token = Some(next);
    }
    if csv {
        print!("{}", alerts_csv(&items));
    } else if !s.json {
        let headers: Vec<String> = ALERT_COLUMNS.iter().map(|c| c.to_uppercase()).collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = items.iter().map(alert_row).collect();
        table(&headers, &rows)?;
    }
    Ok(())
}

/// The entry as its stored bytes say, with the values the server sent checked against the leaf's
/// commitments: what is shown never rests on the server's own decoding.
fn opened_entry(le: &LoggedEntry) -> Result<crate::log::seal::Opened> {
    use prost::Message;
    let leaf = crate::log::entry::decode(&le.leaf).map_err(|e| {
        anyhow!(
            "entry {}: the server sent bytes that are not an entry: {e}",
            le.seq
        )
    })?;
    let values = crate::log::entry::EntryValues::decode(le.values.as_slice()).map_err(|e| {
        anyhow!(
            "entry {}: the server sent values that do not decode: {e}",
            le.seq
        )
    })?;
    crate::log::seal::unseal(&leaf, &values).map_err(|e| {
        anyhow!(
            "entry {}: the server's values do not match the leaf: {e}",
            le.seq
        )
    })
}

/// Checks a signed checkpoint note against the pinned keys, when there are any.
fn check_note(s: &Session, note: &str) -> Result<Option<String>> {
    let Some(keys) = &s.keys else {
        return Ok(None);
    };
    let (_, signers) = open_checkpoint(note, keys.keys(), None)
        .map_err(|e| anyhow!("the checkpoint does not verify with --log-key: {e}"))?;
    Ok(signers.first().map(|k| k.name().to_owned()))
}

async fn get_entry(s: &mut Session, seq: u64, tree_size: u64) -> Result<()> {
    let response = s
        .client
        .get_entry(GetEntryRequest {
            context: Some(s.context.clone()),
            seq,
            tree_size,
            origin: s.origin.clone(),
        })
        .await
        .map_err(|e| status_error("GetEntry", e))?;
    let audit = audit_seq(&response);
    let r = response.into_inner();
    let le = r.entry.ok_or_else(|| anyhow!("the server sent no entry"))?;
    let cp = r
        .checkpoint
        .ok_or_else(|| anyhow!("the server sent no checkpoint"))?;
    let root = Hash::from_slice(&cp.root_hash).ok_or_else(|| anyhow!("bad root hash"))?;
    let proof = hashes(&r.inclusion_proof)?;
    verify_inclusion(&leaf_hash(&le.leaf), le.seq, cp.size, &proof, &root)
        .map_err(|e| anyhow!("the inclusion proof does NOT verify: {e}"))?;
    let signer = check_note(s, &cp.note)?;
    let signature = signer.map_or_else(
        || "not checked (pass --log-key)".to_owned(),
        |k| format!("verified ({k})"),
    );
    if s.json {
        let opened = opened_entry(&le)?;
        println!(
            "{}",
            json!({
                "entry": json_with_origin(entry_json(&opened.entry, &le.leaf, &le.redacted), &le.origin),
                "tree_size": cp.size,
                "checkpoint": cp.note,
                "inclusion_proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
                "proof_verified": true,
                "signature": signature,
                "audit_seq": audit,
            })
        );
    } else {
        let (headers, rows) =
            with_origins(&ENTRY_COLUMNS, vec![(le.origin.clone(), entry_row(&le))]);
        table(&headers, &rows)?;
        println!(
            "inclusion proof: verified against the checkpoint of size {} (root {})",
            cp.size,
            root.to_base64()
        );
        println!("checkpoint signature: {signature}");
    }
    Ok(())
}

fn event_json(ev: &SubjectEvent) -> Value {
    let kind = EntryKind::try_from(ev.kind).unwrap_or(EntryKind::Unspecified);
    let op = Operation::try_from(ev.operation).unwrap_or(Operation::Unspecified);
    json!({
        "seq": ev.seq,
        "time": rfc3339_utc(ev.time_unix_nanos),
        "kind": kind.label(),
        "operation": op.label(),
        "actor": ev.actor.as_ref().map(|a| json!({"id": a.id, "display_name": a.display_name, "roles": a.roles})),
        "justification": ev.justification.as_ref().map(|j| json!({
            "purpose": j.purpose_code, "text": j.text, "case_reference": j.case_reference,
        })),
        "justification_seq": ev.justification_seq,
        "recipients": ev.recipients,
        "records": ev.record_ids,
        "asked": ev.asked,
        "returned": ev.returned,
        "method": ev.method,
        "route": ev.route,
        "status": ev.status,
        "denial_reason": ev.denial_reason,
        "answers_seq": ev.answers_seq,
    })
}

/// The columns of a subject report's rows.
const EVENT_COLUMNS: [&str; 8] = [
    "TIME",
    "SEQ",
    "OPERATION",
    "KIND",
    "WHO",
    "SUBJECT",
    "TO",
    "WHY",
];

async fn report(
    s: &mut Session,
    subject: String,
    since: Option<String>,
    until: Option<String>,
) -> Result<()> {
    let response = s
        .client
        .subject_report(SubjectReportRequest {
            context: Some(s.context.clone()),
            subject,
            since_unix_nanos: time_arg("since", since.as_ref())?,
            until_unix_nanos: time_arg("until", until.as_ref())?,
            origin: s.origin.clone(),
        })
        .await
        .map_err(|e| status_error("SubjectReport", e))?;
    let audit = audit_seq(&response);
    let mut stream = response.into_inner();
    let mut rows = Vec::new();
    let mut summary = None;
    while let Some(item) = stream
        .message()
        .await
        .map_err(|e| status_error("SubjectReport", e))?
    {
        match item.item {
            Some(subject_report_response::Item::Event(ev)) => {
                if s.json {
                    println!("{}", json_with_origin(event_json(&ev), &ev.origin));
                } else {
                    let op = Operation::try_from(ev.operation).unwrap_or(Operation::Unspecified);
                    let kind = EntryKind::try_from(ev.kind).unwrap_or(EntryKind::Unspecified);
                    let why = ev.justification.as_ref().map_or(String::new(), |j| {
                        format!("{}: {} [{}]", j.purpose_code, j.text, j.case_reference)
                    });
                    let how = match (ev.asked, ev.returned) {
                        (true, true) => "asked+returned",
                        (true, false) => "asked",
                        (false, true) => "returned",
                        (false, false) => "",
                    };
                    rows.push((
                        ev.origin.clone(),
                        vec![
                            rfc3339_utc(ev.time_unix_nanos),
                            ev.seq.to_string(),
                            op.label().to_owned(),
                            kind.label().to_owned(),
                            ev.actor.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
                            how.to_owned(),
                            ev.recipients.join(","),
                            if ev.denial_reason.is_empty() {
                                why
                            } else {
                                format!("denied: {}", ev.denial_reason)
                            },
                        ],
                    ));
                }
            }
            Some(subject_report_response::Item::Summary(sm)) => summary = Some(sm),
            None => {}
        }
    }
    let sm = summary.ok_or_else(|| anyhow!("the report ended without its summary"))?;
    if s.json {
        let by_op: serde_json::Map<String, Value> = sm
            .by_operation
            .iter()
            .map(|c| {
                let op = Operation::try_from(c.operation).unwrap_or(Operation::Unspecified);
                (op.label().to_owned(), json!(c.count))
            })
            .collect();
        println!(
            "{}",
            json!({"summary": {"events": sm.events, "by_operation": by_op, "actors": sm.actors, "recipients": sm.recipients, "audit_seq": audit}})
        );
    } else {
        let (headers, rows) = with_origins(&EVENT_COLUMNS, rows);
        table(&headers, &rows)?;
        let by_op: Vec<String> = sm
            .by_operation
            .iter()
            .map(|c| {
                let op = Operation::try_from(c.operation).unwrap_or(Operation::Unspecified);
                format!("{} {}", c.count, op.label())
            })
            .collect();
        println!(
            "{} events ({}); by {}; disclosed to {}",
            sm.events,
            by_op.join(", "),
            if sm.actors.is_empty() {
                "nobody".into()
            } else {
                sm.actors.join(", ")
            },
            if sm.recipients.is_empty() {
                "nobody".into()
            } else {
                sm.recipients.join(", ")
            },
        );
        if let Some(seq) = audit {
            println!("(this report is logged as audit entry {seq})");
        }
    }
    Ok(())
}

async fn actor_report(
    s: &mut Session,
    actor: String,
    since: Option<String>,
    until: Option<String>,
    csv: bool,
) -> Result<()> {
    use super::report_output::{actor_csv, actor_json};
    let response = s
        .client
        .actor_report(ActorReportRequest {
            context: Some(s.context.clone()),
            actor,
            since_unix_nanos: time_arg("since", since.as_ref())?,
            until_unix_nanos: time_arg("until", until.as_ref())?,
            origin: s.origin.clone(),
        })
        .await
        .map_err(|e| status_error("ActorReport", e))?;
    let audit = audit_seq(&response);
    let r = response.into_inner();
    if csv {
        print!("{}", actor_csv(&r));
    } else if s.json {
        let mut v = actor_json(&r);
        v["audit_seq"] = json!(audit);
        if !r.origins.is_empty() {
            v["origins"] = json!(r.origins);
        }
        println!("{v}");
    } else {
        let ops: Vec<String> = r
            .by_operation
            .iter()
            .map(|c| {
                let op = Operation::try_from(c.operation).unwrap_or(Operation::Unspecified);
                format!("{} {}", c.count, op.label())
            })
            .collect();
        println!(
            "{}: {} requests ({}) in {} entries",
            r.actor,
            r.requests,
            ops.join(", "),
            r.entries
        );
        if !r.origins.is_empty() {
            println!("across the logs {}", r.origins.join(", "));
        }
        println!(
            "with a justification: {} of {}; with a case reference: {} of {}",
            r.with_justification, r.requests, r.with_case_reference, r.requests
        );
        let reasons: Vec<String> = r
            .denials_by_reason
            .iter()
            .map(|d| format!("{} {}", d.count, d.reason))
            .collect();
        println!("refused: {} ({})", r.denials, reasons.join(", "));
        println!(
            "alerts: {} (found to be misuse on review: {})",
            r.alerts, r.alerts_misuse
        );
        if r.redacted_subject_ids > 0 {
            println!("redacted subject ids: {}", r.redacted_subject_ids);
        }
        let rows: Vec<Vec<String>> = r
            .subjects
            .iter()
            .map(|c| {
                vec![
                    c.subject.clone(),
                    c.requests.to_string(),
                    c.asked.to_string(),
                    c.returned.to_string(),
                ]
            })
            .collect();
        table(&["SUBJECT", "REQUESTS", "ASKED", "RETURNED"], &rows)?;
    }
    if let Some(seq) = audit {
        eprintln!("(this report is logged as audit entry {seq})");
    }
    Ok(())
}

async fn coverage_report(
    s: &mut Session,
    since: Option<String>,
    until: Option<String>,
    csv: bool,
) -> Result<()> {
    use super::report_output::{coverage_csv, coverage_json};
    let response = s
        .client
        .coverage_report(CoverageReportRequest {
            context: Some(s.context.clone()),
            since_unix_nanos: time_arg("since", since.as_ref())?,
            until_unix_nanos: time_arg("until", until.as_ref())?,
            origin: s.origin.clone(),
        })
        .await
        .map_err(|e| status_error("CoverageReport", e))?;
    let audit = audit_seq(&response);
    let r = response.into_inner();
    if csv {
        print!("{}", coverage_csv(&r));
    } else if s.json {
        let mut v = coverage_json(&r);
        v["audit_seq"] = json!(audit);
        println!("{v}");
    } else {
        let rows: Vec<Vec<String>> = r
            .routes
            .iter()
            .map(|c| {
                vec![
                    if c.route.is_empty() {
                        "(method default)".to_owned()
                    } else {
                        c.route.clone()
                    },
                    c.requests.to_string(),
                    c.denied.to_string(),
                    c.without_subjects.to_string(),
                    c.succeeded.to_string(),
                    c.succeeded_without_returned_ids.to_string(),
                ]
            })
            .collect();
        table(
            &[
                "ROUTE",
                "REQUESTS",
                "DENIED",
                "NO SUBJECT",
                "2XX",
                "2XX WITHOUT IDS",
            ],
            &rows,
        )?;
        println!(
            "{} requests: {} by the method defaults, {} naming no data subject; {} refused; \
             {} of {} successful responses carried no returned id",
            r.requests,
            r.method_default,
            r.without_subjects,
            r.denied,
            r.succeeded_without_returned_ids,
            r.succeeded
        );
    }
    if let Some(seq) = audit {
        eprintln!("(this report is logged as audit entry {seq})");
    }
    Ok(())
}

/// Runs an Export call and writes the bundle to `out` (via `out.partial`, renamed when complete).
/// Returns the number of entries written.
pub async fn export_to_file(
    client: &mut AuditQueryClient<Channel>,
    context: CallContext,
    filter: Filter,
    max_entries: u64,
    out: &Path,
) -> Result<u64> {
    let response = client
        .export(ExportRequest {
            context: Some(context),
            filter: Some(filter),
            max_entries,
        })
        .await
        .map_err(|e| status_error("Export", e))?;
    let mut stream = response.into_inner();
    let tmp = out.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut file = Some(std::io::BufWriter::new(file));
    let mut writer = None;
    let mut ended = None;
    while let Some(item) = stream
        .message()
        .await
        .map_err(|e| status_error("Export", e))?
    {
        match item.item {
            Some(export_response::Item::Header(h)) => {
                let cp = h
                    .checkpoint
                    .ok_or_else(|| anyhow!("header without checkpoint"))?;
                let audit = h
                    .audit
                    .ok_or_else(|| anyhow!("header without its audit entry"))?;
                let out = file.take().ok_or_else(|| anyhow!("two bundle headers"))?;
                writer = Some(BundleWriter::start(
                    out,
                    &cp.origin,
                    &h.verifier_key,
                    &cp.note,
                    ProvedEntry {
                        seq: audit.seq,
                        leaf: &audit.leaf,
                        values: &audit.values,
                        proof: &hashes(&audit.inclusion_proof)?,
                    },
                )?);
            }
            Some(export_response::Item::Entry(e)) => {
                let w = writer
                    .as_mut()
                    .ok_or_else(|| anyhow!("an entry before the bundle header"))?;
                w.entry(ProvedEntry {
                    seq: e.seq,
                    leaf: &e.leaf,
                    values: &e.values,
                    proof: &hashes(&e.inclusion_proof)?,
                })?;
            }
            Some(export_response::Item::Redaction(e)) => {
                let w = writer
                    .as_mut()
                    .ok_or_else(|| anyhow!("a redaction entry before the bundle header"))?;
                w.redaction(ProvedEntry {
                    seq: e.seq,
                    leaf: &e.leaf,
                    values: &e.values,
                    proof: &hashes(&e.inclusion_proof)?,
                })?;
            }
            Some(export_response::Item::End(end)) => ended = Some((end.entries, end.redactions)),
            None => {}
        }
    }
    let w = writer.ok_or_else(|| anyhow!("the export sent no header"))?;
    let Some(announced) = ended else {
        bail!(
            "the export stream ended early; {} is incomplete",
            tmp.display()
        );
    };
    let (_, written, redactions) = w.finish()?;
    if announced != (written, redactions) {
        bail!(
            "the server announced {} entries and {} redaction entries but sent {written} and {redactions}",
            announced.0,
            announced.1
        );
    }
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(written)
}

async fn export(s: &mut Session, filter: &FilterArgs, out: &Path, max_entries: u64) -> Result<()> {
    let written = export_to_file(
        &mut s.client,
        s.context.clone(),
        filter_pb(filter, &s.origin)?,
        max_entries,
        out,
    )
    .await?;
    let verdict = match &s.keys {
        Some(keys) => {
            let f = std::io::BufReader::new(std::fs::File::open(out)?);
            let r = verify_bundle(f, keys, None)
                .map_err(|e| anyhow!("the bundle does NOT verify: {e}"))?;
            format!(
                "verified: {} entries proved against the checkpoint of size {}",
                r.entries, r.checkpoint_size
            )
        }
        None => "not verified here (pass --log-key, or run s62 verify-bundle)".to_owned(),
    };
    if s.json {
        println!(
            "{}",
            json!({"file": out.display().to_string(), "entries": written, "verified": s.keys.is_some()})
        );
    } else {
        println!("wrote {written} entries to {}; {verdict}", out.display());
    }
    Ok(())
}

async fn checkpoint(s: &mut Session, size: Option<u64>) -> Result<()> {
    let r = match size {
        None => s
            .client
            .latest_checkpoint(LatestCheckpointRequest {
                context: Some(s.context.clone()),
                origin: s.origin.clone(),
            })
            .await
            .map_err(|e| status_error("LatestCheckpoint", e))?,
        Some(size) => s
            .client
            .checkpoint_at(CheckpointAtRequest {
                context: Some(s.context.clone()),
                size,
                origin: s.origin.clone(),
            })
            .await
            .map_err(|e| status_error("CheckpointAt", e))?,
    }
    .into_inner();
    let cp = r
        .checkpoint
        .ok_or_else(|| anyhow!("the server sent no checkpoint"))?;
    let signer = check_note(s, &cp.note)?;
    if s.json {
        println!(
            "{}",
            json!({"origin": cp.origin, "size": cp.size, "root": Hash::from_slice(&cp.root_hash).map(|h| h.to_base64()),
                   "note": cp.note, "verifier_key": r.verifier_key, "signature_verified": signer.is_some()})
        );
    } else {
        print!("{}", cp.note);
        if let Some(k) = signer {
            eprintln!("signature verified ({k})");
        }
    }
    Ok(())
}

async fn consistency(s: &mut Session, old: u64, new: u64) -> Result<()> {
    let r = s
        .client
        .consistency_proof(ConsistencyProofRequest {
            context: Some(s.context.clone()),
            old_size: old,
            new_size: new,
            origin: s.origin.clone(),
        })
        .await
        .map_err(|e| status_error("ConsistencyProof", e))?
        .into_inner();
    let proof = hashes(&r.proof)?;
    let mut roots = Vec::new();
    for size in [r.old_size, r.new_size] {
        let cp = s
            .client
            .checkpoint_at(CheckpointAtRequest {
                context: Some(s.context.clone()),
                size,
                origin: s.origin.clone(),
            })
            .await
            .map_err(|e| status_error("CheckpointAt", e))?
            .into_inner()
            .checkpoint
            .ok_or_else(|| anyhow!("no checkpoint"))?;
        check_note(s, &cp.note)?;
        roots.push(Hash::from_slice(&cp.root_hash).ok_or_else(|| anyhow!("bad root"))?);
    }
    verify_consistency(r.old_size, r.new_size, &proof, &roots[0], &roots[1])
        .map_err(|e| anyhow!("the consistency proof does NOT verify: {e}"))?;
    let signed = if s.keys.is_some() {
        "signed checkpoints"
    } else {
        "checkpoints (signatures not checked: pass --log-key)"
    };
    if s.json {
        println!(
            "{}",
            json!({"old_size": r.old_size, "new_size": r.new_size, "proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(), "verified": true})
        );
    } else {
        println!(
            "consistent: the log of size {} is a prefix of the log of size {} ({signed})",
            r.old_size, r.new_size
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_defaults_to_the_host_of_the_address() {
        assert_eq!(host_of("localhost:8443"), "localhost");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("query.example"), "query.example");
    }
}
