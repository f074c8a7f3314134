//! The application log never carries personal data: drive the whole demo session through the
//! proxy with the most verbose JSON tracing, then look for every subject id, record id, recipient,
//! name, case reference and justification the audit log recorded — none may appear in it.

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn the_demo_sessions_application_log_holds_no_personal_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .env("S62_LOG_FORMAT", "json")
        .output()
        .expect("demo runs");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let app_log = String::from_utf8_lossy(&demo.stderr).into_owned();
    let json_lines = app_log
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .count();
    assert!(
        json_lines >= 20,
        "the demo produced an application log to check ({json_lines} JSON lines)"
    );
    assert!(
        app_log.contains("\"seq\""),
        "the log does carry sequence numbers"
    );

    let entries = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["entries", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("entries runs");
    assert!(entries.status.success());
    let mut personal = BTreeSet::new();
    for line in String::from_utf8_lossy(&entries.stdout).lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("json");
        for field in ["subjects", "records", "recipients"] {
            for v in e[field].as_array().into_iter().flatten() {
                personal.insert(v.as_str().unwrap_or_default().to_owned());
            }
        }
        for field in ["returned_subjects", "returned_records"] {
            for v in e["outcome"][field].as_array().into_iter().flatten() {
                personal.insert(v.as_str().unwrap_or_default().to_owned());
            }
        }
        personal.insert(
            e["actor"]["display_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        personal.insert(
            e["justification"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        personal.insert(
            e["justification"]["case_reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    personal.retain(|v| v.len() >= 4);
    assert!(
        personal.len() >= 10,
        "the session recorded personal data to look for: {personal:?}"
    );
    let leaked: Vec<&String> = personal
        .iter()
        .filter(|v| app_log.contains(v.as_str()))
        .collect();
    assert!(leaked.is_empty(), "the application log contains {leaked:?}");
}
