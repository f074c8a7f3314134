//! The deploy/ files are checked like code: `scripts/check-deploy.sh` (hadolint and a Dockerfile
//! parser, `systemd-analyze verify` and `security`, the Kubernetes OpenAPI schemas and the Pod's
//! promises) must pass against the binary this build produced, and the configs the deploy files
//! ship or assume must load with s62's own config parser and match the paths they mount.

use s62::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_deploy_checks_pass_for_the_binary_this_build_made() {
    let out = Command::new("bash")
        .arg(repo().join("scripts/check-deploy.sh"))
        .env("S62_BIN", env!("CARGO_BIN_EXE_s62"))
        .output()
        .expect("run scripts/check-deploy.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/check-deploy.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("check-deploy: every deploy check passed"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("skipped: no built binary"),
        "the binary checks ran:\n{stdout}"
    );
}

#[test]
fn the_kubernetes_sidecar_config_loads_and_points_at_the_app_on_loopback_and_the_mounted_key() {
    let config = Config::load(&repo().join("deploy/kubernetes/sidecar.toml"))
        .unwrap_or_else(|e| panic!("deploy/kubernetes/sidecar.toml: {e:#}"));
    let host = config.upstream.url.host().expect("upstream host");
    let ip: std::net::IpAddr = host.parse().expect("upstream is an IP address");
    assert!(
        ip.is_loopback(),
        "upstream {host} is the app in the same Pod"
    );
    assert!(config.listen.address.ip().is_unspecified());
    assert_eq!(config.listen.address.port(), 8443);
    let admin = config.admin.as_ref().expect("[admin] for the probes");
    assert!(
        admin.address.ip().is_unspecified(),
        "the kubelet probes the Pod IP"
    );
    assert_eq!(admin.address.port(), 9090);
    assert_eq!(config.log.key_file, PathBuf::from("/run/s62/keys/log.key"));
    assert!(config.log.data_dir.starts_with("/var/lib/s62"));
    assert!(
        admin
            .checkpoint_dir
            .as_ref()
            .is_some_and(|d| d.starts_with("/var/lib/s62")),
        "published checkpoints land on the claim"
    );
    // Auditors have their own listener, on the port docs/query.md and the image name.
    let query = config.query.as_ref().expect("[query] for auditors");
    assert!(query.address.ip().is_unspecified());
    assert_eq!(query.address.port(), 8444);
    for f in [&query.cert_file, &query.key_file, &query.client_ca_file] {
        assert!(f.starts_with("/etc/s62/query-tls"), "{}", f.display());
    }
    assert!(!query.auditors.is_empty());
    // The manifest mounts exactly those places.
    let deployment = read("deploy/kubernetes/deployment.yaml");
    for path in [
        "/run/s62/keys",
        "/var/lib/s62",
        "/etc/s62/tls",
        "/etc/s62/query-tls",
    ] {
        assert!(
            deployment.contains(&format!("mountPath: {path}\n")),
            "{path} mounted"
        );
    }
    let tls = config.listen.tls.as_ref().expect("TLS for clients");
    assert!(tls.cert_file.starts_with("/etc/s62/tls"));
}

#[test]
fn the_image_and_the_unit_agree_with_the_example_configs_paths() {
    // Operators start from config/sidecar.example.toml; the image and the unit must make its
    // data folder writable and its key readable where it expects them.
    let config = Config::load(&repo().join("config/sidecar.example.toml")).expect("example loads");
    assert!(config.log.data_dir.starts_with("/var/lib/s62"));
    assert!(config.log.key_file.starts_with("/etc/s62"));

    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains(r#"VOLUME ["/var/lib/s62", "/etc/s62"]"#));
    assert!(dockerfile.contains(r#"CMD ["serve", "--config", "/etc/s62/sidecar.toml"]"#));

    let unit = read("deploy/systemd/s62.service");
    assert!(unit.contains("\nReadWritePaths=/var/lib/s62\n"));
    assert!(unit.contains("\nExecStart=/usr/local/bin/s62 serve --config /etc/s62/sidecar.toml\n"));
    if let Some(dir) = config
        .admin
        .as_ref()
        .and_then(|a| a.checkpoint_dir.as_ref())
    {
        assert!(
            dir.starts_with("/var/lib/s62"),
            "checkpoint_dir {} must be writable under ProtectSystem=strict",
            dir.display()
        );
    }
}
