//! `dhcpair-conformance`: run the differential conformance scenarios (dhcpair against Kea and
//! ISC dhcpd) and the random-sequence property. Needs root. Exit 0 only when nothing failed.

use clap::Parser;

use dhcpair_conformance::{divergences, runner};

#[derive(Debug, Parser)]
#[command(about = "dhcpair against Kea and ISC dhcpd on the same DHCPv4 packets")]
struct Args {
    /// Run only scenarios whose name contains this (repeatable).
    #[arg(long)]
    filter: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Print DIVERGENCES.md (rendered from the intended-divergence table) and exit.
    #[arg(long)]
    render_divergences: bool,
    /// Skip the random-sequence property (it runs by default, also with --filter).
    #[arg(long)]
    no_property: bool,
    /// Seed of the property's random sequences.
    #[arg(long, default_value_t = 0x00c0_ffee)]
    seed: u64,
    /// How many random sequences.
    #[arg(long, default_value_t = 3)]
    sequences: usize,
    /// Packets per random sequence.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Also write the report (table, failures, summary) to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

fn main() {
    let args = Args::parse();
    if args.render_divergences {
        print!("{}", divergences::render_markdown());
        return;
    }
    if args.list {
        for (n, s) in runner::catalogue() {
            println!("{n:4} {:50} {}", s.name, s.about);
        }
        return;
    }
    let opts = runner::Options {
        filter: args.filter,
        property: !args.no_property,
        seed: args.seed,
        sequences: args.sequences.min(50),
        steps: args.steps.min(500),
        report: args.report,
    };
    match runner::run(&opts) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("conformance: cannot run: {e:#}");
            println!("0 passed, 1 failed, 0 skipped");
            std::process::exit(2);
        }
    }
}
