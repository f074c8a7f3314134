//! The `s62` binary: parse arguments, dispatch, print errors with their causes, set the exit code.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Print entries as JSON lines (works while a sidecar writes the same folder).
    Entries {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Verify a log from its stored bytes. Exit 0 intact, 1 tampered or corrupt, 2 could not run.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
        /// Note verifier key file (one or more keys, one per line).
        #[arg(long)]
        key: PathBuf,
        /// A signed checkpoint kept elsewhere; the log must still contain it. Repeatable.
        #[arg(long = "trust-checkpoint")]
        trust_checkpoint: Vec<PathBuf>,
        /// Skip the secondary-index check.
        #[arg(long)]
        no_indexes: bool,
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
        /// The log's note verifier key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Create a demo log with a realistic mix of events, print its checkpoint and verify it.
    Demo {
        #[arg(long, default_value = "./s62-demo")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    s62::app::init_tracing();
    let result = match cli.command {
        Command::Verify {
            data_dir,
            key,
            trust_checkpoint,
            no_indexes,
        } => return s62::commands::verify(&data_dir, &key, &trust_checkpoint, !no_indexes),
        Command::VerifyBundle { file, key } => {
            return s62::verify::bundle::verify_bundle_file(&file, &key);
        }
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
            from,
            limit,
        } => s62::commands::entries(&data_dir, from, limit),
        Command::StressAppend {
            data_dir,
            key_dir,
            producers,
            count,
        } => s62::commands::stress_append(&data_dir, &key_dir, producers, count),
        Command::Demo { data_dir } => s62::demo::run(&data_dir),
        Command::Serve { config } => s62::app::serve(&config).map_err(Into::into),
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
