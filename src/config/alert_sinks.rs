//! The alert sinks of `[alerts]`: where alert entries are delivered (a webhook receiving JSON, a
//! syslog collector receiving RFC 5424 over TCP), checked into typed values with every problem
//! reported under its key path (`alerts.syslog.address: ...`).
//!
//! Only the settings: the delivery task is `crate::alerts::deliver`. Pure like the rest of
//! `config`: no file, network or clock; CA files are only resolved against the config's folder,
//! and the machine's hostname (the default `hostname`) is looked up by the delivery task.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use serde::Deserialize;

use super::check::{Checker, at};

/// IANA's example private enterprise number (RFC 5612), the default in the syslog SD-ID
/// `s62@32473`; a force may configure its own number.
pub const DOCUMENTATION_ENTERPRISE_NUMBER: u32 = 32473;

/// Headers the webhook client sets itself; a configured header may not replace them.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

/// The configured sinks; both `None` means alerts stay in the log only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertSinks {
    pub webhook: Option<WebhookConfig>,
    pub syslog: Option<SyslogConfig>,
}

impl AlertSinks {
    /// Whether any sink is configured (the delivery task has something to do).
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.syslog.is_none()
    }
}

/// `[alerts.webhook]`: each alert is POSTed as JSON to `url`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// `http://` or `https://` with a host, optionally a path and query; no credentials.
    pub url: Uri,
    /// Time allowed to connect and again for the response (default 5 s).
    pub timeout: Duration,
    /// The CA the receiver's certificate is verified against; required for https.
    pub ca_file: Option<PathBuf>,
    /// Whether the JSON carries the actor id and the subject ids (default false: the receiver
    /// looks the alert up through the purpose-bound query service).
    pub personal_data: bool,
    /// Extra headers sent with every POST (e.g. `authorization`); values are marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl WebhookConfig {
    /// Whether the receiver is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.url.scheme_str() == Some("https")
    }
}

/// `[alerts.syslog]`: each alert is an RFC 5424 message over TCP (octet-counting framing).
#[derive(Clone, Debug, PartialEq)]
pub struct SyslogConfig {
    /// The collector's host name or IP address (without brackets for IPv6).
    pub host: String,
    pub port: u16,
    /// TLS settings; `None` is plain TCP.
    pub tls: Option<SyslogTls>,
    pub facility: Facility,
    /// RFC 5424 APP-NAME (default `s62`).
    pub app_name: String,
    /// RFC 5424 HOSTNAME; `None` means the machine's hostname, looked up at start.
    pub hostname: Option<String>,
    /// The private enterprise number in the SD-ID `s62@N` (default
    /// [`DOCUMENTATION_ENTERPRISE_NUMBER`]).
    pub enterprise_number: u32,
    /// Whether messages carry the actor id (default false).
    pub personal_data: bool,
}

impl SyslogConfig {
    /// `host:port` as a connect address (IPv6 in brackets).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// TLS to the syslog collector.
#[derive(Clone, Debug, PartialEq)]
pub struct SyslogTls {
    /// The CA the collector's certificate is verified against.
    pub ca_file: PathBuf,
    /// The name the certificate must carry (default: the host of `address`).
    pub server_name: String,
}

/// A syslog facility (RFC 5424 section 6.2.1), numerically 0..=23.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facility(u8);

/// The facility names accepted, with their codes (RFC 5424 table 1, in the usual spelling).
pub const FACILITIES: [(&str, u8); 24] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

impl Facility {
    /// The default: security/authorization messages, kept private (`authpriv`, 10).
    pub const AUTHPRIV: Facility = Facility(10);

    /// The facility called `name` (see [`FACILITIES`]).
    pub fn from_name(name: &str) -> Option<Facility> {
        FACILITIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, code)| Facility(code))
    }

    /// The numerical code, 0..=23.
    pub fn code(self) -> u8 {
        self.0
    }
}

/// `[alerts.webhook]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    url: Option<String>,
    timeout: Option<String>,
    ca_file: Option<String>,
    personal_data: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// `[alerts.syslog]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyslog {
    address: Option<String>,
    tls: Option<bool>,
    ca_file: Option<String>,
    server_name: Option<String>,
    facility: Option<String>,
    app_name: Option<String>,
    hostname: Option<String>,
    enterprise_number: Option<i64>,
    personal_data: Option<bool>,
}

/// Checks `[alerts.webhook]`, found at key path `path` (e.g. `alerts.webhook`).
pub(crate) fn check_webhook(
    raw: RawWebhook,
    path: &str,
    c: &mut Checker<'_>,
) -> Option<WebhookConfig> {
    let url_key = at(path, "url");
    let url = c.required(&url_key, raw.url);
    let url = url.and_then(|u| webhook_url(&u, &url_key, c));
    let https = url
        .as_ref()
        .is_some_and(|u| u.scheme_str() == Some("https"));
    let ca_key = at(path, "ca_file");
    let ca_file = c.file(&ca_key, raw.ca_file);
    if url.is_some() {
        match (https, ca_file.is_some()) {
            (true, false) => c.push(
                &ca_key,
                "is required for an https url (the receiver's certificate is verified against \
                 it only)",
            ),
            (false, true) => c.push(&ca_key, "is only used with an https:// url"),
            _ => {}
        }
    }
    let timeout = duration(&at(path, "timeout"), raw.timeout.as_deref(), "5s", c);
    let mut headers = Vec::new();
    let mut ok = true;
    for (name, value) in raw.headers.unwrap_or_default() {
        let key = at(&at(path, "headers"), &name);
        let Some(h) = c.header(&key, &name) else {
            ok = false;
            continue;
        };
        if RESERVED_HEADERS.contains(&h.as_str()) {
            c.push(&key, "is set by s62 itself and cannot be configured");
            ok = false;
            continue;
        }
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                // Tokens: `Debug` of the config prints "Sensitive", not the value.
                v.set_sensitive(true);
                headers.push((h, v));
            }
            Err(_) => {
                // The value may be a secret: do not echo it.
                c.push(
                    &key,
                    "is not a valid header value (visible ASCII and spaces only)",
                );
                ok = false;
            }
        }
    }
    let (url, timeout) = (url?, timeout?);
    if !ok || (https && ca_file.is_none()) {
        return None;
    }
    Some(WebhookConfig {
        url,
        timeout,
        ca_file,
        personal_data: raw.personal_data.unwrap_or(false),
        headers,
    })
}

/// Checks `[alerts.syslog]`, found at key path `path` (e.g. `alerts.syslog`).
pub(crate) fn check_syslog(
    raw: RawSyslog,
    path: &str,
    c: &mut Checker<'_>,
) -> Option<SyslogConfig> {
    let address_key = at(path, "address");
    let address = c.required(&address_key, raw.address);
    let address = address.and_then(|a| host_port(&a, &address_key, c));
    let tls_on = raw.tls.unwrap_or(false);
    let ca_key = at(path, "ca_file");
    let name_key = at(path, "server_name");
    let ca_file = c.file(&ca_key, raw.ca_file);
    let tls = if tls_on {
        let ca_file = match ca_file {
            Some(f) => Some(f),
            None => {
                c.push(&ca_key, "is required with tls = true");
                None
            }
        };
        let server_name = match raw.server_name {
            Some(name) => {
                if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
                    c.push(
                        &name_key,
                        format!("{name:?} is not a valid TLS server name"),
                    );
                    None
                } else {
                    Some(name)
                }
            }
            None => address.as_ref().map(|(host, _)| host.clone()),
        };
        match (ca_file, server_name) {
            (Some(ca_file), Some(server_name)) => Some(Some(SyslogTls {
                ca_file,
                server_name,
            })),
            _ => None,
        }
    } else {
        for (key, set) in [
            (&ca_key, ca_file.is_some()),
            (&name_key, raw.server_name.is_some()),
        ] {
            if set {
                c.push(key, "is only used with tls = true");
            }
        }
        Some(None)
    };
    let facility_key = at(path, "facility");
    let facility_name = raw.facility.unwrap_or_else(|| "authpriv".to_owned());
    let facility = Facility::from_name(&facility_name);
    if facility.is_none() {
        let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
        c.push(
            &facility_key,
            format!(
                "unknown facility {facility_name:?} (expected one of {})",
                names.join(", ")
            ),
        );
    }
    let app_name = header_field(
        &at(path, "app_name"),
        raw.app_name.unwrap_or_else(|| "s62".to_owned()),
        48,
        c,
    );
    let hostname = match raw.hostname {
        None => Some(None),
        Some(h) => header_field(&at(path, "hostname"), h, 255, c).map(Some),
    };
    let enterprise_number = match raw.enterprise_number {
        None => Some(DOCUMENTATION_ENTERPRISE_NUMBER),
        Some(n) => match u32::try_from(n) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                c.push(
                    &at(path, "enterprise_number"),
                    format!(
                        "must be a private enterprise number from 1 to {} (got {n})",
                        u32::MAX
                    ),
                );
                None
            }
        },
    };
    let (host, port) = address?;
    Some(SyslogConfig {
        host,
        port,
        tls: tls?,
        facility: facility?,
        app_name: app_name?,
        hostname: hostname?,
        enterprise_number: enterprise_number?,
        personal_data: raw.personal_data.unwrap_or(false),
    })
}

fn webhook_url(text: &str, key: &str, c: &mut Checker<'_>) -> Option<Uri> {
    let Ok(url) = text.parse::<Uri>() else {
        c.push(key, format!("{text:?} is not a URL"));
        return None;
    };
    if !matches!(url.scheme_str(), Some("http" | "https")) {
        c.push(key, format!("{text:?} must start with http:// or https://"));
        return None;
    }
    let Some(authority) = url.authority() else {
        c.push(key, format!("{text:?} has no host"));
        return None;
    };
    if authority.as_str().contains('@') {
        // Credentials in a URL end up in places a header does not; and do not echo them.
        c.push(
            key,
            "must not contain credentials (put a token in headers, e.g. authorization)",
        );
        return None;
    }
    if authority.host().is_empty() {
        c.push(key, format!("{text:?} has no host"));
        return None;
    }
    Some(url)
}

/// `host:port`, `[v6]:port` → (host without brackets, port).
fn host_port(text: &str, key: &str, c: &mut Checker<'_>) -> Option<(String, u16)> {
    let bad = |c: &mut Checker<'_>| {
        c.push(
            key,
            format!(
                "{text:?} is not host:port (write e.g. \"siem.example.police.uk:6514\" or \
                 \"[2001:db8::1]:514\")"
            ),
        );
        None
    };
    let Some((host, port)) = text.rsplit_once(':') else {
        return bad(c);
    };
    let host = match host.strip_prefix('[') {
        Some(v6) => match v6.strip_suffix(']') {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
            _ => return bad(c),
        },
        None if host.contains(':') => return bad(c),
        None => host,
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return bad(c),
    };
    let ok_host = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !ok_host {
        return bad(c);
    }
    Some((host.to_owned(), port))
}

/// An RFC 5424 header field: 1 to `max` printable US-ASCII characters, no spaces.
fn header_field(key: &str, value: String, max: usize, c: &mut Checker<'_>) -> Option<String> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| (33..=126).contains(&b)) {
        c.push(
            key,
            format!("{value:?} must be 1 to {max} printable ASCII characters without spaces"),
        );
        return None;
    }
    Some(value)
}

/// A positive duration such as `"5s"` or `"1m"`, at most ten minutes.
fn duration(
    key: &str,
    value: Option<&str>,
    default: &str,
    c: &mut Checker<'_>,
) -> Option<Duration> {
    let text = value.unwrap_or(default);
    match text.parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_positive() && d <= jiff::SignedDuration::from_secs(600) => {
            Some(d.unsigned_abs())
        }
        Ok(_) => {
            c.push(
                key,
                format!("{text:?} must be positive and at most 10 minutes"),
            );
            None
        }
        Err(e) => {
            c.push(
                key,
                format!("{text:?} is not a duration (write e.g. \"5s\" or \"1m\"): {e}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::Problem;

    fn webhook(text: &str) -> Result<WebhookConfig, Vec<Problem>> {
        let mut c = Checker::new(Some(std::path::Path::new("/etc/s62")));
        let value: toml::Value = toml::from_str(text).expect("toml");
        let out = c
            .table::<RawWebhook>("alerts.webhook", value)
            .and_then(|raw| check_webhook(raw, "alerts.webhook", &mut c));
        match out {
            Some(w) if c.problems.is_empty() => Ok(w),
            _ => Err(c.problems),
        }
    }

    fn syslog(text: &str) -> Result<SyslogConfig, Vec<Problem>> {
        let mut c = Checker::new(Some(std::path::Path::new("/etc/s62")));
        let value: toml::Value = toml::from_str(text).expect("toml");
        let out = c
            .table::<RawSyslog>("alerts.syslog", value)
            .and_then(|raw| check_syslog(raw, "alerts.syslog", &mut c));
        match out {
            Some(s) if c.problems.is_empty() => Ok(s),
            _ => Err(c.problems),
        }
    }

    fn paths(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn a_minimal_webhook_gets_the_defaults() {
        let w = webhook(r#"url = "http://siem.local:8080/hooks/s62?src=a""#).unwrap();
        assert_eq!(w.url.to_string(), "http://siem.local:8080/hooks/s62?src=a");
        assert_eq!(w.timeout, Duration::from_secs(5));
        assert!(!w.personal_data);
        assert!(w.headers.is_empty());
        assert!(w.ca_file.is_none());
    }

    #[test]
    fn an_https_webhook_with_a_token_resolves_its_ca_and_hides_the_token() {
        let w = webhook(
            r#"
            url = "https://siem.example.police.uk/s62"
            timeout = "750ms"
            ca_file = "siem-ca.pem"
            personal_data = true
            headers = { authorization = "Bearer secret-token" }
            "#,
        )
        .unwrap();
        assert_eq!(
            w.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/s62/siem-ca.pem"))
        );
        assert_eq!(w.timeout, Duration::from_millis(750));
        assert!(w.personal_data);
        assert_eq!(w.headers[0].0, "authorization");
        assert!(w.headers[0].1.is_sensitive());
        assert!(!format!("{w:?}").contains("secret-token"));
    }

    #[test]
    fn every_bad_webhook_value_is_reported_with_its_key_path() {
        let p = webhook(
            r#"
            url = "ftp://siem"
            timeout = "0s"
            headers = { Authorization = "x", "content-type" = "text/plain", "x-ok" = "a\u0001" }
            "#,
        )
        .unwrap_err();
        assert_eq!(
            paths(&p),
            [
                "alerts.webhook.url",
                "alerts.webhook.timeout",
                "alerts.webhook.headers.Authorization",
                "alerts.webhook.headers.content-type",
                "alerts.webhook.headers.x-ok",
            ],
            "{p:?}"
        );
        assert!(p[0].to_string().contains("http:// or https://"), "{}", p[0]);
    }

    #[test]
    fn an_https_webhook_needs_a_ca_and_an_http_one_takes_none() {
        let p = webhook(r#"url = "https://siem/""#).unwrap_err();
        assert_eq!(paths(&p), ["alerts.webhook.ca_file"]);
        let p = webhook("url = \"http://siem/\"\nca_file = \"ca.pem\"").unwrap_err();
        assert_eq!(paths(&p), ["alerts.webhook.ca_file"]);
    }

    #[test]
    fn webhook_credentials_in_the_url_are_refused_without_echoing_them() {
        let p = webhook(r#"url = "https://user:hunter2@siem/""#).unwrap_err();
        assert_eq!(paths(&p)[0], "alerts.webhook.url");
        assert!(!p[0].message.contains("hunter2"));
    }

    #[test]
    fn missing_and_unknown_keys_are_reported() {
        let p = webhook(r#"urll = "http://siem/""#).unwrap_err();
        assert_eq!(paths(&p), ["alerts.webhook.urll", "alerts.webhook.url"]);
        let p = syslog(r#"adress = "siem:514""#).unwrap_err();
        assert_eq!(paths(&p), ["alerts.syslog.adress", "alerts.syslog.address"]);
    }

    #[test]
    fn a_minimal_syslog_gets_the_defaults() {
        let s = syslog(r#"address = "siem.local:514""#).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("siem.local", 514));
        assert_eq!(s.address(), "siem.local:514");
        assert!(s.tls.is_none());
        assert_eq!(s.facility, Facility::AUTHPRIV);
        assert_eq!(s.facility.code(), 10);
        assert_eq!(s.app_name, "s62");
        assert_eq!(s.hostname, None);
        assert_eq!(s.enterprise_number, 32473);
        assert!(!s.personal_data);
    }

    #[test]
    fn syslog_over_tls_verifies_the_address_host_unless_told_another_name() {
        let s = syslog(
            r#"
            address = "[2001:db8::1]:6514"
            tls = true
            ca_file = "/pki/ca.pem"
            facility = "local4"
            app_name = "s62-records"
            hostname = "records-01"
            personal_data = true
            "#,
        )
        .unwrap();
        assert_eq!(s.host, "2001:db8::1");
        assert_eq!(s.address(), "[2001:db8::1]:6514");
        let tls = s.tls.unwrap();
        assert_eq!(tls.server_name, "2001:db8::1");
        assert_eq!(tls.ca_file, std::path::Path::new("/pki/ca.pem"));
        assert_eq!(s.facility.code(), 20);
        assert_eq!(s.hostname.as_deref(), Some("records-01"));
        let s = syslog(
            "address = \"10.0.0.5:6514\"\ntls = true\nca_file = \"ca.pem\"\nserver_name = \"siem.example\"",
        )
        .unwrap();
        assert_eq!(s.tls.unwrap().server_name, "siem.example");
    }

    #[test]
    fn every_bad_syslog_value_is_reported_with_its_key_path() {
        let p = syslog(
            r#"
            address = "siem"
            ca_file = "ca.pem"
            facility = "security"
            app_name = "s62 records"
            hostname = ""
            enterprise_number = 0
            "#,
        )
        .unwrap_err();
        assert_eq!(
            paths(&p),
            [
                "alerts.syslog.address",
                "alerts.syslog.ca_file",
                "alerts.syslog.facility",
                "alerts.syslog.app_name",
                "alerts.syslog.hostname",
                "alerts.syslog.enterprise_number",
            ],
            "{p:?}"
        );
        assert!(p[2].message.contains("authpriv"), "{}", p[2]);
        for bad in [
            "siem:0",
            "siem:99999",
            "::1:514",
            "[nothost]:514",
            ":514",
            "si em:514",
        ] {
            let p = syslog(&format!("address = {bad:?}")).unwrap_err();
            assert_eq!(paths(&p), ["alerts.syslog.address"], "{bad}");
        }
    }

    #[test]
    fn syslog_tls_needs_a_ca_and_a_valid_server_name() {
        let p =
            syslog("address = \"siem:6514\"\ntls = true\nserver_name = \"bad name\"").unwrap_err();
        assert_eq!(
            paths(&p),
            ["alerts.syslog.ca_file", "alerts.syslog.server_name"]
        );
    }

    #[test]
    fn every_rfc5424_facility_name_is_accepted() {
        for (name, code) in FACILITIES {
            let s = syslog(&format!("address = \"siem:514\"\nfacility = {name:?}")).unwrap();
            assert_eq!(s.facility.code(), code);
        }
    }
}
