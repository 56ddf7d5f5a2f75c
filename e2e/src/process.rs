//! A child process running inside a namespace (`ip netns exec NS cmd ...`), killed by PID on
//! drop, with its stdout and stderr in one log file of the test directory.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::netns::Netns;
use crate::wait_until;

/// A spawned child. `ip netns exec` execs the command in place, so [`Process::pid`] is the
/// command's own PID.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Run `argv` inside `ns`, logging to `log` (appended, so a restarted server keeps one log).
    pub fn spawn(ns: &Netns, name: &str, log: &Path, argv: &[&str]) -> Result<Process> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()]).args(argv);
        Process::spawn_command(name, log, cmd)
    }

    /// Spawn an already built command (used for the few commands that need a wrapper).
    pub fn spawn_command(name: &str, log: &Path, mut cmd: Command) -> Result<Process> {
        let out = open_log(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawn {name}: {cmd:?}"))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    /// Like [`Process::spawn_command`], but stdout goes to its own file (`out`) for parsing.
    pub fn spawn_split(name: &str, out: &Path, log: &Path, mut cmd: Command) -> Result<Process> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(open_log(out)?)
            .stderr(open_log(log)?)
            .spawn()
            .with_context(|| format!("spawn {name}: {cmd:?}"))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal by name (`TERM`, `USR1`, ...) to this PID.
    pub fn signal(&self, sig: &str) -> Result<()> {
        if self.exited.is_some() {
            bail!("{} (pid {}) already exited", self.name, self.pid());
        }
        signal_pid(self.pid(), sig)
    }

    /// The exit status, if the process has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Wait (polling) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let name = format!("{} (pid {}) to exit", self.name, self.pid());
        wait_until(name, timeout, || self.try_wait())
    }

    /// SIGKILL and reap. Idempotent.
    pub fn kill9(&mut self) {
        if self.try_wait().is_some() {
            return;
        }
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }

    /// SIGTERM, then wait up to `grace` for a clean exit; SIGKILL if it does not come.
    /// Returns the exit status and whether it exited within the grace period.
    pub fn terminate(&mut self, grace: Duration) -> (Option<ExitStatus>, bool) {
        if let Some(s) = self.try_wait() {
            return (Some(s), true);
        }
        let _ = self.signal("TERM");
        match self.wait_exit(grace) {
            Ok(s) => (Some(s), true),
            Err(_) => {
                self.kill9();
                (self.exited, false)
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `kill -s SIG PID`.
pub fn signal_pid(pid: u32, sig: &str) -> Result<()> {
    let out = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .output()
        .context("run kill")?;
    if !out.status.success() {
        bail!(
            "kill -s {sig} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// Run a command to completion and return its stdout; an error carries stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
