//! Wires the sidecar: config → store → writer → proxy (and query/admin listeners); shutdown.
//! (The proxy lands with the sidecar issue; until then `serve` refuses to start.)

use std::path::Path;

/// `s62 serve --config FILE`.
pub fn serve(_config: &Path) -> anyhow::Result<()> {
    anyhow::bail!("`s62 serve` is not built yet: the proxy is the next piece of work")
}
