//! Alerts: what happens to `alert` entries once they are in the log. For now, their delivery to
//! a webhook and to syslog ([`deliver`]); the rules that write alerts live with what they watch
//! (`crate::compliance` for zombies).
//!
//! Must not depend on the proxy's request path or the writer: alerts are read from the store.

pub mod deliver;
