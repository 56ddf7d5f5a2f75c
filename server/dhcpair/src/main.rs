//! `dhcpair`: the server binary and its CLI. The thin shell around the sans-IO engine:
//! sockets, the store writer, timers, HTTP (metrics, health, status) and signals.
//!
//! Start reading at [`serve::run`]; the data path is described in ARCHITECTURE.md.

mod control;
mod http;
mod metrics;
mod net;
mod peer;
mod reload;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dhcpair_config::Config;
use dhcpair_engine::{ClientKey, Lease};
use dhcpair_store::{LeaseStore, SqliteStore};

#[derive(Debug, Parser)]
#[command(
    name = "dhcpair",
    version,
    about = "A DHCPv4 server pair with failover"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve DHCP with the given configuration.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        /// Seconds between looks at the config file for a change (0: reload on SIGHUP only).
        #[arg(long, default_value_t = 2)]
        reload_interval: u64,
        /// When a changed file needs a restart (failover peers, sockets, data directory), stop
        /// gracefully so the supervisor (kubelet, systemd) restarts with it, instead of refusing it.
        #[arg(long)]
        restart_on_change: bool,
    },
    /// Validate a configuration and exit non-zero with the error if it is not valid; warn
    /// (stderr, exit status 0) about a valid one that does not do what it looks like.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the failover relationships and pools of a running server.
    Status {
        /// The server's HTTP address (server.http).
        #[arg(long, default_value = "127.0.0.1:9167")]
        http: String,
        #[arg(long)]
        json: bool,
    },
    /// Tell a running server that its partner is down (draft-12 PARTNER-DOWN).
    PartnerDown {
        /// The failover relationship's name.
        name: String,
        #[arg(long, default_value = "127.0.0.1:9167")]
        http: String,
        /// File with the control token (else DHCPAIR_CONTROL_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Print the lease database of a data directory (works while the server runs).
    Leases {
        #[arg(long)]
        data_dir: PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            reload_interval,
            restart_on_change,
        } => serve::run(
            &config,
            (reload_interval > 0).then(|| std::time::Duration::from_secs(reload_interval)),
            restart_on_change,
        ),
        Command::Check { config } => check(&config),
        Command::Leases { data_dir, json } => leases(&data_dir, json),
        Command::Status { http, json } => control::status(&http, json),
        Command::PartnerDown {
            name,
            http,
            token_file,
        } => {
            let token = match token_file {
                Some(f) => std::fs::read_to_string(&f)
                    .map(|t| Some(t.trim().to_string()))
                    .map_err(anyhow::Error::from),
                None => Ok(std::env::var("DHCPAIR_CONTROL_TOKEN").ok()),
            };
            token.and_then(|t| control::partner_down(&http, &name, t))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhcpair: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Validate; print each [`dhcpair_config::warnings`] entry to stderr as `warning: FIELD:
/// MESSAGE` (warnings do not change the exit status) and the summary to stdout.
fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let c = Config::load(path)?;
    for w in dhcpair_config::warnings(&c) {
        eprintln!("warning: {w}");
    }
    let addrs: u64 = c.pools.iter().map(|p| p.size()).sum();
    println!(
        "{}: ok ({} pools, {} addresses, {} reservations, {} peers)",
        path.display(),
        c.pools.len(),
        addrs,
        c.pools.iter().map(|p| p.reservations.len()).sum::<usize>(),
        c.peers.len()
    );
    Ok(())
}

pub(crate) fn db_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("leases.db")
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn lease_json(l: &Lease) -> serde_json::Value {
    let client = match &l.client {
        Some(ClientKey::ClientId(id)) => Some(hex(id)),
        Some(ClientKey::Hardware { htype, chaddr }) => {
            let mut v = vec![*htype];
            v.extend_from_slice(chaddr);
            Some(hex(&v))
        }
        None => None,
    };
    serde_json::json!({
        "ip": l.ip.to_string(),
        "state": l.state.as_str(),
        "client": client,
        "hardwareAddress": hex(&l.chaddr),
        "hostname": l.hostname,
        "pool": l.pool,
        "starts": l.starts,
        "ends": l.ends,
        "cltt": l.cltt,
    })
}

fn leases(data_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let path = db_path(data_dir);
    if !path.exists() {
        anyhow::bail!("{}: no lease database here", path.display());
    }
    let mut store = SqliteStore::open_read_only(&path)?;
    let snap = store.load()?;
    if json {
        let rows: Vec<_> = snap.leases.iter().map(lease_json).collect();
        return emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = format!(
        "{:<16} {:<10} {:<18} {:<12} {:<20} {:>12}\n",
        "IP", "STATE", "HARDWARE", "POOL", "HOSTNAME", "ENDS"
    );
    for l in &snap.leases {
        let ends = if l.ends >= dhcpair_engine::FOREVER {
            "never".to_string()
        } else {
            l.ends.to_string()
        };
        out.push_str(&format!(
            "{:<16} {:<10} {:<18} {:<12} {:<20} {:>12}\n",
            l.ip,
            l.state.as_str(),
            hex(&l.chaddr),
            l.pool,
            l.hostname.as_deref().unwrap_or("-"),
            ends
        ));
    }
    emit(&out)
}

/// Write to stdout; a reader that stopped early (`dhcpair leases | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
