//! The `s62` binary: parse arguments, dispatch, print errors with their causes, set the exit code.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc. Verification decodes every entry on worker threads and
/// frees it on the folding thread, which glibc handles slowly (malloc, free and consolidation
/// were ~35 % of the verify benchmark's samples): with mimalloc that benchmark runs 1.37–1.6×
/// faster (benches/README.md). Appends and the hub showed no difference either way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "s62",
    version,
    about = "Audit-logging sidecar for records systems (DPA 2018 s62)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar: proxy, log writer (and query/admin listeners when configured).
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the audit hub: verify the logs replicated to JetStream, keep a verified copy of each,
    /// and log an alert for any fork, gap, bad signature or stream behind a checkpoint; with
    /// `[hub.query]`, serve the auditor query service across every log.
    Hub {
        #[arg(long)]
        config: PathBuf,
    },
    /// Generate a log signing key: DIR/log.key (0600) and DIR/log.pub (note verifier key).
    Keygen {
        /// The log's checkpoint origin, also the key name (e.g. records.example.police.uk/s62).
        #[arg(long)]
        origin: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Hand the log over to a new signing key (run with the sidecar stopped).
    RotateKey {
        #[arg(long)]
        data_dir: PathBuf,
        /// Folder holding the current log.key and log.pub.
        #[arg(long)]
        key_dir: PathBuf,
        /// Folder to write the new log.key and log.pub (which lists all keys) to.
        #[arg(long)]
        new_key_dir: PathBuf,
    },
    /// Print the latest signed checkpoint note exactly as signed.
    Checkpoint {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print entries as JSON lines. Without --purpose every personal value is withheld and the
    /// read is not logged (works while a sidecar writes the same folder). With --purpose,
    /// --case-ref and --actor the values are printed, after the read is logged as an audit-query
    /// entry: written directly when no sidecar holds the folder (needs --key-file or --config),
    /// else through the running sidecar's admin listener (--admin or --config's [admin] address).
    Entries {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A sidecar config: log.data_dir, log.key_file and [admin] address are taken from it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many entries (with --purpose: 1 to 10000, one logged read; default 10000).
        #[arg(long)]
        limit: Option<u64>,
        /// Why the log is read (DPA 2018 s62(4)): lawfulness, self-monitoring,
        /// integrity-and-security or criminal-proceedings.
        #[arg(long, requires_all = ["case_ref", "actor"])]
        purpose: Option<String>,
        /// The case the read is for (logged with the read).
        #[arg(long, requires = "purpose")]
        case_ref: Option<String>,
        /// Who is reading: recorded as the actor of the audit-query entry (stated, not checked).
        #[arg(long, requires = "purpose")]
        actor: Option<String>,
        /// The log's signing key (log.key), to log the read when no sidecar holds the folder.
        #[arg(long, requires = "purpose")]
        key_file: Option<PathBuf>,
        /// The running sidecar's admin listener, e.g. http://127.0.0.1:9090 (loopback only).
        #[arg(long, requires = "purpose")]
        admin: Option<String>,
    },
    /// Verify a log from its stored bytes. Exit 0 intact, 1 tampered or corrupt, 2 could not run.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
        /// The log's log.pub: its note verifier keys (and, after rotations, the sizes each signs).
        #[arg(long)]
        key: PathBuf,
        /// The origin the log must have (default: the name of its keys).
        #[arg(long)]
        origin: Option<String>,
        /// A signed checkpoint kept elsewhere; the log must still contain it. Repeatable.
        #[arg(long = "trust-checkpoint")]
        trust_checkpoint: Vec<PathBuf>,
        /// Skip the secondary-index check.
        #[arg(long)]
        no_indexes: bool,
        /// Check each checkpoint signature alone with Ed25519 verify_strict (cofactorless, as
        /// Go's crypto/ed25519) instead of in batches, which made a whole verify 2.1 times
        /// faster (benches/README.md) and differ only on signatures made with the log's own key.
        #[arg(long)]
        strict_signatures: bool,
        /// A file of witness cosigner keys (vkeys, type 0x04); repeatable. The latest checkpoint
        /// must then carry --quorum valid cosignatures from distinct listed witnesses.
        #[arg(long)]
        witness: Vec<PathBuf>,
        /// Cosignatures from distinct listed witnesses required (with --witness).
        #[arg(long, default_value_t = 1, requires = "witness")]
        quorum: usize,
    },
    /// Append synthetic entries from concurrent producers, printing each receipt (crash tests).
    #[command(hide = true)]
    StressAppend {
        #[arg(long)]
        data_dir: PathBuf,
        /// Folder holding log.key.
        #[arg(long)]
        key_dir: PathBuf,
        #[arg(long, default_value_t = 16)]
        producers: usize,
        /// Stop after about this many entries (default: run until killed).
        #[arg(long)]
        count: Option<u64>,
        /// Hand every batch to the commit thread, even when idle (to compare with the default).
        #[arg(long)]
        pipelined_only: bool,
    },
    /// Run the built-in demo POLE records service (an upstream for demos and load tests).
    #[command(hide = true)]
    Records {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Ask the auditor query service (purpose and case reference required; every call is logged).
    Query(Box<s62::query::client::QueryArgs>),
    /// Verify an export bundle offline. Exit 0 intact, 1 tampered, 2 could not run.
    VerifyBundle {
        /// The bundle file written by `s62 query ... export`.
        file: PathBuf,
        /// The log's log.pub.
        #[arg(long)]
        key: PathBuf,
        /// The origin the log must have (default: the name of its keys).
        #[arg(long)]
        origin: Option<String>,
        /// A file of witness cosigner keys; the bundle's checkpoint must carry --quorum of them.
        #[arg(long)]
        witness: Vec<PathBuf>,
        /// Cosignatures from distinct listed witnesses required (with --witness).
        #[arg(long, default_value_t = 1, requires = "witness")]
        quorum: usize,
    },
    /// Run a witness (c2sp.org/tlog-witness) that cosigns other logs' checkpoints.
    Witness {
        #[arg(long)]
        config: PathBuf,
    },
    /// Generate a witness key: DIR/witness.key (0600) and DIR/witness.pub (cosigner vkey).
    WitnessKeygen {
        /// The witness's name, e.g. witness.dpo.example.police.uk.
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Create a demo log with a realistic mix of events, print its checkpoint and verify it.
    Demo {
        #[arg(long, default_value = "./s62-demo")]
        data_dir: PathBuf,
    },
}

/// The `--witness` files and `--quorum` of verify and verify-bundle; exit 2 if unreadable.
fn witness_requirement(
    files: &[PathBuf],
    quorum: usize,
) -> Result<Option<s62::verify::witness::WitnessRequirement>, ExitCode> {
    if files.is_empty() {
        return Ok(None);
    }
    s62::verify::witness::WitnessRequirement::from_files(files, quorum)
        .map(Some)
        .map_err(|e| {
            eprintln!("s62: could not run: --witness: {e}");
            ExitCode::from(2)
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        // The demo's terminal shows its story; the sidecar's own log goes to a file it names.
        Command::Demo { data_dir } => {
            if let Err(e) = s62::demo::init_tracing(data_dir) {
                eprintln!("s62: {e:#}");
                return ExitCode::from(2);
            }
        }
        _ => s62::app::init_tracing(),
    }
    let result = match cli.command {
        Command::Verify {
            data_dir,
            key,
            origin,
            trust_checkpoint,
            no_indexes,
            strict_signatures,
            witness,
            quorum,
        } => {
            let witness = match witness_requirement(&witness, quorum) {
                Ok(w) => w,
                Err(code) => return code,
            };
            return s62::commands::verify(s62::commands::VerifyArgs {
                data_dir: &data_dir,
                key_file: &key,
                origin,
                trusted: &trust_checkpoint,
                check_indexes: !no_indexes,
                strict_signatures,
                witness: witness.as_ref(),
            });
        }
        Command::VerifyBundle {
            file,
            key,
            origin,
            witness,
            quorum,
        } => {
            let witness = match witness_requirement(&witness, quorum) {
                Ok(w) => w,
                Err(code) => return code,
            };
            let code = s62::verify::bundle::verify_bundle_file(&file, &key, origin.as_deref());
            return match witness {
                Some(req) if code == ExitCode::SUCCESS => {
                    s62::verify::witness::verify_bundle_quorum(&file, &req)
                }
                _ => code,
            };
        }
        Command::Witness { config } => s62::witness::server::run(&config).map_err(Into::into),
        Command::WitnessKeygen { name, out } => s62::commands::witness_keygen(&name, &out),
        Command::Query(args) => s62::query::client::run(*args),
        Command::Keygen { origin, out } => s62::commands::keygen(&origin, &out),
        Command::RotateKey {
            data_dir,
            key_dir,
            new_key_dir,
        } => s62::commands::rotate_key(&data_dir, &key_dir, &new_key_dir),
        Command::Checkpoint { data_dir } => s62::commands::checkpoint(&data_dir),
        Command::Entries {
            data_dir,
            config,
            from,
            limit,
            purpose,
            case_ref,
            actor,
            key_file,
            admin,
        } => s62::commands::entries(s62::commands::EntriesArgs {
            data_dir,
            config,
            from,
            limit,
            purpose,
            case_ref,
            actor,
            key_file,
            admin,
        }),
        Command::StressAppend {
            data_dir,
            key_dir,
            producers,
            count,
            pipelined_only,
        } => s62::commands::stress_append(&data_dir, &key_dir, producers, count, pipelined_only),
        Command::Demo { data_dir } => s62::demo::run(&data_dir),
        Command::Serve { config } => s62::app::serve(&config).map_err(Into::into),
        Command::Hub { config } => s62::hub::serve(&config).map_err(Into::into),
        Command::Records { listen } => s62::records::run(listen).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s62: {e:#}");
            ExitCode::from(2)
        }
    }
}
