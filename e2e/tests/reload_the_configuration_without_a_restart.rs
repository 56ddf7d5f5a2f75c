//! Configuration hot reload, as Kubernetes delivers it: the config file is a ConfigMap volume
//! whose `..data` symlink is swapped to a new directory. The server notices the new contents
//! (and SIGHUP), applies a valid file without a restart, keeps every lease, refuses an invalid
//! file with `dhcpair check`'s message and a change that needs a restart, and keeps serving
//! the running configuration. A failover pair reloaded the same way stays NORMAL on the same
//! TCP connection.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use dhcpair_config::raw::{RawConfig, RawRange, RawReservation};
use dhcpair_e2e::failover::{
    start_pair, wait_balanced, wait_normal, Member, PairNet, PairSettings,
};
use dhcpair_e2e::{dhcpair_bin, scenario, wait_until, Dhclient, Lan, Net24, Server, TestEnv};

#[test]
fn reload_applies_a_configmap_update_keeps_the_lease_and_refuses_bad_files() {
    scenario(
        "reload_applies_a_configmap_update_keeps_the_lease_and_refuses_bad_files",
        single,
    );
}

#[test]
fn reload_keeps_a_failover_pair_normal_on_the_same_connection() {
    scenario(
        "reload_keeps_a_failover_pair_normal_on_the_same_connection",
        pair,
    );
}

#[test]
fn reload_with_restart_on_change_stops_gracefully_for_a_change_that_needs_a_restart() {
    scenario(
        "reload_with_restart_on_change_stops_gracefully_for_a_change_that_needs_a_restart",
        restart_on_change,
    );
}

/// A directory laid out as the kubelet lays out a ConfigMap volume: `server.yaml` ->
/// `..data/server.yaml`, `..data` -> `..<version>/`; an update writes a new version directory
/// and renames a new `..data` symlink over the old one (one atomic step), then removes the old
/// directory.
struct ConfigMap {
    dir: PathBuf,
    version: u32,
}

impl ConfigMap {
    /// Turn the server's config file into a symlink into a ConfigMap directory with the same
    /// contents (so the server sees no change).
    fn adopt(env: &TestEnv, server: &Server) -> Result<ConfigMap> {
        let yaml = std::fs::read_to_string(server.config_path())?;
        let mut cm = ConfigMap {
            dir: env.path("configmap"),
            version: 0,
        };
        std::fs::create_dir_all(&cm.dir)?;
        cm.update(&yaml)?;
        std::os::unix::fs::symlink("..data/server.yaml", cm.dir.join("server.yaml"))?;
        replace_with_symlink(&cm.dir.join("server.yaml"), server.config_path())?;
        Ok(cm)
    }

    fn update(&mut self, yaml: &str) -> Result<()> {
        let old = self.version_dir();
        self.version += 1;
        let new = self.version_dir();
        std::fs::create_dir_all(self.dir.join(&new))?;
        std::fs::write(self.dir.join(&new).join("server.yaml"), yaml)?;
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&new, &tmp)?;
        std::fs::rename(&tmp, self.dir.join("..data"))?;
        if self.version > 1 {
            std::fs::remove_dir_all(self.dir.join(old))?;
        }
        Ok(())
    }

    fn version_dir(&self) -> String {
        format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.version,
            1000 + self.version
        )
    }
}

/// Atomically make `link` a symlink to `target`.
fn replace_with_symlink(target: &Path, link: &Path) -> Result<()> {
    let tmp = link.with_extension("tmp-link");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)?;
    Ok(())
}

/// The config the server runs now, as its file says.
fn current(server: &Server) -> Result<RawConfig> {
    let text = std::fs::read_to_string(server.config_path())?;
    Ok(serde_yaml::from_str(&text)?)
}

/// The server's `/metrics` page; an error (which fails the test) when it cannot be read.
fn metrics_page(server: &Server) -> Result<String> {
    server
        .metrics()
        .context("the server's /metrics cannot be read")
}

/// A sample's value on a `/metrics` page (`name` with its labels as encoded), if it is there.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A sample's value in the server's `/metrics`: an error when the page cannot be read, `None`
/// when it has no such sample.
fn metric(server: &Server, name: &str) -> Result<Option<f64>> {
    Ok(sample(&metrics_page(server)?, name))
}

/// `dhcpair_config_reloads_total{result}`. A result that has not happened yet has no sample
/// (the family's labels are created on first use), which counts 0, but only on a page that was
/// read and carries the family; an unreadable page is an error.
fn reloads(server: &Server, result: &str) -> Result<f64> {
    let page = metrics_page(server)?;
    ensure!(
        page.lines()
            .any(|l| l.starts_with("# TYPE dhcpair_config_reloads counter")),
        "the server's /metrics has no dhcpair_config_reloads family:\n{page}"
    );
    Ok(sample(
        &page,
        &format!("dhcpair_config_reloads_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0))
}

/// Wait until the server counts `n` reloads with `result`; fails at once if `/metrics` cannot
/// be read.
fn wait_reloads(server: &Server, who: &str, result: &str, n: f64) -> Result<()> {
    wait_until(
        format!("{who}: dhcpair_config_reloads_total{{result=\"{result}\"}} == {n}"),
        Duration::from_secs(10),
        || match reloads(server, result) {
            Ok(got) => (got == n).then_some(Ok(())),
            Err(e) => Some(Err(e)),
        },
    )
    .with_context(|| {
        format!(
            "{who} config metrics:\n{}",
            server
                .metrics()
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("dhcpair_config"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?
}

fn sighup(server: &Server) -> Result<()> {
    let pid = server.pid().ok_or_else(|| anyhow!("server not running"))?;
    let st = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    ensure!(st.success(), "kill -HUP {pid} failed");
    Ok(())
}

fn single(env: &TestEnv) -> Result<()> {
    let lan = Lan::new(Net24::new(10, 66, 1))?;
    let net = lan.net;
    let mut server = Server::start(env, &lan.server, "server", common::lan_config(&lan, 10))?;
    let mut cm = ConfigMap::adopt(env, &server)?;
    let mac = lan.client.mac(lan.client_if())?;

    let client = Dhclient::start(env, &lan.client, lan.client_if())?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = common::check_bound(&lan, &bound, 10)?;
    let before = common::check_lease(&server, ip, &mac, "active")?;

    // v2: another DNS server for the pool, a second range, a reservation of the client's own
    // address with its own router.
    let mut v2 = current(&server)?;
    let pool = &mut v2.pools[0];
    pool.options.domain_name_servers = Some(vec![net.host(54)]);
    pool.ranges.push(RawRange {
        start: net.host(200),
        end: net.host(209),
    });
    let mut res: RawReservation = serde_yaml::from_str(&format!(
        "{{hardwareAddress: \"{mac}\", ipAddress: {ip}, options: {{routers: [{}]}}}}",
        net.host(254)
    ))?;
    res.hostname = Some("reserved".into());
    pool.reservations.push(res);
    let v2_yaml = serde_yaml::to_string(&v2)?;
    ensure!(reloads(&server, "ok")? == 0.0, "a reload before any change");
    cm.update(&v2_yaml)?;
    wait_reloads(&server, "server", "ok", 1.0)?;
    ensure!(
        server
            .log()
            .lines()
            .any(|l| l.contains("configuration reloaded (file changed")
                && l.contains("1 pools, 110 addresses, 1 reservations")),
        "no `configuration reloaded` line in the log"
    );
    let status = server.status()?;
    let p = status.pool("lan").context("no pool lan")?;
    ensure!(
        p.total == 110 && p.reserved == 1,
        "status after reload: {p:?}"
    );

    // The client renews its address and gets the new pool DNS and its reservation's router.
    let n = client.events.count();
    let renew = client.events.wait(n, &["RENEW"], Duration::from_secs(15))?;
    ensure!(renew.ip() == Some(ip), "renewed {:?}, had {ip}", renew.ip());
    ensure!(renew.dns() == vec![net.host(54)], "dns {:?}", renew.dns());
    ensure!(
        renew.routers() == vec![net.host(254)],
        "routers {:?}",
        renew.routers()
    );
    let after = common::check_lease(&server, ip, &mac, "active")?;
    ensure!(
        after.starts == before.starts && after.ends > before.ends,
        "the binding was not kept and extended: {after:?}, was {before:?}"
    );

    // SIGHUP reloads even when the file did not change.
    sighup(&server)?;
    wait_reloads(&server, "server", "ok", 2.0)?;

    // An invalid file: refused with `dhcpair check`'s message, the old config keeps serving.
    let mut bad = v2.clone();
    bad.pools[0].ranges[1] = RawRange {
        start: net.host(209),
        end: net.host(200),
    };
    cm.update(&serde_yaml::to_string(&bad)?)?;
    let check = Command::new(dhcpair_bin())
        .arg("check")
        .arg("--config")
        .arg(server.config_path())
        .output()?;
    ensure!(
        !check.status.success(),
        "dhcpair check accepted the bad file"
    );
    let check_msg = String::from_utf8_lossy(&check.stderr)
        .trim()
        .trim_start_matches("dhcpair: ")
        .to_string();
    ensure!(
        check_msg.contains("is after end"),
        "check says {check_msg:?}"
    );
    wait_reloads(&server, "server", "invalid", 1.0)?;
    ensure!(
        server.log().lines().any(
            |l| l.contains("configuration not reloaded (file changed): ") && l.contains(&check_msg)
        ),
        "the log does not carry check's message {check_msg:?}"
    );
    ensure!(
        metric(&server, "dhcpair_config_last_reload_successful")? == Some(0.0),
        "last reload successful should be 0"
    );

    // A change that needs a restart (another interface): refused, nothing applied.
    let mut restart = v2.clone();
    restart.server.interfaces.push("eth9".into());
    restart.pools[0].options.domain_name_servers = Some(vec![net.host(55)]);
    cm.update(&serde_yaml::to_string(&restart)?)?;
    wait_reloads(&server, "server", "rejected", 1.0)?;
    ensure!(
        server
            .log()
            .contains("needs a restart: server.interfaces changed"),
        "no `needs a restart` in the log"
    );

    // Still v2: the next renewal still carries DNS .54, the lease is still active, the pool
    // still has 110 addresses.
    let n = client.events.count();
    let renew = client.events.wait(n, &["RENEW"], Duration::from_secs(15))?;
    ensure!(
        renew.ip() == Some(ip) && renew.dns() == vec![net.host(54)],
        "after the refused files: {renew:?}"
    );
    common::check_lease(&server, ip, &mac, "active")?;
    let p = server
        .status()?
        .pool("lan")
        .cloned()
        .context("no pool lan")?;
    ensure!(p.total == 110, "status: {p:?}");
    ensure!(reloads(&server, "ok")? == 2.0, "an unexpected reload");
    ensure!(server.exited().is_none(), "the server exited");
    server.stop()?;
    Ok(())
}

fn pair(env: &TestEnv) -> Result<()> {
    let net = Net24::new(10, 66, 2);
    let pair = PairNet::new(net)?;
    let s = PairSettings::default();
    let (primary, secondary) = start_pair(env, &pair, &s)?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;

    let connects = |m: &Member| -> Result<(Option<f64>, Option<f64>)> {
        let key = |dir: &str| {
            format!(
                "dhcpair_failover_messages_total{{relationship=\"pair\",direction=\"{dir}\",message_type=\"connect\"}}"
            )
        };
        Ok((
            metric(&m.server, &key("sent"))?,
            metric(&m.server, &key("received"))?,
        ))
    };
    let before = (connects(&primary)?, connects(&secondary)?);
    ensure!(
        before.0 .0 == Some(1.0) && before.1 .1 == Some(1.0),
        "one CONNECT from the primary expected: {before:?}"
    );

    // Both: a changed option and a second pool in the relationship, written as an editor
    // would (new file renamed over the old).
    for m in [&primary, &secondary] {
        let mut c = current(&m.server)?;
        c.pools[0].options.domain_name = Some("reloaded.example.org".into());
        let mut lan2 = c.pools[0].clone();
        lan2.name = "lan2".into();
        lan2.ranges = vec![RawRange {
            start: net.host(200),
            end: net.host(219),
        }];
        c.pools.push(lan2);
        write_atomically(m.server.config_path(), &serde_yaml::to_string(&c)?)?;
    }
    for m in [&primary, &secondary] {
        wait_reloads(&m.server, m.name(), "ok", 1.0)?;
        let st = m.status()?;
        let lan2 = st.pools.iter().find(|p| p.name == "lan2");
        ensure!(
            lan2.is_some_and(|p| p.total == 20),
            "{}: lan2 after reload: {lan2:?}",
            m.name()
        );
    }

    // A change of peers needs a restart: refused on the primary, the link untouched.
    let mut c = current(&primary.server)?;
    c.peers[0].mclt = Some(s.mclt + 5);
    write_atomically(primary.server.config_path(), &serde_yaml::to_string(&c)?)?;
    wait_reloads(&primary.server, "primary", "rejected", 1.0)?;
    ensure!(
        primary
            .log()
            .contains("needs a restart: peers: relationship \"pair\" changed"),
        "no `needs a restart: peers` line"
    );

    wait_normal(&primary, &secondary, Duration::from_secs(5))?;
    for m in [&primary, &secondary] {
        let log = m.log();
        if let Some(l) = log.lines().find(|l| {
            l.contains("I move from normal")
                || l.contains("failover: lost")
                || l.contains("Failover CONNECT")
        }) {
            bail!("{}: the link moved: {l}", m.name());
        }
    }
    // A second wait so that a dropped and re-established link would have counted by now.
    std::thread::sleep(Duration::from_secs(2));
    let after = (connects(&primary)?, connects(&secondary)?);
    ensure!(
        after == before,
        "CONNECT counters changed across the reload: {before:?} -> {after:?}"
    );
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `--restart-on-change` (what the operator's pods run with): a change applied in place is
/// still applied in place; one that needs a restart stops the server gracefully, exit 0, so
/// its supervisor starts it again with the new file, leases intact.
fn restart_on_change(env: &TestEnv) -> Result<()> {
    let lan = Lan::new(Net24::new(10, 66, 3))?;
    let mut server = Server::start_with_args(
        env,
        &lan.server,
        "server",
        common::lan_config(&lan, 10),
        &["--restart-on-change"],
    )?;
    let mac = lan.client.mac(lan.client_if())?;
    let client = Dhclient::start(env, &lan.client, lan.client_if())?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = common::check_bound(&lan, &bound, 10)?;

    let mut c = current(&server)?;
    c.pools[0].options.domain_name = Some("in-place.example.org".into());
    write_atomically(server.config_path(), &serde_yaml::to_string(&c)?)?;
    wait_reloads(&server, "server", "ok", 1.0)?;
    ensure!(
        server.exited().is_none(),
        "the server stopped for an in-place change"
    );

    // A control token file is read at start only: this change needs a restart.
    let token = env.path("control-token");
    std::fs::write(&token, "s3cret\n")?;
    c.server.control_token_file = Some(token.display().to_string());
    write_atomically(server.config_path(), &serde_yaml::to_string(&c)?)?;
    let status = wait_until(
        "the server exits by itself",
        Duration::from_secs(20),
        || server.exited(),
    )?;
    ensure!(status.success(), "exit status {status:?}");
    ensure!(
        server
            .log()
            .contains("stopping gracefully to be restarted with it (--restart-on-change)"),
        "no restart line in the log"
    );
    // As the kubelet would: start it again; it serves with the new file and every lease.
    server.restart()?;
    common::check_lease(&server, ip, &mac, "active")?;
    ensure!(
        reloads(&server, "restart")? == 0.0 && reloads(&server, "rejected")? == 0.0,
        "the restarted server counts a reload already"
    );
    Ok(())
}
