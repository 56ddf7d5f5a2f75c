//! `dhcpair-operator`: the operator binary. `crdgen` writes the CRD YAML; `render` prints the
//! objects the operator would apply for a set of CRs and node facts (no cluster needed).

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
