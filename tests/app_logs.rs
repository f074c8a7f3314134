//! The application log never carries personal data: drive the whole demo session through the
//! proxy with the most verbose JSON tracing, then look for every subject id, record id, recipient,
//! name, case reference and justification the audit log recorded — none may appear in it. And
//! the demo's terminal shows only its story: the sidecar's log goes to the file the demo names.

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
    // The demo keeps the sidecar's application log in a file of its own.
    let app_log = std::fs::read_to_string(s62::demo::app_log_path(dir.path()))
        .expect("the demo wrote the sidecar's application log");
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
        // The values to look for print only for a stated purpose (and the read is logged).
        .args([
            "--purpose",
            "integrity-and-security",
            "--case-ref",
            "APP-LOG-CHECK",
        ])
        .args(["--actor", "app-logs-test", "--key-file"])
        .arg(dir.path().join("log.key"))
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

#[test]
fn the_demo_prints_only_its_story_and_names_the_file_holding_the_sidecars_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = Command::new(env!("CARGO_BIN_EXE_s62"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("S62_LOG_FORMAT")
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&demo.stdout);
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(demo.status.success(), "{stderr}");
    assert_eq!(stderr, "", "nothing but the story reaches the terminal");
    // tracing's text lines look like `2026-12-01T05:15:06.123456Z  INFO s62::app: ...`.
    let tracing_like: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            ["TRACE ", "DEBUG ", " INFO ", " WARN ", "ERROR "]
                .iter()
                .any(|level| l.contains(level))
                || l.contains("s62::")
        })
        .collect();
    assert!(
        tracing_like.is_empty(),
        "tracing in the story: {tracing_like:?}"
    );
    assert!(stdout.contains("GET"), "the story itself:\n{stdout}");

    let file = s62::demo::app_log_path(dir.path());
    assert!(
        stdout.contains(&file.display().to_string()),
        "the demo names {}:\n{stdout}",
        file.display()
    );
    let app_log = std::fs::read_to_string(&file).expect("the sidecar's log");
    assert!(
        app_log.contains("INFO") && app_log.contains("s62 proxy serving"),
        "the sidecar's lifecycle is in the file:\n{app_log}"
    );
}
