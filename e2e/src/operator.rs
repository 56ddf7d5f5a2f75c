//! The operator end to end without a cluster: `dhcpair-operator render` output run as the pods
//! would run it, a real CRD API server (k8s.io/apiextensions-apiserver + etcd on loopback,
//! started by `start-test-apiserver.sh`), and `dhcpair-operator run` pointed at both.
//!
//! - [`render`] runs `dhcpair-operator render` and splits its output per node: the ConfigMaps
//!   and the StatefulSet's pod template.
//! - [`Pod::start`] runs one node's pod inside that node's namespace (the pod has
//!   `hostNetwork: true`, so the node's namespace is its network): every volume of a container
//!   is bind-mounted at its `mountPath` (ConfigMap data written as files, read-only when the
//!   mount says so; a host path or claim becomes a directory of the test), init containers run
//!   first, and each container runs with its `securityContext`'s user, group and capabilities
//!   (`setpriv`). The mounts live in the private mount namespace `ip netns exec` gives each
//!   command; only the empty mount points are created on the host, and removed afterwards.
//! - [`RootLink`] gives the root namespace (where the operator and the API server run) an
//!   address on a test switch, so that the operator reaches the servers' HTTP ports at the
//!   nodes' InternalIPs.
//! - [`ApiServer`] starts the test API server in a directory of the test, talks to it with
//!   `curl` and the admin client certificate, and stops etcd and the API server by PID on drop.
//!
//! Like the rest of the harness, this module knows the operator only as a binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::netns::{Netns, Switch};
use crate::process::{run, signal_pid, Process};
use crate::{dhcpair_bin, wait_until, TestEnv};

/// The label the renderer puts on every object of one node.
pub const NODE_LABEL: &str = "dhcpair.io/node";

/// The workspace root (`e2e/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The operator under test: `$DHCPAIR_OPERATOR_BIN`, else `<workspace>/target/debug/dhcpair-operator`.
pub fn operator_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DHCPAIR_OPERATOR_BIN") {
        return PathBuf::from(p);
    }
    workspace_root()
        .join("target")
        .join("debug")
        .join("dhcpair-operator")
}

/// `GET url` from the root namespace (curl, 5 s); the body, or an error with curl's message.
pub fn http_get(url: &str) -> Result<String> {
    run(Command::new("curl").args(["-sS", "-f", "-m", "5", url]))
}

/// Rename an interface inside `ns` (down, rename, up): the rendered configs name the node's
/// interfaces (`interfaces: [eth1]`), so the test's links get those names.
pub fn rename_link(ns: &Netns, from: &str, to: &str) -> Result<()> {
    ns.ip(&["link", "set", "dev", from, "down"])?;
    ns.ip(&["link", "set", "dev", from, "name", to])?;
    ns.up(to)
}

/// A veth from the root namespace into a [`Switch`], with an address on the root side. The
/// pair disappears with the switch's namespace; drop also deletes it by name.
#[derive(Debug)]
pub struct RootLink {
    name: String,
}

impl RootLink {
    /// `cidr` (`"10.77.1.1/24"`) must not overlap a route the host already has: the test
    /// refuses to shadow the host's own networks.
    pub fn new(switch: &Switch, cidr: &str) -> Result<RootLink> {
        let (addr, len) = cidr
            .split_once('/')
            .with_context(|| format!("{cidr} is not in CIDR form"))?;
        let net = format!("{}/{len}", network_of(addr, len)?);
        let routes = run(Command::new("ip").args(["-4", "route", "show", "root", &net]))?;
        let covering = run(Command::new("ip").args(["-4", "route", "show", "match", &net]))?;
        let specific: Vec<&str> = covering
            .lines()
            .filter(|l| !l.starts_with("default"))
            .collect();
        ensure!(
            routes.trim().is_empty() && specific.is_empty(),
            "the host already routes {net} ({}{}); pick another test network",
            routes.trim(),
            specific.join("; ")
        );
        let name = format!("dpr{}", std::process::id());
        let peer = format!("{name}s");
        run(Command::new("ip").args([
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            switch.ns().name(),
        ]))?;
        let link = RootLink { name };
        // The switch's one bridge (its name is the switch's business).
        let bridges = switch.ns().ip(&["-o", "link", "show", "type", "bridge"])?;
        let bridge = bridges
            .split_whitespace()
            .nth(1)
            .map(|n| n.trim_end_matches(':').to_string())
            .with_context(|| format!("no bridge in {}", switch.ns().name()))?;
        switch.ns().ip(&["link", "set", &peer, "master", &bridge])?;
        switch.ns().up(&peer)?;
        run(Command::new("ip").args(["addr", "add", cidr, "dev", &link.name]))?;
        run(Command::new("ip").args(["link", "set", &link.name, "up"]))?;
        Ok(link)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for RootLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

fn network_of(addr: &str, len: &str) -> Result<std::net::Ipv4Addr> {
    let ip: std::net::Ipv4Addr = addr.parse().with_context(|| format!("address {addr}"))?;
    let len: u32 = len
        .parse()
        .with_context(|| format!("prefix length {len}"))?;
    ensure!(len <= 32, "prefix length {len}");
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Ok((u32::from(ip) & mask).into())
}

/// What `dhcpair-operator render` produced for one node.
#[derive(Debug, Clone)]
pub struct RenderedNode {
    pub node: String,
    /// ConfigMap name -> its `data` (file name -> content).
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// The StatefulSet's `spec.template.spec`.
    pub pod_spec: Yaml,
    pub stateful_set: String,
}

impl RenderedNode {
    /// The content of `file` in the node's ConfigMap(s).
    pub fn config_file(&self, file: &str) -> Option<&str> {
        self.config_maps
            .values()
            .find_map(|d| d.get(file).map(String::as_str))
    }
}

/// Run `dhcpair-operator render --nodes FACTS CRS...` (stdout kept as `render.yaml` in the
/// test directory) and group the objects by their node label.
pub fn render(
    env: &TestEnv,
    facts: &Path,
    crs: &[&Path],
) -> Result<BTreeMap<String, RenderedNode>> {
    let bin = operator_bin();
    ensure!(
        bin.is_file(),
        "dhcpair-operator not found at {} (cargo build -p dhcpair-operator, or set DHCPAIR_OPERATOR_BIN)",
        bin.display()
    );
    let out = run(Command::new(&bin)
        .arg("render")
        .arg("--nodes")
        .arg(facts)
        .args(crs))?;
    std::fs::write(env.path("render.yaml"), &out)?;
    parse_render(&out)
}

/// Split the rendered objects by node.
pub fn parse_render(text: &str) -> Result<BTreeMap<String, RenderedNode>> {
    let mut config_maps: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> =
        BTreeMap::new();
    let mut sets: BTreeMap<String, (String, Yaml)> = BTreeMap::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Yaml::deserialize(doc).context("render output is not YAML")?;
        if v.is_null() {
            continue;
        }
        let kind = str_at(&v, &["kind"]).unwrap_or_default();
        let name = str_at(&v, &["metadata", "name"]).unwrap_or_default();
        let node = str_at(&v, &["metadata", "labels", NODE_LABEL])
            .with_context(|| format!("{kind} {name} has no {NODE_LABEL} label"))?;
        match kind.as_str() {
            "ConfigMap" => {
                let data: BTreeMap<String, String> =
                    serde_yaml::from_value(at(&v, &["data"]).cloned().unwrap_or(Yaml::Null))
                        .with_context(|| format!("ConfigMap {name}: data"))?;
                config_maps.entry(node).or_default().insert(name, data);
            }
            "StatefulSet" => {
                let spec = at(&v, &["spec", "template", "spec"])
                    .cloned()
                    .with_context(|| format!("StatefulSet {name} has no pod template"))?;
                ensure!(
                    sets.insert(node.clone(), (name.clone(), spec)).is_none(),
                    "two StatefulSets for node {node}"
                );
            }
            other => bail!("render printed an unexpected {other} {name}"),
        }
    }
    let mut out = BTreeMap::new();
    for (node, (stateful_set, pod_spec)) in sets {
        out.insert(
            node.clone(),
            RenderedNode {
                config_maps: config_maps.remove(&node).unwrap_or_default(),
                node,
                pod_spec,
                stateful_set,
            },
        );
    }
    ensure!(
        config_maps.is_empty(),
        "ConfigMaps without a StatefulSet: {:?}",
        config_maps.keys().collect::<Vec<_>>()
    );
    Ok(out)
}

fn at<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at(v: &Yaml, path: &[&str]) -> Option<String> {
    at(v, path).and_then(Yaml::as_str).map(str::to_string)
}

fn strings(v: Option<&Yaml>) -> Vec<String> {
    v.and_then(Yaml::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Quote for `sh`.
fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Empty directories created on the host as mount points (the bind mounts themselves live in
/// the pods' private mount namespaces); removed on drop when still empty.
#[derive(Debug, Default)]
pub struct MountPoints {
    created: Vec<PathBuf>,
}

impl MountPoints {
    fn ensure(&mut self, path: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut p = Some(path);
        while let Some(d) = p {
            if d.exists() {
                break;
            }
            missing.push(d.to_path_buf());
            p = d.parent();
        }
        std::fs::create_dir_all(path)
            .with_context(|| format!("create mount point {}", path.display()))?;
        missing.reverse();
        self.created.extend(missing);
        ensure!(
            path.is_dir(),
            "mount point {} is not a directory",
            path.display()
        );
        Ok(())
    }
}

impl Drop for MountPoints {
    fn drop(&mut self) {
        for d in self.created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// One node's pod, run in the node's namespace as the kubelet would run the StatefulSet's pod.
#[derive(Debug)]
pub struct Pod {
    pub node: String,
    process: Process,
    /// `http://<node IP>:<port><path>` of the readiness probe.
    pub readiness_url: String,
}

impl Pod {
    /// Start `rendered`'s pod in `ns`, whose address `node_ip` the probes use. Everything the
    /// pod's volumes hold lives in `<node>-<volume>` directories of the test.
    pub fn start(
        env: &TestEnv,
        ns: &Netns,
        node_ip: std::net::Ipv4Addr,
        rendered: &RenderedNode,
        mount_points: &mut MountPoints,
    ) -> Result<Pod> {
        let spec = &rendered.pod_spec;
        let node = &rendered.node;
        ensure!(
            at(spec, &["hostNetwork"]).and_then(Yaml::as_bool) == Some(true),
            "{node}: the pod does not use hostNetwork; running it in the node's namespace would not be what a kubelet does"
        );
        // Volumes -> directories of the test.
        let mut volumes: BTreeMap<String, PathBuf> = BTreeMap::new();
        for vol in at(spec, &["volumes"])
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            let name = str_at(vol, &["name"]).context("a volume without a name")?;
            let dir = env.path(&format!("{node}-{name}"));
            std::fs::create_dir_all(&dir)?;
            if let Some(cm) = str_at(vol, &["configMap", "name"]) {
                let data = rendered.config_maps.get(&cm).with_context(|| {
                    format!("{node}: volume {name} needs ConfigMap {cm}, which was not rendered")
                })?;
                for (file, text) in data {
                    ensure!(
                        !file.contains('/') && !file.starts_with('.'),
                        "ConfigMap {cm}: odd key {file}"
                    );
                    std::fs::write(dir.join(file), text)?;
                }
            } else if at(vol, &["hostPath"]).is_none() && at(vol, &["emptyDir"]).is_none() {
                bail!("{node}: volume {name} is of a kind the test cannot stand in for: {vol:?}");
            }
            volumes.insert(name, dir);
        }
        let mut script = String::from("set -e\n");
        let pod_sc = at(spec, &["securityContext"]);
        let inits = at(spec, &["initContainers"])
            .and_then(Yaml::as_sequence)
            .cloned()
            .unwrap_or_default();
        let containers = at(spec, &["containers"])
            .and_then(Yaml::as_sequence)
            .cloned()
            .unwrap_or_default();
        ensure!(
            containers.len() == 1,
            "{node}: the test runs pods of one container, this one has {}",
            containers.len()
        );
        for (i, c) in inits.iter().chain(containers.iter()).enumerate() {
            let is_main = i == inits.len();
            let cname = str_at(c, &["name"]).unwrap_or_default();
            let mut mounted = Vec::new();
            for m in at(c, &["volumeMounts"])
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
            {
                let vname = str_at(m, &["name"]).context("a volumeMount without a name")?;
                let path =
                    str_at(m, &["mountPath"]).context("a volumeMount without a mountPath")?;
                let src = volumes
                    .get(&vname)
                    .with_context(|| format!("{node}/{cname}: no volume {vname}"))?;
                mount_points.ensure(Path::new(&path))?;
                script += &format!(
                    "mount --bind {} {}\n",
                    shq(&src.display().to_string()),
                    shq(&path)
                );
                if at(m, &["readOnly"]).and_then(Yaml::as_bool) == Some(true) {
                    script += &format!("mount -o remount,bind,ro {}\n", shq(&path));
                }
                mounted.push(path);
            }
            let argv = container_argv(c)?;
            let privs = setpriv_args(c, pod_sc)?;
            let line = privs
                .iter()
                .chain(argv.iter())
                .map(|s| shq(s))
                .collect::<Vec<_>>()
                .join(" ");
            if is_main {
                script += &format!("exec {line}\n");
            } else {
                script += &format!("{line}\n");
                for p in mounted.iter().rev() {
                    script += &format!("umount {}\n", shq(p));
                }
            }
        }
        std::fs::write(env.path(&format!("{node}-pod.sh")), &script)?;
        let main = &containers[0];
        let readiness_url = probe_url(main, node_ip, "readinessProbe")?;
        let mut cmd = ns.command(&["sh", "-c", &script]);
        cmd.env(
            "DHCPAIR_LOG",
            std::env::var("DHCPAIR_LOG").unwrap_or_else(|_| crate::server::SERVER_LOG.into()),
        );
        let process = Process::spawn_command(node, &env.path(&format!("{node}.log")), cmd)?;
        Ok(Pod {
            node: node.clone(),
            process,
            readiness_url,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Poll the readiness probe (from the root namespace, as a kubelet on the node would reach
    /// the host network) until 200; fail at once if the pod's process exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let url = self.readiness_url.clone();
        let mut died = None;
        let process = &mut self.process;
        let r = wait_until(format!("{}: GET {url} == 200", self.node), timeout, || {
            if let Some(s) = process.try_wait() {
                died = Some(s);
                return Some(());
            }
            http_get(&url).ok().map(|_| ())
        });
        if let Some(s) = died {
            bail!(
                "{}: the pod's process exited ({s}) before it was ready; log:\n{}",
                self.node,
                crate::server::tail(self.process.log_path(), 40)
            );
        }
        r
    }

    /// SIGTERM (the kubelet's stop) and wait; whether it exited by itself with status 0.
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        let (status, graceful) = self.process.terminate(grace);
        ensure!(graceful, "{} ignored SIGTERM for {grace:?}", self.node);
        ensure!(
            status.is_some_and(|s| s.success()),
            "{} exited with {status:?} after SIGTERM",
            self.node
        );
        Ok(())
    }
}

/// The container's command line on this machine: the image's entrypoint is `dhcpair` (see the
/// Dockerfile), so `args` alone, or a `command` naming dhcpair, runs the binary under test;
/// an init container may run `chown` (the only other command the renderer uses).
fn container_argv(c: &Yaml) -> Result<Vec<String>> {
    let command = strings(at(c, &["command"]));
    let args = strings(at(c, &["args"]));
    let dhcpair = dhcpair_bin().display().to_string();
    let mut argv = match command.split_first() {
        None => vec![dhcpair],
        Some((first, rest)) if first.ends_with("/dhcpair") || first == "dhcpair" => {
            std::iter::once(dhcpair)
                .chain(rest.iter().cloned())
                .collect()
        }
        Some((first, _)) if first == "chown" => command.clone(),
        Some((first, _)) => bail!("the test does not know how to run the command {first:?}"),
    };
    argv.extend(args);
    Ok(argv)
}

/// `setpriv` arguments for the container's (or the pod's) `securityContext`: user, group, no
/// supplementary groups, and exactly the added capabilities when the container drops ALL.
fn setpriv_args(c: &Yaml, pod_sc: Option<&Yaml>) -> Result<Vec<String>> {
    let sc = at(c, &["securityContext"]);
    let num = |key: &str| -> Option<u64> {
        sc.and_then(|s| s.get(key))
            .or_else(|| pod_sc.and_then(|s| s.get(key)))
            .and_then(Yaml::as_u64)
    };
    let mut out = vec!["setpriv".to_string()];
    if let Some(uid) = num("runAsUser") {
        let gid = num("runAsGroup").unwrap_or(uid);
        out.push(format!("--reuid={uid}"));
        out.push(format!("--regid={gid}"));
        out.push("--clear-groups".into());
    }
    let drop = strings(sc.and_then(|s| at(s, &["capabilities", "drop"])));
    let add = strings(sc.and_then(|s| at(s, &["capabilities", "add"])));
    if drop.iter().any(|d| d == "ALL") {
        let mut caps = String::from("-all");
        for a in &add {
            ensure!(
                a.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
                "odd capability {a}"
            );
            caps += &format!(",+{}", a.to_ascii_lowercase());
        }
        for opt in ["--inh-caps", "--ambient-caps", "--bounding-set"] {
            out.push(format!("{opt}={caps}"));
        }
    } else if !drop.is_empty() || !add.is_empty() {
        bail!("the test runs containers that drop ALL capabilities and add some; this one drops {drop:?} adds {add:?}");
    }
    if sc
        .and_then(|s| s.get("allowPrivilegeEscalation"))
        .and_then(Yaml::as_bool)
        == Some(false)
    {
        out.push("--no-new-privs".into());
    }
    out.push("--".into());
    Ok(out)
}

/// `http://<node_ip>:<port><path>` of an httpGet probe (port by number or by port name).
fn probe_url(c: &Yaml, node_ip: std::net::Ipv4Addr, probe: &str) -> Result<String> {
    let get = at(c, &[probe, "httpGet"]).with_context(|| format!("no {probe}.httpGet"))?;
    let path = str_at(get, &["path"]).unwrap_or_else(|| "/".into());
    let port = match get.get("port") {
        Some(Yaml::Number(n)) => n.as_u64().context("odd probe port")?,
        Some(Yaml::String(name)) => at(c, &["ports"])
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .find(|p| str_at(p, &["name"]).as_deref() == Some(name))
            .and_then(|p| at(p, &["containerPort"]).and_then(Yaml::as_u64))
            .with_context(|| format!("{probe}: no container port named {name}"))?,
        other => bail!("{probe}: odd port {other:?}"),
    };
    Ok(format!("http://{node_ip}:{port}{path}"))
}

/// A test API server: etcd + k8s.io/apiextensions-apiserver on loopback, its state (PKI,
/// kubeconfig, logs, PID files) in `<test dir>/apiserver`. Stopped by PID on drop.
#[derive(Debug)]
pub struct ApiServer {
    dir: PathBuf,
    url: String,
}

impl ApiServer {
    /// Run `start` (`start-test-apiserver.sh DIR`) for at most 120 s.
    pub fn start(env: &TestEnv, start: &Path) -> Result<ApiServer> {
        ensure!(
            start.is_file(),
            "no test API server start script at {} (set DHCPAIR_KUBE_TOOLS)",
            start.display()
        );
        let dir = env.path("apiserver");
        std::fs::create_dir_all(&dir)?;
        // Created before the script runs, so that whatever it started is stopped on drop.
        let mut api = ApiServer {
            dir: dir.clone(),
            url: String::new(),
        };
        let mut cmd = Command::new("bash");
        cmd.arg(start).arg(&dir);
        let mut p = Process::spawn_command(
            "start-test-apiserver",
            &env.path("apiserver-start.log"),
            cmd,
        )?;
        let status = p
            .wait_exit(Duration::from_secs(120))
            .context("start-test-apiserver.sh did not finish")?;
        ensure!(
            status.success(),
            "start-test-apiserver.sh failed ({status}):\n{}\n{}",
            p.log(),
            crate::server::tail(&dir.join("apiserver.log"), 20)
        );
        let kc: Yaml = serde_yaml::from_str(&std::fs::read_to_string(api.kubeconfig())?)?;
        api.url = kc
            .get("clusters")
            .and_then(|c| c.get(0))
            .and_then(|c| str_at(c, &["cluster", "server"]))
            .context("kubeconfig without clusters[0].cluster.server")?;
        Ok(api)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One request with the admin client certificate; the HTTP code and the JSON body
    /// (`{"message": text}` when the body is not JSON).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<(u16, Json)> {
        let pki = self.dir.join("pki");
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-m",
            "20",
            "-X",
            method,
            "-H",
            "Accept: application/json",
        ])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .args(["-w", "\n%{http_code}"]);
        if let Some((ctype, data)) = body {
            let file = self.dir.join("request.body");
            std::fs::write(&file, data)?;
            cmd.args(["-H", &format!("Content-Type: {ctype}")])
                .arg("--data-binary")
                .arg(format!("@{}", file.display()));
        }
        cmd.arg(format!("{}{path}", self.url));
        let out = run(&mut cmd)?;
        let (text, code) = out
            .trim_end()
            .rsplit_once('\n')
            .with_context(|| format!("curl printed no status line: {out}"))?;
        let code: u16 = code
            .trim()
            .parse()
            .with_context(|| format!("odd HTTP status {code}"))?;
        let json =
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::json!({ "message": text }));
        Ok((code, json))
    }

    /// Server-side apply of one object (YAML) at `path`; error unless 200/201.
    pub fn apply(&self, path: &str, yaml: &str) -> Result<Json> {
        let (code, body) = self.request(
            "PATCH",
            &format!("{path}?fieldManager=dhcpair-e2e&force=true"),
            Some(("application/apply-patch+yaml", yaml.as_bytes())),
        )?;
        ensure!(
            code == 200 || code == 201,
            "apply {path}: HTTP {code}: {}",
            body.get("message")
                .and_then(Json::as_str)
                .unwrap_or_default()
        );
        Ok(body)
    }

    /// Apply a CRD and wait until it is Established and its resources answer.
    pub fn apply_crd(&self, yaml: &str) -> Result<Crd> {
        let doc: Yaml = serde_yaml::from_str(yaml)?;
        let name = str_at(&doc, &["metadata", "name"]).context("CRD without a name")?;
        let crd = Crd {
            group: str_at(&doc, &["spec", "group"]).context("CRD without spec.group")?,
            plural: str_at(&doc, &["spec", "names", "plural"]).context("CRD without a plural")?,
            kind: str_at(&doc, &["spec", "names", "kind"]).context("CRD without a kind")?,
        };
        self.apply(
            &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
            yaml,
        )?;
        wait_until(
            format!("CRD {name} Established"),
            Duration::from_secs(30),
            || {
                let (_, crd) = self
                    .request(
                        "GET",
                        &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
                        None,
                    )
                    .ok()?;
                let established = crd
                    .pointer("/status/conditions")
                    .and_then(Json::as_array)?
                    .iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True");
                established.then_some(())
            },
        )?;
        Ok(crd)
    }

    /// Stop etcd and the API server by their PIDs (TERM, then KILL after 5 s).
    fn stop(&self) {
        for f in ["apiserver.pid", "etcd.pid"] {
            let Some(pid) = std::fs::read_to_string(self.dir.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            else {
                continue;
            };
            if !alive(pid) {
                continue;
            }
            let _ = signal_pid(pid, "TERM");
            if wait_until(format!("pid {pid} to exit"), Duration::from_secs(5), || {
                (!alive(pid)).then_some(())
            })
            .is_err()
            {
                let _ = signal_pid(pid, "KILL");
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// What the test needs to know of one custom resource definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crd {
    pub group: String,
    pub plural: String,
    pub kind: String,
}

impl Crd {
    /// `/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>`.
    pub fn path(&self, version: &str, namespace: &str, name: &str) -> String {
        format!(
            "/apis/{}/{version}/namespaces/{namespace}/{}/{name}",
            self.group, self.plural
        )
    }
}

/// The API path of a namespaced custom resource document (`apiVersion`, `kind`,
/// `metadata.namespace`, `metadata.name`), looked up among `crds`.
pub fn cr_path(crds: &[Crd], doc: &Yaml) -> Result<String> {
    let kind = str_at(doc, &["kind"]).context("a document without kind")?;
    let api_version = str_at(doc, &["apiVersion"]).context("a document without apiVersion")?;
    let (group, version) = api_version
        .split_once('/')
        .with_context(|| format!("apiVersion {api_version} has no group"))?;
    let crd = crds
        .iter()
        .find(|c| c.kind == kind && c.group == group)
        .ok_or_else(|| anyhow!("no CRD for {kind} in {group}"))?;
    let ns = str_at(doc, &["metadata", "namespace"]).unwrap_or_else(|| "default".into());
    let name = str_at(doc, &["metadata", "name"]).context("a document without a name")?;
    Ok(crd.path(version, &ns, &name))
}

/// The YAML documents of a text (empty ones skipped).
pub fn yaml_documents(text: &str) -> Result<Vec<Yaml>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Yaml::deserialize(doc)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}
