//! `dhcp-load`: the e2e relay-mode load client (see `dhcpair_e2e::load`). Run it inside a
//! namespace; it prints one JSON [`LoadReport`](dhcpair_e2e::load::LoadReport) line at the end.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use dhcpair_e2e::load::{run_load, LoadOptions};

/// Relay-mode DHCPv4 load: many DISCOVER/OFFER/REQUEST/ACK exchanges for distinct MACs.
#[derive(Debug, Parser)]
struct Args {
    /// Our address: bound on --port and sent as giaddr.
    #[arg(long)]
    bind: Ipv4Addr,
    /// The server's address.
    #[arg(long)]
    server: Ipv4Addr,
    #[arg(long, default_value_t = 67)]
    port: u16,
    /// Third byte of every MAC (02:e2:TAG:..), to keep runs apart.
    #[arg(long, default_value_t = 0)]
    mac_tag: u8,
    /// Index of the first client.
    #[arg(long, default_value_t = 0)]
    first: u32,
    #[arg(long)]
    count: u32,
    #[arg(long, default_value_t = 16)]
    concurrency: u32,
    /// New exchanges started per second at most.
    #[arg(long)]
    rate: Option<u32>,
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
    #[arg(long, default_value_t = 4)]
    retries: u32,
    #[arg(long, default_value_t = 30_000)]
    deadline_ms: u64,
    /// The ACK record (`ack <mac> <ip>` per line, appended).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let opts = LoadOptions {
        bind: a.bind,
        server: a.server,
        port: a.port,
        mac_tag: a.mac_tag,
        first: a.first,
        count: a.count,
        concurrency: a.concurrency.max(1),
        rate: a.rate.filter(|r| *r > 0),
        timeout: Duration::from_millis(a.timeout_ms),
        retries: a.retries,
        deadline: Duration::from_millis(a.deadline_ms),
        out: a.out,
    };
    let report = run_load(&opts)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
