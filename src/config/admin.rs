//! `[admin]`: the operator's listener (health, readiness, metrics) and checkpoint publication.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::check::{Checker, Section};

/// `[admin]`: health, metrics and published checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// Where signed checkpoints are also written as files, for publication.
    pub checkpoint_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    address: Option<String>,
    checkpoint_dir: Option<String>,
}

impl Section for AdminConfig {
    const KEY: &'static str = "admin";
    type Raw = RawAdmin;

    fn check(raw: RawAdmin, c: &mut Checker<'_>) -> Option<Self> {
        let address = c.socket(
            "admin.address",
            raw.address.as_deref().unwrap_or("127.0.0.1:9090"),
        );
        let checkpoint_dir = c.file("admin.checkpoint_dir", raw.checkpoint_dir);
        Some(AdminConfig {
            address: address?,
            checkpoint_dir,
        })
    }
}
