//! `dhcpair-operator`: the operator binary. `crdgen` writes the CRD YAML; `render` prints the
//! objects the operator would apply for a set of CRs and node facts (no cluster needed); `run`
//! is the controller.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "dhcpair-operator",
    version,
    about = "The dhcpair Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the CRD YAML files (failoverpeer.yaml, pool.yaml) into a directory.
    Crdgen {
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
    /// Run the controller against the cluster of the kubeconfig (or in-cluster config).
    Run {
        /// Node facts (a YAML list of {name, internalIP, labels}) used when the API server
        /// does not serve Nodes (a CRD-only test API server).
        #[arg(long)]
        nodes: Option<PathBuf>,
        /// The servers' image unless a FailoverPeer names one.
        #[arg(long, env = "DHCPAIR_SERVER_IMAGE")]
        image: Option<String>,
        /// The servers' HTTP port (probes, metrics, /v1/status).
        #[arg(long, env = "DHCPAIR_SERVER_HTTP_PORT", default_value_t = 9167)]
        http_port: u16,
        /// Watch only this namespace (empty: all namespaces).
        #[arg(long, env = "DHCPAIR_WATCH_NAMESPACE", default_value = "")]
        namespace: String,
        /// Timeout of one /v1/status request, in milliseconds.
        #[arg(long, default_value_t = 1500)]
        status_timeout_ms: u64,
        /// Seconds between status refreshes when nothing changes.
        #[arg(long, default_value_t = 30)]
        resync_seconds: u64,
        /// Reconcile only while holding the coordination.k8s.io Lease "dhcpair-operator"
        /// (several replicas: one leads, the others stand by); identity POD_NAME or hostname.
        #[arg(long, env = "DHCPAIR_LEADER_ELECTION",
              value_parser = clap::builder::FalseyValueParser::new())]
        leader_election: bool,
        /// The Lease's namespace (default: the kubeconfig's or the pod's namespace).
        #[arg(long, env = "POD_NAMESPACE")]
        leader_election_namespace: Option<String>,
    },
    /// Print the ConfigMaps and StatefulSets the operator would apply for CR files and node
    /// facts (a YAML list of {name, internalIP, labels}); errors of CRs go to stderr and make
    /// the exit status non-zero.
    Render {
        #[arg(long)]
        nodes: PathBuf,
        /// The servers' image unless a FailoverPeer names one.
        #[arg(long)]
        image: Option<String>,
        /// Files with FailoverPeer and Pool documents.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crdgen { out } => crdgen(&out),
        Command::Render {
            nodes,
            image,
            files,
        } => render(&nodes, image, &files),
        Command::Run {
            nodes,
            image,
            http_port,
            namespace,
            status_timeout_ms,
            resync_seconds,
            leader_election,
            leader_election_namespace,
        } => run(RunArgs {
            nodes,
            image,
            http_port,
            namespace,
            status_timeout_ms,
            resync_seconds,
            leader_election,
            leader_election_namespace,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhcpair-operator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn crdgen(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for (name, text) in dhcpair_operator::crdgen::render_crds()? {
        let path = out.join(name);
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[derive(Debug)]
struct RunArgs {
    nodes: Option<PathBuf>,
    image: Option<String>,
    http_port: u16,
    namespace: String,
    status_timeout_ms: u64,
    resync_seconds: u64,
    leader_election: bool,
    leader_election_namespace: Option<String>,
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    use dhcpair_operator::{controller, input, render};
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let node_file = match &args.nodes {
        Some(p) => Some(input::nodes_from_yaml(
            &p.display().to_string(),
            &std::fs::read_to_string(p)?,
        )?),
        None => None,
    };
    let mut settings = render::Settings {
        http_port: args.http_port,
        ..render::Settings::default()
    };
    if let Some(i) = args.image {
        settings.default_image = i;
    }
    let leader_election = if args.leader_election {
        let identity = dhcpair_operator::leader::identity().ok_or_else(|| {
            anyhow::anyhow!("--leader-election needs an identity: set POD_NAME (or a hostname)")
        })?;
        Some(controller::LeaderElection {
            namespace: args.leader_election_namespace.filter(|n| !n.is_empty()),
            identity,
        })
    } else {
        None
    };
    let opts = controller::Options {
        settings,
        namespace: Some(args.namespace).filter(|n| !n.is_empty()),
        node_file,
        status_timeout: std::time::Duration::from_millis(args.status_timeout_ms),
        resync: std::time::Duration::from_secs(args.resync_seconds.max(1)),
        leader_election,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = kube::Client::try_default().await?;
        controller::run(client, opts).await?;
        Ok(())
    })
}

fn render(nodes: &std::path::Path, image: Option<String>, files: &[PathBuf]) -> anyhow::Result<()> {
    use dhcpair_operator::{input, render};
    let node_facts = input::nodes_from_yaml(
        &nodes.display().to_string(),
        &std::fs::read_to_string(nodes)?,
    )?;
    let mut res = input::Resources::default();
    for f in files {
        res.add_yaml(&f.display().to_string(), &std::fs::read_to_string(f)?)?;
    }
    let mut settings = render::Settings::default();
    if let Some(i) = image {
        settings.default_image = i;
    }
    let out = render::render(&res.peers, &res.pools, &node_facts, &settings);
    print!("{}", input::objects_yaml(&out)?);
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    for e in &out.errors {
        eprintln!("invalid: {e}");
    }
    if out.errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} CR(s) cannot be rendered", out.errors.len())
    }
}
