//! The docs say what the code does: the README's minimal config is the example config's, the
//! query docs use the example's port, the README's layout names every module, its metrics table
//! names every metric `/metrics` serves, and every `.md` file the code or docs point to exists.

use s62::config::Config;
use std::collections::BTreeSet;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The fenced code blocks of a Markdown text tagged `lang` (`""`: untagged), in order.
fn blocks(md: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in md.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(tag)) => open = Some((tag.trim().to_owned(), String::new())),
            (Some(_), Some("")) => {
                let (tag, body) = open.take().expect("open block");
                if tag == lang {
                    out.push(body);
                }
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn example() -> Config {
    Config::load(&repo().join("config/sidecar.example.toml")).expect("the example loads")
}

#[test]
fn the_readmes_minimal_config_loads_and_agrees_with_the_example() {
    let readme = read("README.md");
    let text = blocks(&readme, "toml")
        .into_iter()
        .find(|b| b.contains("[[routes.rule]]"))
        .expect("the README's minimal config");
    let minimal = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let example = example();
    for rule in &minimal.routes.rules {
        let same = example.routes.rules.iter().find(|r| r.name == rule.name);
        assert_eq!(
            same,
            Some(rule),
            "README rule {:?} differs from the example's",
            rule.name
        );
    }
    assert_eq!(minimal.log.data_dir, example.log.data_dir);
    assert_eq!(minimal.log.key_file, example.log.key_file);
    assert_eq!(minimal.log.origin, example.log.origin);
    assert_eq!(minimal.listen.address, example.listen.address);
    assert_eq!(
        minimal.admin.as_ref().map(|a| &a.checkpoint_dir),
        example.admin.as_ref().map(|a| &a.checkpoint_dir),
        "admin.checkpoint_dir"
    );
}

#[test]
fn the_query_docs_use_the_query_port_not_the_proxys() {
    let example: toml::Value = toml::from_str(&read("config/sidecar.example.toml")).expect("toml");
    let port = |v: &toml::Value, section: &str| {
        v[section]["address"]
            .as_str()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(_, p)| p.to_owned())
            .expect("address")
    };
    let query_port = port(&example, "query");
    assert_ne!(query_port, port(&example, "listen"));
    let docs = read("docs/query.md");
    let block = blocks(&docs, "toml")
        .into_iter()
        .find(|b| b.contains("[query]"))
        .expect("docs/query.md shows [query]");
    let shown: toml::Value = toml::from_str(&block).expect("docs/query.md's block is TOML");
    assert_eq!(port(&shown, "query"), query_port);
    for (n, line) in docs.lines().enumerate() {
        if line.contains("--addr") || line.contains("grpcurl") || line.contains("s62.query.v1") {
            assert!(
                !line.contains(&format!(":{}", port(&example, "listen"))),
                "docs/query.md line {}: the proxy's port: {line}",
                n + 1
            );
        }
    }
}

#[test]
fn the_role_overrides_in_the_query_docs_load_and_do_what_the_docs_say() {
    use s62::config::QueryCall;
    use s62::log::entry::AuditPurpose;
    let docs = read("docs/query.md");
    let toml_blocks = blocks(&docs, "toml");
    let query = toml_blocks
        .iter()
        .find(|b| b.contains("[query]"))
        .expect("docs/query.md shows [query]");
    let roles = toml_blocks
        .iter()
        .find(|b| b.contains("[query.roles."))
        .expect("docs/query.md shows [query.roles.*]");
    let readme = read("README.md");
    let minimal = blocks(&readme, "toml")
        .into_iter()
        .find(|b| b.contains("[[routes.rule]]"))
        .expect("the README's minimal config");
    let config = Config::from_toml_str(&format!("{minimal}\n{query}\n{roles}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let table = config.query.expect("[query]").roles;
    assert!(!table.auditor.calls.contains(&QueryCall::LatestCheckpoint));
    assert!(table.auditor.calls.contains(&QueryCall::SubjectReport));
    assert!(
        table
            .dpo
            .purposes
            .contains(&AuditPurpose::CommissionerRequest)
    );
}

#[test]
fn the_readmes_replication_block_loads_with_its_minimal_config() {
    let readme = read("README.md");
    let blocks = blocks(&readme, "toml");
    let minimal = blocks
        .iter()
        .find(|b| b.contains("[[routes.rule]]"))
        .expect("the README's minimal config");
    let replicate = blocks
        .iter()
        .find(|b| b.contains("[replicate]"))
        .expect("the README shows [replicate]");
    let config =
        Config::from_toml_str(&format!("{minimal}\n{replicate}")).unwrap_or_else(|e| panic!("{e}"));
    let r = config.replicate.expect("replication configured");
    assert_eq!(r.urls.len(), 3);
    assert_eq!(r.mode, s62::config::ReplicateMode::Async);
}

#[test]
fn the_readme_layout_names_every_top_level_module() {
    let readme = read("README.md");
    let layout = blocks(&readme, "")
        .into_iter()
        .find(|b| b.contains("src/log/"))
        .expect("the README's layout block");
    let named: BTreeSet<String> = layout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    for entry in std::fs::read_dir(repo().join("src")).expect("src") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let shown = if entry.path().is_dir() {
            format!("src/{name}/")
        } else {
            format!("src/{name}")
        };
        assert!(
            named.contains(&shown),
            "README layout does not name {shown}"
        );
    }
}

#[test]
fn the_readmes_metrics_table_names_exactly_what_metrics_serves() {
    use s62::admin::metrics::{WriterGauges, render};
    let m = s62::admin::Metrics::new();
    m.rejected("no_identity");
    m.upstream_response(200, std::time::Duration::from_millis(1));
    m.query_call("lawfulness");
    m.witnesses.register("w1");
    let scrape = render(
        &m,
        &s62::ingest::WriterStats::default(),
        WriterGauges {
            queue_depth: 0,
            log_writable: true,
        },
    );
    let served: BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let readme = read("README.md");
    let table = readme
        .split("| metric | meaning |")
        .nth(1)
        .expect("the README's metrics table");
    let table = &table[..table.find("\n\n").unwrap_or(table.len())];
    let documented: BTreeSet<String> = table
        .split(['`', '{', ' ', ','])
        .filter(|w| w.starts_with("s62_"))
        .map(str::to_owned)
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn every_markdown_file_the_code_and_docs_point_to_exists() {
    let mut sources = vec![
        "README.md".to_owned(),
        "deploy/README.md".to_owned(),
        "docs/query.md".to_owned(),
        "docs/bundle.md".to_owned(),
        "docs/building.md".to_owned(),
        "docs/integrity.md".to_owned(),
        "docs/witness.md".to_owned(),
    ];
    let mut stack = vec![repo().join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(repo()).expect("in repo");
                sources.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    for rel in sources {
        let text = read(&rel);
        let here = Path::new(&rel).parent().unwrap_or(Path::new(""));
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c))) {
            let Some(name) = word.strip_suffix(".md") else {
                continue;
            };
            if name.is_empty() || word.contains("://") {
                continue;
            }
            let found = [repo().join(word), repo().join(here).join(word)]
                .iter()
                .any(|p| p.is_file());
            assert!(
                found,
                "{rel} points to {word}, which is not in the repository"
            );
        }
    }
}

#[test]
fn the_hub_config_in_the_scale_docs_loads_with_its_query_listener() {
    let docs = read("docs/scale.md");
    let text = blocks(&docs, "toml")
        .into_iter()
        .find(|b| b.contains("[hub.query]"))
        .expect("docs/scale.md shows a hub config with [hub.query]");
    let cfg = s62::config::HubConfig::from_toml_str(&text, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.logs.len(), 2);
    let query = cfg.query.expect("the hub serves queries");
    assert_eq!(query.auditors.len(), 1);
    assert_ne!(
        query.address.port(),
        example().listen.address.port(),
        "not the proxy's port"
    );
}
