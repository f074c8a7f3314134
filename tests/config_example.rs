//! The shipped example config parses, has no unknown keys, and models the POLE API it documents;
//! a bad config reports every problem with its key path.

use s62::config::{Config, IdSource, MethodMatch};
use s62::log::entry::Operation;

fn example_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sidecar.example.toml")
}

#[test]
fn the_example_config_parses_with_no_unknown_keys() {
    // Unknown keys are errors, so parsing proves there are none.
    let config = Config::load(&example_path()).unwrap_or_else(|e| panic!("{e:#}\n{:?}", e));
    assert!(config.routes.strict);
    assert!(config.listen.tls.is_some());
    let query = config.query.as_ref().expect("example has [query]");
    assert_eq!(query.auditors.len(), 3);
    assert_eq!(
        query.roles,
        s62::config::RoleTable::default(),
        "the example writes out the auditor's defaults and changes nothing"
    );
    assert!(config.admin.is_some());
    let witness = config.witness.as_ref().expect("example has [witness]");
    assert_eq!(witness.peers.len(), 2);
    // Relative TLS paths resolve next to the example file.
    let tls = config.listen.tls.as_ref().expect("tls");
    assert!(tls.cert_file.starts_with(env!("CARGO_MANIFEST_DIR")));
}

#[test]
fn the_example_expresses_every_s62_operation() {
    let config = Config::load(&example_path()).expect("example parses");
    let ops: Vec<Operation> = config.routes.rules.iter().map(|r| r.operation).collect();
    for op in [
        Operation::Collection,
        Operation::Alteration,
        Operation::Consultation,
        Operation::Disclosure,
        Operation::Combination,
        Operation::Erasure,
    ] {
        assert!(ops.contains(&op), "no rule for {}", op.label());
    }
    let export = config
        .routes
        .rules
        .iter()
        .find(|r| r.operation == Operation::Disclosure)
        .expect("disclosure rule");
    assert!(
        export
            .recipients
            .iter()
            .any(|s| matches!(s, IdSource::Header(_)))
    );
    let link = config
        .routes
        .rules
        .iter()
        .find(|r| r.operation == Operation::Combination)
        .expect("combination rule");
    assert_eq!(link.subjects.len(), 2, "a combination records both ids");
    assert!(matches!(link.methods, MethodMatch::Only(_)));
}

#[test]
fn a_bad_config_reports_every_problem_with_its_key_path() {
    let text = std::fs::read_to_string(example_path())
        .expect("read example")
        .replace("queue_capacity = 16384", "queue_capacity = 0")
        .replace(
            "path = \"/people/{id}/links/{other}\"",
            "path = \"/people/{id}/links/{id}\"",
        )
        .replace(
            "client_auth = \"required\"",
            "client_auth = \"required\"\nport = 1",
        )
        .replace("role = \"dpo\"", "role = \"boss\"");
    let err = Config::from_toml_str(&text).expect_err("invalid");
    let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "log.queue_capacity",
            "listen.tls.port",
            "routes.rule[5].path",
            "query.auditor[1].role"
        ],
        "{err}"
    );
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), 1 + err.problems.len(), "{shown}");
}
