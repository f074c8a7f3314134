//! Tests of the whole configuration: defaults, every problem at once, cross-section rules.

use super::*;
use http::Method;
use std::time::Duration;

/// The smallest valid config: plain HTTP, identity from a gateway on loopback.
const MINIMAL: &str = r#"
[log]
data_dir = "data"
key_file = "log.key"
origin = "test.example/s62"

[upstream]
url = "http://127.0.0.1:9000"

[identity]
sources = ["trusted_header"]
trusted_peers = ["127.0.0.1"]
"#;

fn problems(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn has(problems: &[String], path_and_words: &str) -> bool {
    problems.iter().any(|p| p.starts_with(path_and_words))
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let c = Config::from_toml_str(MINIMAL).expect("valid");
    assert_eq!(c.listen.address, "127.0.0.1:8443".parse().expect("addr"));
    assert!(c.listen.tls.is_none());
    assert_eq!(c.log.queue_capacity, 16384);
    assert_eq!(c.log.queue_wait, Duration::from_millis(2000));
    assert_eq!(c.log.max_batch, 4096);
    assert_eq!(c.log.checkpoint_interval, Duration::ZERO);
    assert_eq!(c.log.checkpoint_max_entries, 65_536);
    assert_eq!(c.upstream.connect_timeout, Duration::from_millis(2000));
    assert_eq!(c.upstream.response_timeout, Duration::from_millis(30000));
    assert!(!c.upstream.is_https());
    assert_eq!(c.identity.header, "x-s62-user");
    assert!(c.identity.required);
    assert_eq!(c.justification, JustificationConfig::default());
    assert_eq!(c.limits, LimitsConfig::default());
    assert!(!c.routes.strict && c.routes.rules.is_empty());
    assert!(c.query.is_none() && c.admin.is_none());
    assert_eq!(
        c.log.data_dir,
        PathBuf::from("data"),
        "no base folder: left as written"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let c = Config::from_toml_str_in(MINIMAL, Path::new("/etc/s62")).expect("valid");
    assert_eq!(c.log.data_dir, PathBuf::from("/etc/s62/data"));
    assert_eq!(c.log.key_file, PathBuf::from("/etc/s62/log.key"));
}

#[test]
fn load_reads_a_file_and_resolves_paths_next_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s62.toml");
    std::fs::write(&path, MINIMAL).expect("write");
    let c = Config::load(&path).expect("loads");
    assert_eq!(c.log.key_file, dir.path().join("log.key"));
    assert!(matches!(
        Config::load(&dir.path().join("missing.toml")),
        Err(LoadError::Read { .. })
    ));
}

#[test]
fn every_problem_is_reported_at_once_with_its_key_path() {
    let text = r#"
colour = "blue"

[log]
data_dir = ""
origin = "has space"
queue_capacity = 0
queue_wait_ms = -5
typo = 1

[log.checkpoint]
interval_ms = -1
max_entries = 0
every = "often"

[listen]
address = "localhost:80"

[listen.tls]
cert_file = "c.pem"
key_file = "k.pem"
client_auth = "sometimes"

[upstream]
url = "ftp://records"
connect_timeout_ms = "soon"

[identity]
sources = ["trusted_header", "password"]
header = "X-User"
trusted_peers = ["10.0.0.1/8", "nonsense"]

[justification]
required_for = ["consultation", "peeking"]

[limits]
max_request_body_bytes = 0

[routes]
strict = true

[[routes.rule]]
name = "a"
method = "get"
path = "/people/{id}/{id}"
operation = "looking"

[[routes.rule]]
name = "a"
method = "GET"
path = "/people/{id}"
operation = "consultation"
subjects = ["path:person", "body:people", "response:/id", "cookie:x"]
returned_subjects = ["/results/*/id"]

[[routes.rule]]
name = "export"
method = "POST"
path = "/exports"
operation = "disclosure"
colour = "red"

[query]
address = "0.0.0.0:8444"
cert_file = "q.crt"
key_file = "q.key"

[[query.auditor]]
name = "Alice"
match = "email:alice@example"
role = "superuser"
"#;
    let p = problems(text);
    for expected in [
        "colour: unknown key",
        "log.typo: unknown key",
        "log.data_dir: must not be empty",
        "log.key_file: is required",
        "log.origin: must be non-empty",
        "log.queue_capacity: must be greater than 0",
        "log.queue_wait_ms: must be greater than 0",
        "log.checkpoint.interval_ms: must be from 0 (sign every commit) to 3600000 milliseconds (got -1)",
        "log.checkpoint.max_entries: must be greater than 0 (got 0)",
        "log.checkpoint.every: unknown key (expected `interval_ms` or `max_entries`)",
        "listen.address: \"localhost:80\" is not an IP socket address",
        "listen.tls.client_auth: \"sometimes\"",
        "upstream.url: \"ftp://records\" must start with http:// or https://",
        "upstream.connect_timeout_ms: invalid type",
        "identity.sources[1]: unknown source \"password\"",
        "identity.header: header names are written in lower case",
        "identity.trusted_peers[0]: \"10.0.0.1/8\": host bits are set; did you mean 10.0.0.0/8?",
        "identity.trusted_peers[1]: \"nonsense\"",
        "justification.required_for[1]: unknown operation \"peeking\"",
        "limits.max_request_body_bytes: must be greater than 0",
        "routes.rule[0].method: methods are case-sensitive; write \"GET\"",
        "routes.rule[0].path: parameter {id} appears more than once",
        "routes.rule[0].operation: unknown operation \"looking\"",
        "routes.rule[1].name: \"a\" is already the name of routes.rule[0]",
        "routes.rule[1].subjects[0]: the template \"/people/{id}\" has no {person}",
        "routes.rule[1].subjects[1]: a JSON pointer must be empty or start with '/'",
        "routes.rule[1].subjects[2]: \"response:\" is read after the upstream answers",
        "routes.rule[1].subjects[3]: unknown source kind \"cookie\"",
        "routes.rule[1].returned_subjects[0]: \"/results/*/id\" must be \"response:<json pointer>\"",
        "routes.rule[2].colour: unknown key",
        "routes.rule[2].recipients: a disclosure rule must say where the recipients come from",
        "query.client_ca_file: is required",
        "query.auditor[0].match: \"email:alice@example\"",
        "query.auditor[0].role: \"superuser\"",
    ] {
        assert!(
            has(&p, expected),
            "missing {expected:?} in:\n{}",
            p.join("\n")
        );
    }
}

#[test]
fn the_error_lists_each_problem_on_its_own_line() {
    let err = Config::from_toml_str("[log]\nqueue_capacity = 0\n").expect_err("invalid");
    let shown = err.to_string();
    assert!(shown.starts_with("invalid configuration ("), "{shown}");
    for p in &err.problems {
        assert!(shown.lines().any(|l| l.trim() == p.to_string()), "{shown}");
    }
    assert!(shown.contains("\n  upstream: is required"), "{shown}");
    assert!(shown.contains("\n  identity: is required"), "{shown}");
}

#[test]
fn a_toml_syntax_error_is_one_problem_with_its_position() {
    let p = problems("[log\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("line 1"), "{p:?}");
}

#[test]
fn identity_sources_must_be_backed_by_tls_or_trusted_peers() {
    let p = problems(&MINIMAL.replace(
        "sources = [\"trusted_header\"]\ntrusted_peers = [\"127.0.0.1\"]",
        "sources = [\"client_certificate\", \"trusted_header\"]",
    ));
    assert!(
        has(
            &p,
            "identity.sources: \"client_certificate\" needs [listen.tls]"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "identity.trusted_peers: \"trusted_header\" needs at least one"
        ),
        "{p:?}"
    );
}

#[test]
fn tls_client_auth_needs_a_ca_and_defaults_to_required_with_one() {
    // (The gateway's certificate is named: required certificates with a gateway need it.)
    let gateway = MINIMAL.replace(
        "trusted_peers = [\"127.0.0.1\"]",
        "trusted_peers = [\"127.0.0.1\"]\ngateway_certificates = [\"cn:gw\"]",
    );
    let with_ca = format!(
        "{gateway}\n[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\n"
    );
    let c = Config::from_toml_str(&with_ca).expect("valid");
    assert_eq!(
        c.listen.tls.map(|t| t.client_auth),
        Some(ClientAuth::Required)
    );
    let p = problems(&format!(
        "{MINIMAL}\n[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"required\"\n"
    ));
    assert!(has(&p, "listen.tls.client_ca_file: is required"), "{p:?}");
}

#[test]
fn upstream_tls_files_need_https_and_come_in_pairs() {
    let p = problems(&MINIMAL.replace(
        "url = \"http://127.0.0.1:9000\"",
        "url = \"http://127.0.0.1:9000/api\"\nca_file = \"ca\"\nclient_cert_file = \"c\"",
    ));
    assert!(has(&p, "upstream.url: must not have a path"), "{p:?}");
    assert!(
        has(&p, "upstream.client_key_file: is required with"),
        "{p:?}"
    );
    let p = problems(&MINIMAL.replace(
        "url = \"http://127.0.0.1:9000\"",
        "url = \"http://127.0.0.1:9000\"\nca_file = \"ca\"",
    ));
    assert!(
        has(
            &p,
            "upstream.ca_file: TLS files are only used with an https://"
        ),
        "{p:?}"
    );
}

#[test]
fn listeners_and_role_headers_may_not_collide() {
    let p = problems(&format!(
        "{MINIMAL}\n[justification]\ncase_header = \"x-s62-user\"\n\
         [admin]\naddress = \"127.0.0.1:8443\"\n"
    ));
    assert!(
        has(
            &p,
            "justification.case_header: \"x-s62-user\" is already used by identity.header"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "admin.address: 127.0.0.1:8443 is already used by listen.address"
        ),
        "{p:?}"
    );
}

#[test]
fn streaming_excludes_body_and_response_sources() {
    let p = problems(&format!(
        "{MINIMAL}\n[[routes.rule]]\nname = \"up\"\nmethod = \"POST\"\npath = \"/files/{{*rest}}\"\n\
         operation = \"collection\"\nsubjects = [\"body:/id\", \"path:rest\"]\n\
         returned_records = [\"response:/id\"]\nstream_request = true\nstream_response = true\n"
    ));
    assert!(
        has(&p, "routes.rule[0].stream_request: a streamed request body"),
        "{p:?}"
    );
    assert!(
        has(&p, "routes.rule[0].stream_response: a streamed response"),
        "{p:?}"
    );
}

#[test]
fn method_lists_and_wildcards_parse() {
    let c = Config::from_toml_str(&format!(
        "{MINIMAL}\n[[routes.rule]]\nname = \"w\"\nmethod = [\"PUT\", \"PATCH\", \"PUT\"]\n\
         path = \"/x\"\noperation = \"alteration\"\n\
         [[routes.rule]]\nname = \"any\"\nmethod = \"*\"\npath = \"/y\"\noperation = \"consultation\"\n"
    ))
    .expect("valid");
    assert_eq!(
        c.routes.rules[0].methods,
        MethodMatch::Only(vec![Method::PUT, Method::PATCH])
    );
    assert_eq!(c.routes.rules[1].methods, MethodMatch::Any);
    assert!(MethodMatch::Only(vec![Method::GET]).allows(&Method::HEAD));
    assert!(!MethodMatch::Only(vec![Method::GET]).allows(&Method::POST));
    let p = problems(&format!(
        "{MINIMAL}\n[[routes.rule]]\nname = \"w\"\nmethod = [\"*\", \"GET\"]\npath = \"/x\"\n\
         operation = \"alteration\"\n[[routes.rule]]\nname = \"v\"\nmethod = []\npath = \"/x\"\n\
         operation = \"alteration\"\n"
    ));
    assert!(
        has(&p, "routes.rule[0].method: \"*\" already covers"),
        "{p:?}"
    );
    assert!(
        has(&p, "routes.rule[1].method: must name at least one"),
        "{p:?}"
    );
}

#[test]
fn cidrs_match_ipv4_ipv6_and_mapped_addresses() {
    let net: IpCidr = "10.0.0.0/8".parse().expect("cidr");
    assert!(net.contains("10.1.2.3".parse().expect("ip")));
    assert!(net.contains("::ffff:10.1.2.3".parse().expect("ip")));
    assert!(!net.contains("11.0.0.1".parse().expect("ip")));
    let v6: IpCidr = "fd00::/8".parse().expect("cidr");
    assert!(v6.contains("fd12::1".parse().expect("ip")));
    assert!(!v6.contains("10.0.0.1".parse().expect("ip")));
    let all: IpCidr = "0.0.0.0/0".parse().expect("cidr");
    assert!(all.contains("192.0.2.1".parse().expect("ip")));
    let host: IpCidr = "::1".parse().expect("cidr");
    assert_eq!(host.to_string(), "::1/128");
    assert_eq!(
        "1.2.3.0/33".parse::<IpCidr>(),
        Err(CidrError::Prefix("33".into(), 32))
    );
}

#[test]
fn the_demo_config_uses_the_example_routes_over_plain_http() {
    let c = Config::demo(
        "d".into(),
        "k".into(),
        "127.0.0.1:8080".parse().expect("addr"),
        Uri::from_static("http://127.0.0.1:9000"),
    );
    assert!(c.listen.tls.is_none());
    assert_eq!(c.identity.sources, [IdentitySource::TrustedHeader]);
    assert!(c.identity.is_trusted_peer("127.0.0.1".parse().expect("ip")));
    assert!(!c.identity.is_trusted_peer("10.0.0.1".parse().expect("ip")));
    assert!(c.routes.rules.iter().any(|r| r.name == "person-export"));
    assert!(c.query.is_none() && c.admin.is_none());
}

#[test]
fn check_files_names_missing_files_by_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Config::from_toml_str_in(MINIMAL, dir.path()).expect("valid");
    let p: Vec<String> = c.check_files().iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("log.key_file: "), "{p:?}");
    std::fs::write(dir.path().join("log.key"), b"k").expect("write");
    assert!(c.check_files().is_empty());
}

#[test]
fn retention_takes_a_calendar_period_and_counts_it_on_the_calendar() {
    let c = Config::from_toml_str(&format!(
        "{MINIMAL}\n[retention]\npersonal_fields_after = \"6y\"\n"
    ))
    .expect("valid");
    let r = c.retention.expect("retention configured");
    assert_eq!(r.run_every, Duration::from_secs(3600), "default cadence");
    assert_eq!(r.batch_entries, retention::DEFAULT_BATCH_ENTRIES);
    let now: jiff::Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
    assert_eq!(
        r.cutoff(now).expect("in range").to_string(),
        "2020-12-01T10:00:00Z",
        "six calendar years, leap days included"
    );
    assert!(
        Config::from_toml_str(MINIMAL)
            .expect("valid")
            .retention
            .is_none()
    );
}

#[test]
fn a_retention_section_that_cannot_be_applied_is_refused_with_each_reason() {
    let p = problems(&format!(
        "{MINIMAL}\n[retention]\npersonal_fields_after = \"six years\"\nrun_every = \"0s\"\nbatch_entries = 1000000\n"
    ));
    assert!(
        has(
            &p,
            "retention.personal_fields_after: \"six years\" is not a period"
        ),
        "{p:?}"
    );
    assert!(
        has(&p, "retention.run_every: \"0s\" must be positive"),
        "{p:?}"
    );
    assert!(
        has(&p, "retention.batch_entries: must be between 1 and 100000"),
        "{p:?}"
    );
    let p = problems(&format!("{MINIMAL}\n[retention]\nrun_every = \"1h\"\n"));
    assert!(
        has(&p, "retention.personal_fields_after: is required"),
        "{p:?}"
    );
    let p = problems(&format!(
        "{MINIMAL}\n[retention]\npersonal_fields_after = \"-1y\"\n"
    ));
    assert!(
        has(
            &p,
            "retention.personal_fields_after: \"-1y\" must be a positive period"
        ),
        "{p:?}"
    );
}

#[test]
fn required_client_certificates_with_a_gateway_need_the_gateway_named() {
    let gateway_and_certs = MINIMAL.replace(
        "sources = [\"trusted_header\"]",
        "sources = [\"client_certificate\", \"trusted_header\"]",
    ) + "\n[listen.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nclient_ca_file = \"ca\"\nclient_auth = \"required\"\n";
    let p = problems(&gateway_and_certs);
    assert!(
        has(
            &p,
            "identity.gateway_certificates: client_auth = \"required\""
        ),
        "{p:?}"
    );
    let named = gateway_and_certs.replace(
        "trusted_peers = [\"127.0.0.1\"]",
        "trusted_peers = [\"127.0.0.1\"]\ngateway_certificates = [\"cn:gw.example\", \"san:gw@example\"]",
    );
    let c = Config::from_toml_str(&named).expect("valid once the gateway is named");
    assert_eq!(
        c.identity.gateway_certificates,
        [
            GatewayCertificate::CommonName("gw.example".into()),
            GatewayCertificate::SubjectAltName("gw@example".into())
        ]
    );
    let p = problems(&named.replace("cn:gw.example", "gw.example"));
    assert!(has(&p, "identity.gateway_certificates[0]: "), "{p:?}");
}

#[test]
fn rewrite_refusals_json_strictness_and_param_patterns_parse_with_defaults() {
    let c = Config::from_toml_str(MINIMAL).expect("valid");
    assert!(c.routes.strict_json_keys);
    assert!(
        c.routes
            .refused_headers
            .contains(&"x-http-method-override".to_owned())
    );
    assert_eq!(c.routes.refused_query_keys, ["_method"]);
    let text = format!(
        "{MINIMAL}\n[routes]\nstrict_json_keys = false\nrefused_headers = [\"x-http-method\", \"x_custom_override\"]\n\
         refused_query_keys = [\"_Method\"]\n[[routes.rule]]\nname = \"r\"\nmethod = \"GET\"\npath = \"/r/{{id}}\"\n\
         operation = \"consultation\"\nparam_pattern = \"A-Za-z0-9._-\"\n"
    );
    let c = Config::from_toml_str(&text).expect("valid");
    assert!(!c.routes.strict_json_keys);
    assert_eq!(
        c.routes.refused_headers,
        ["x-http-method", "x-custom-override"]
    );
    assert_eq!(c.routes.refused_query_keys, ["_method"]);
    assert_eq!(
        c.routes.rules[0].param_pattern.as_ref().map(|p| p.as_str()),
        Some("A-Za-z0-9._-")
    );
    let p = problems(
        &text
            .replace("A-Za-z0-9._-", "a-z/")
            .replace("\"_Method\"", "\"a=b\""),
    );
    assert!(has(&p, "routes.rule[0].param_pattern: '/'"), "{p:?}");
    assert!(has(&p, "routes.refused_query_keys[0]: "), "{p:?}");
}

#[test]
fn limits_for_connections_streams_and_floods_parse() {
    let text = format!(
        "{MINIMAL}\n[limits]\nheader_read_timeout_ms = 1000\nidle_timeout_ms = 2000\n\
         http2_keepalive_interval_ms = 3000\nhttp2_keepalive_timeout_ms = 4000\nmax_concurrent_streams = 8\n\
         exchange_timeout_ms = 5000\ndenials_per_peer = 2\ndenial_window_ms = 6000\ndenial_delay_ms = 7\n"
    );
    let l = Config::from_toml_str(&text).expect("valid").limits;
    assert_eq!(
        (
            l.header_read_timeout,
            l.idle_timeout,
            l.http2_keepalive_interval,
            l.http2_keepalive_timeout
        ),
        (
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(4)
        )
    );
    assert_eq!(l.max_concurrent_streams, 8);
    assert_eq!(l.exchange_timeout, Duration::from_secs(5));
    assert_eq!(
        (l.denials_per_peer, l.denial_window),
        (2, Duration::from_secs(6))
    );
    assert_eq!(l.denial_delay, Duration::from_millis(7));
    let p = problems(&text.replace("max_concurrent_streams = 8", "max_concurrent_streams = 0"));
    assert!(has(&p, "limits.max_concurrent_streams"), "{p:?}");
}

#[test]
fn an_erasure_probe_is_parsed_with_its_delays_and_refused_where_it_cannot_work() {
    let ok = Config::from_toml_str(&format!(
        "{MINIMAL}\n[[routes.rule]]\nname = \"erase\"\nmethod = \"DELETE\"\npath = \"/p/{{id}}\"\n\
         operation = \"erasure\"\nsubjects = [\"path:id\"]\n\
         verify_with = {{ path = \"/p/{{id}}\" }}\nrecheck_after = [\"1h\", \"30d\"]\n"
    ))
    .expect("valid");
    let probe = ok.routes.rules[0].erasure_probe.clone().expect("probe");
    assert_eq!(probe.method, Method::GET);
    assert_eq!(probe.expect, [404, 410], "the default");
    assert_eq!(
        probe.recheck_after,
        [Duration::from_secs(3600), Duration::from_secs(30 * 86_400)]
    );
    assert_eq!(probe.path.fill("P-1").as_deref(), Some("/p/P-1"));
    assert_eq!(
        probe.path.fill("../x"),
        None,
        "nothing is encoded or resolved"
    );

    let p = problems(&format!(
        "{MINIMAL}\n[[routes.rule]]\nname = \"read\"\nmethod = \"GET\"\npath = \"/p/{{id}}\"\n\
         operation = \"consultation\"\nverify_with = {{ method = \"DELETE\", path = \"/p/{{a}}/{{b}}\" }}\n\
         expect = [99]\nrecheck_after = [\"soon\"]\n\
         [[routes.rule]]\nname = \"erase\"\nmethod = \"DELETE\"\npath = \"/p/{{id}}\"\n\
         operation = \"erasure\"\nexpect = [404]\n"
    ));
    for want in [
        "routes.rule[0].verify_with: only an erasure rule",
        "routes.rule[0].verify_with.method: \"DELETE\": a probe only reads",
        "routes.rule[0].verify_with.path: must have exactly one {parameter}",
        "routes.rule[0].expect[0]: 99 is not an HTTP status",
        "routes.rule[0].recheck_after[0]: \"soon\" is not a positive duration",
        "routes.rule[1].expect: only applies together with verify_with",
    ] {
        assert!(has(&p, want), "{want}: {p:?}");
    }
}

/// MINIMAL plus a `[query]` section with one auditor and `roles` appended verbatim.
fn with_query(roles: &str) -> String {
    format!(
        "{MINIMAL}\n[query]\naddress = \"127.0.0.1:8444\"\ncert_file = \"q.crt\"\n\
         key_file = \"q.key\"\nclient_ca_file = \"ca.crt\"\n\n[[query.auditor]]\n\
         name = \"Alice\"\nmatch = \"cn:Alice\"\nrole = \"auditor\"\n{roles}"
    )
}

#[test]
fn roles_default_to_the_s62_4_split_and_the_commissioner_states_commissioner_request() {
    use crate::log::entry::AuditPurpose as P;
    let c = Config::from_toml_str(&with_query("")).expect("valid");
    let roles = c.query.expect("query").roles;
    let calls = |g: &RoleGrant| g.calls.iter().map(|c| c.name()).collect::<Vec<_>>();
    let purposes = |g: &RoleGrant| g.purposes.iter().copied().collect::<Vec<_>>();
    let auditor_calls = [
        "Search",
        "GetEntry",
        "LatestCheckpoint",
        "CheckpointAt",
        "InclusionProof",
        "ConsistencyProof",
        "SubjectReport",
    ];
    assert_eq!(calls(&roles.auditor), auditor_calls);
    assert_eq!(
        purposes(&roles.auditor),
        [P::Lawfulness, P::SelfMonitoring, P::IntegrityAndSecurity]
    );
    let mut dpo_calls = auditor_calls.to_vec();
    dpo_calls.extend([
        "Export",
        "RedactValues",
        "ActorReport",
        "CoverageReport",
        "ListAlerts",
        "ReviewAlert",
    ]);
    assert_eq!(calls(&roles.dpo), dpo_calls);
    assert_eq!(
        purposes(&roles.dpo),
        [
            P::Lawfulness,
            P::SelfMonitoring,
            P::IntegrityAndSecurity,
            P::CriminalProceedings
        ]
    );
    assert_eq!(calls(&roles.commissioner).len(), QueryCall::ALL.len());
    assert_eq!(purposes(&roles.commissioner), [P::CommissionerRequest]);
}

#[test]
fn a_role_can_be_narrowed_or_widened_one_list_at_a_time() {
    use crate::log::entry::AuditPurpose as P;
    let c = Config::from_toml_str(&with_query(
        "[query.roles.auditor]\ncalls = [\"Search\", \"SubjectReport\"]\n\
         [query.roles.dpo]\npurposes = [\"lawfulness\", \"commissioner-request\"]\n",
    ))
    .expect("valid");
    let roles = c.query.expect("query").roles;
    assert_eq!(
        roles.auditor.calls.iter().copied().collect::<Vec<_>>(),
        [QueryCall::Search, QueryCall::SubjectReport]
    );
    assert_eq!(
        roles.auditor.purposes,
        RoleTable::default().auditor.purposes,
        "purposes not written keep their default"
    );
    assert_eq!(
        roles.dpo.purposes.iter().copied().collect::<Vec<_>>(),
        [P::Lawfulness, P::CommissionerRequest]
    );
    assert_eq!(roles.dpo.calls, RoleTable::default().dpo.calls);
    assert_eq!(roles.commissioner, RoleTable::default().commissioner);
}

#[test]
fn unknown_roles_calls_and_purposes_are_each_reported_with_their_key_path() {
    let p = problems(&with_query(
        "[query.roles.auditor]\ncalls = [\"Search\", \"DropTable\", \"Search\"]\n\
         purposes = [\"curiosity\"]\ncolour = \"red\"\n\
         [query.roles.dpo]\ncalls = []\n\
         [query.roles.superuser]\ncalls = [\"Search\"]\n",
    ));
    for expected in [
        "query.roles.auditor.calls[1]: \"DropTable\" is not a call of the query service",
        "query.roles.auditor.calls[2]: \"Search\" is listed twice",
        "query.roles.auditor.purposes[0]: \"curiosity\" is not a purpose",
        "query.roles.auditor.colour: unknown key",
        "query.roles.dpo.calls: must name at least one",
        "query.roles.superuser: unknown key",
    ] {
        assert!(
            has(&p, expected),
            "missing {expected:?} in:\n{}",
            p.join("\n")
        );
    }
}

#[test]
fn a_break_glass_rule_must_name_routes_that_exist_and_a_header_that_is_not_refused() {
    let p = problems(&format!(
        r#"{MINIMAL}
[[alerts.rule]]
kind = "break_glass"
header = "x-http-method-override"
routes = ["no-such-route"]
"#
    ));
    assert!(
        has(
            &p,
            "alerts.rule[0].header: \"x-http-method-override\" is in routes.refused_headers"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "alerts.rule[0].routes[0]: \"no-such-route\" is not the name of a [[routes.rule]]"
        ),
        "{p:?}"
    );
}

#[test]
fn alert_sinks_are_checked_inside_alerts_and_their_files_must_exist() {
    let cfg = Config::from_toml_str(&format!(
        r#"{MINIMAL}
[alerts.syslog]
address = "127.0.0.1:6514"
tls = true
ca_file = "/nonexistent/syslog-ca.pem"

[[alerts.rule]]
kind = "watchlist"
file = "/nonexistent/watchlist.txt"
"#
    ))
    .expect("parses");
    let missing: Vec<String> = cfg.check_files().iter().map(ToString::to_string).collect();
    assert!(has(&missing, "alerts.rule[0].file"), "{missing:?}");
    assert!(has(&missing, "alerts.syslog.ca_file"), "{missing:?}");
}
