//! The whole run: lanes up, the sanity check (every server answers a plain DISCOVER, or
//! nothing is trusted), every selected scenario (servers reused while the spec stays the same
//! and no scenario needs a fresh database), the property, then the report.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::compare::{self, Row, Verdict};
use crate::lane::{self, Kind, Lane, StepResult};
use crate::property;
use crate::scenario::{c, discover, Scenario, Step};
use crate::scenarios;
use crate::spec::Spec;

/// How much longer a lane listens when it alone did not answer a step.
pub const LINGER: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone)]
pub struct Options {
    /// Run scenarios whose name contains any of these (all when empty).
    pub filter: Vec<String>,
    pub property: bool,
    pub seed: u64,
    pub sequences: usize,
    pub steps: usize,
    /// Also write the report here.
    pub report: Option<std::path::PathBuf>,
}

#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub failed: bool,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub duration: Duration,
}

/// Scenario number 0 is the sanity check; catalogue scenarios are numbered from 1 in
/// catalogue order (stable whatever the filter, so MACs and xids are too).
pub fn catalogue() -> Vec<(u16, Scenario)> {
    scenarios::all()
        .into_iter()
        .enumerate()
        .map(|(i, s)| (i as u16 + 1, s))
        .collect()
}

fn selected(opts: &Options) -> Vec<(u16, Scenario)> {
    let all = catalogue();
    let mut chosen: Vec<(u16, Scenario)> = all
        .into_iter()
        .filter(|(_, s)| {
            opts.filter.is_empty() || opts.filter.iter().any(|f| s.name.contains(f.as_str()))
        })
        .collect();
    // Group scenarios of one spec together (first appearance order), fresh ones keep their
    // place within the group.
    let mut first: HashMap<String, usize> = HashMap::new();
    for (i, (_, s)) in chosen.iter().enumerate() {
        first.entry(s.spec.key()).or_insert(i);
    }
    chosen.sort_by_key(|(_, s)| first[&s.spec.key()]);
    chosen
}

fn tools() -> Result<()> {
    if !dhcpair_e2e::is_root() {
        bail!("must run as root (network namespaces, AF_PACKET)");
    }
    for t in ["ip", "kea-dhcp4", "dhcpd", "curl"] {
        if dhcpair_e2e::which(t).is_none() {
            bail!("`{t}` is not installed (scripts/install-deps.sh installs it)");
        }
    }
    let bin = dhcpair_e2e::dhcpair_bin();
    if !bin.is_file() {
        bail!(
            "dhcpair binary not found at {} (cargo build -p dhcpair, or set DHCPAIR_BIN)",
            bin.display()
        );
    }
    if crate::adapters::kea_bootp_hook().is_none() {
        bail!("Kea's BOOTP hook (libdhcp_bootp.so) is missing");
    }
    Ok(())
}

/// Every server must answer a plain DISCOVER with an OFFER before any result is trusted; a
/// harness that hears nothing would otherwise report "all servers silent, all agree".
fn sanity(lanes: &mut [Lane]) -> Result<()> {
    for r in lane::start_all(lanes, &Spec::base()) {
        r?;
    }
    let steps = vec![Step::Send(Box::new(discover(c(0))))];
    let results = lane::run_all(lanes, 0, &steps);
    let mut bad = Vec::new();
    for (lane, r) in lanes.iter().zip(&results) {
        let kind = r.first().map(compare::reply_kind).unwrap_or_default();
        println!(
            "sanity: {} answers a plain DISCOVER with {kind}",
            lane.kind.name()
        );
        if kind != "OFFER" {
            bad.push(format!(
                "{} answered a plain DISCOVER with {kind:?}, not OFFER (log: {})",
                lane.kind.name(),
                lane.log_path().display()
            ));
        }
    }
    if !bad.is_empty() {
        bail!(
            "harness sanity check failed, no result can be trusted:\n  {}",
            bad.join("\n  ")
        );
    }
    Ok(())
}

fn run_scenario(lanes: &mut [Lane], dirty: &mut bool, num: u16, sc: &Scenario) -> Outcome {
    let started = Instant::now();
    let mut notes = Vec::new();
    let mut failed = false;
    let reuse = !sc.fresh && !*dirty && lanes.iter().all(|l| l.serves(&sc.spec));
    if !reuse {
        for (k, r) in Kind::ALL.iter().zip(lane::start_all(lanes, &sc.spec)) {
            if let Err(e) = r {
                failed = true;
                notes.push(format!("{} did not start: {e:#}", k.name()));
            }
        }
    }
    *dirty = sc.fresh;
    if failed {
        *dirty = true;
        return Outcome {
            name: sc.name.clone(),
            failed,
            rows: Vec::new(),
            notes,
            duration: started.elapsed(),
        };
    }
    let mut results = lane::run_all(lanes, num, &sc.steps);
    // Where the servers disagree on whether a step was answered, listen a while longer on
    // the silent lanes: an ACK held up by a slow fsync on a busy machine is late, not absent.
    let answered = |results: &[Vec<StepResult>], l: usize, i: usize| {
        matches!(results.get(l).and_then(|r| r.get(i)),
            Some(StepResult::Sent { replies, .. }) if !replies.is_empty())
    };
    let silent: Vec<bool> = (0..lanes.len())
        .map(|l| {
            (0..sc.steps.len()).any(|i| {
                let sent = matches!(
                    results.get(l).and_then(|r| r.get(i)),
                    Some(StepResult::Sent { .. })
                );
                sent && !answered(&results, l, i)
                    && (0..lanes.len()).any(|x| answered(&results, x, i))
            })
        })
        .collect();
    if silent.iter().any(|s| *s) {
        std::thread::scope(|s| {
            for ((lane, r), quiet) in lanes.iter_mut().zip(results.iter_mut()).zip(&silent) {
                if *quiet {
                    s.spawn(move || lane.linger(num, r, LINGER));
                }
            }
        });
    }
    for lane in lanes.iter_mut() {
        if !lane.alive() {
            failed = true;
            *dirty = true;
            notes.push(format!(
                "{} is not running after the scenario (log: {})",
                lane.kind.name(),
                lane.log_path().display()
            ));
        }
    }
    for lane in lanes.iter_mut() {
        for l in std::mem::take(&mut lane.late) {
            notes.push(format!("{}: late reply: {l}", lane.kind.name()));
        }
    }
    for (lane, r) in lanes.iter().zip(&results) {
        for x in r {
            if let StepResult::Unresolved(why) = x {
                if why.starts_with("send failed") {
                    failed = true;
                    notes.push(format!("{}: {why}", lane.kind.name()));
                }
            }
        }
    }
    let [d, k, i]: [Vec<StepResult>; 3] = match results.try_into() {
        Ok(a) => a,
        Err(_) => {
            notes.push("a lane returned no results".into());
            return Outcome {
                name: sc.name.clone(),
                failed: true,
                rows: Vec::new(),
                notes,
                duration: started.elapsed(),
            };
        }
    };
    let all = [d, k, i];
    let macs = [lanes[0].ep.mac, lanes[1].ep.mac, lanes[2].ep.mac];
    let rows = compare::compare(&sc.name, &sc.steps, &all, &sc.spec, sc.extra, macs);
    if rows.iter().any(|r| r.verdict.is_failure()) {
        failed = true;
    }
    Outcome {
        name: sc.name.clone(),
        failed,
        rows,
        notes,
        duration: started.elapsed(),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n.saturating_sub(1)).collect();
        format!("{t}…")
    }
}

/// The divergence table: every field where the three servers did not all agree.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | step | field | dhcpair | kea | isc | verdict |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.step,
            r.field,
            clip(&r.values[0], 48).replace('|', "\\|"),
            clip(&r.values[1], 48).replace('|', "\\|"),
            clip(&r.values[2], 48).replace('|', "\\|"),
            r.verdict.text()
        );
    }
    out
}

/// Run everything; returns whether the run passed.
pub fn run(opts: &Options) -> Result<bool> {
    tools()?;
    let chosen = selected(opts);
    if chosen.is_empty() && !opts.property {
        bail!("no scenario matches {:?}", opts.filter);
    }
    let t0 = Instant::now();
    let mut lanes: Vec<Lane> = Vec::new();
    for k in Kind::ALL {
        lanes.push(Lane::new(k)?);
    }
    sanity(&mut lanes)?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut dirty = true;
    for (n, sc) in &chosen {
        let o = run_scenario(&mut lanes, &mut dirty, *n, sc);
        let splits = o
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Split)
            .count();
        let intended = o
            .rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Intended(_)))
            .count();
        let fails: Vec<String> = o
            .rows
            .iter()
            .filter(|r| r.verdict.is_failure())
            .map(|r| format!("{}: {}", r.step, r.field))
            .collect();
        println!(
            "{} {} ({:.1}s{}{}){}{}",
            if o.failed { "FAIL" } else { "ok  " },
            o.name,
            o.duration.as_secs_f64(),
            if splits > 0 {
                format!(", {splits} split")
            } else {
                String::new()
            },
            if intended > 0 {
                format!(", {intended} intended")
            } else {
                String::new()
            },
            if fails.is_empty() {
                String::new()
            } else if fails.len() > 6 {
                format!(": {}; … ({} more)", fails[..6].join("; "), fails.len() - 6)
            } else {
                format!(": {}", fails.join("; "))
            },
            if o.notes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", o.notes.join("; "))
            },
        );
        outcomes.push(o);
    }
    // The property: dhcpair and Kea only.
    let mut prop = None;
    if opts.property {
        let t = Instant::now();
        for l in lanes.iter_mut() {
            l.stop();
        }
        let p = property::run(&mut lanes[..2], opts.seed, opts.sequences, opts.steps);
        println!(
            "{} property/random-sequences ({:.1}s): seed {:#x}, {} sequences, {} packets, {} compared (dhcpair vs kea: answered? which type?), {} differ{}",
            if p.failed() { "FAIL" } else { "ok  " },
            t.elapsed().as_secs_f64(),
            opts.seed,
            p.sequences,
            p.packets,
            p.compared,
            p.rows.len(),
            if p.errors.is_empty() && p.notes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", p.errors.iter().chain(&p.notes).cloned().collect::<Vec<_>>().join("; "))
            }
        );
        prop = Some(p);
    }
    for l in lanes.iter_mut() {
        l.stop();
    }

    // Report.
    let mut report = String::new();
    let mut rows: Vec<Row> = outcomes.iter().flat_map(|o| o.rows.clone()).collect();
    if let Some(p) = &prop {
        rows.extend(p.rows.iter().cloned());
    }
    let _ = writeln!(report, "\n## Divergence table ({} rows)\n", rows.len());
    report.push_str(&table(&rows));
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed).collect();
    let _ = writeln!(report, "\n## Failed scenarios ({})\n", failed.len());
    for o in &failed {
        let fields: Vec<String> = o
            .rows
            .iter()
            .filter(|r| r.verdict.is_failure())
            .map(|r| format!("{} `{}`", r.step, r.field))
            .collect();
        let _ = writeln!(
            report,
            "- {}: {}{}",
            o.name,
            fields.join(", "),
            if o.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", o.notes.join("; "))
            }
        );
    }
    let prop_failed = prop.as_ref().is_some_and(|p| p.failed());
    if prop_failed {
        let _ = writeln!(report, "- property/random-sequences");
    }
    let passed = outcomes.iter().filter(|o| !o.failed).count()
        + usize::from(prop.as_ref().is_some_and(|p| !p.failed()));
    let nfailed = failed.len() + usize::from(prop_failed);
    let summary = format!("{passed} passed, {nfailed} failed, 0 skipped");
    let _ = writeln!(
        report,
        "\nconformance: {} scenarios{} in {:.0}s; server starts: {}",
        outcomes.len(),
        if prop.is_some() { " + property" } else { "" },
        t0.elapsed().as_secs_f64(),
        lanes
            .iter()
            .map(|l| format!("{} {}", l.kind.name(), l.starts))
            .collect::<Vec<_>>()
            .join(", ")
    );
    print!("{report}");
    if let Some(path) = &opts.report {
        let _ = std::fs::write(path, format!("{report}\n{summary}\n"));
    }
    let ok = nfailed == 0;
    if !ok {
        // Keep the servers' logs for whoever reads the failures.
        std::env::set_var("DHCPAIR_E2E_KEEP", "1");
    }
    drop(lanes);
    println!("{summary}");
    Ok(ok)
}
