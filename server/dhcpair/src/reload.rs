//! Configuration reload triggers: SIGHUP, and a change of the config file's contents.
//!
//! Kubernetes updates a ConfigMap volume by swapping the `..data` symlink to a new directory,
//! so watching the file's inode misses updates; instead the file is read through its path
//! (following every symlink) every `--reload-interval` seconds and its contents hashed. A new
//! hash, or SIGHUP (always), parses and validates the file with the code `dhcpair serve` and
//! `dhcpair check` use at start. An invalid file is logged with `check`'s message, counted
//! (`result="invalid"`) and not retried until the contents change again; a valid one goes to
//! the engine thread (`Input::Reload`), which applies it or refuses it (`serve.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dhcpair_config::{Config, ConfigError};
use tokio::signal::unix::Signal;
use tracing::{info, warn};

use crate::metrics::{Metrics, ReloadResult};
use crate::serve::{Input, InputTx};

/// What made the server look at its config file again (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Sighup,
    FileChanged,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Sighup => "SIGHUP",
            Trigger::FileChanged => "file changed",
        }
    }
}

/// FNV-1a (64 bit) of the file's bytes, as 16 hex digits: stable across builds and versions,
/// so the hash in the log and in `dhcpair_config_info` can be compared with `sha`-less tools
/// (and with the one the operator computes, should it ever want to).
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Read and validate the config file exactly as `Config::load` does, and hash what was read.
pub fn load(path: &Path) -> Result<(Config, String), ConfigError> {
    let (text, hash) = read(path)?;
    Ok((parse(path, &text)?, hash))
}

/// The file's text and its hash; errors as `Config::load` words them.
fn read(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let hash = content_hash(&bytes);
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        file,
        message: format!("not UTF-8: {e}"),
    })?;
    Ok((text, hash))
}

fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(&path.display().to_string(), text)
}

/// Watch for reload triggers until the engine stops. `interval` `None`: SIGHUP only.
pub async fn watch(
    path: PathBuf,
    interval: Option<Duration>,
    mut hup: Signal,
    running_hash: String,
    input: InputTx,
    metrics: Arc<Metrics>,
) {
    // The contents (or read error) last looked at, whether applied, refused or invalid: a
    // timer tick acts only on a change from it, so a bad file is reported once, not every tick.
    let mut seen = running_hash;
    let period = interval.unwrap_or(Duration::from_secs(3600));
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    loop {
        let trigger = tokio::select! {
            s = hup.recv() => match s {
                Some(()) => Trigger::Sighup,
                None => return,
            },
            _ = timer.tick(), if interval.is_some() => Trigger::FileChanged,
        };
        if input.is_closed() {
            return;
        }
        if trigger == Trigger::Sighup {
            info!(file = %path.display(), "SIGHUP: reloading the configuration");
        }
        let p = path.clone();
        let read = match tokio::task::spawn_blocking(move || read(&p)).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "configuration reload task failed");
                continue;
            }
        };
        let (key, result) = match read {
            Ok((text, hash)) => (hash.clone(), Ok((text, hash))),
            Err(e) => (format!("unreadable: {e}"), Err(e)),
        };
        if trigger == Trigger::FileChanged && key == seen {
            continue;
        }
        seen = key;
        match result.and_then(|(text, hash)| Ok((parse(&path, &text)?, hash))) {
            Ok((config, hash)) => {
                let sent = input.send(Input::Reload {
                    config: Box::new(config),
                    hash,
                    trigger,
                });
                if !sent {
                    return;
                }
            }
            Err(e) => {
                warn!(
                    "configuration not reloaded ({}): {e}; the running configuration stays",
                    trigger.as_str()
                );
                metrics.reload(ReloadResult::invalid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_content_hash_is_fnv1a_64() {
        // Published FNV-1a test vectors.
        assert_eq!(content_hash(b""), "cbf29ce484222325");
        assert_eq!(content_hash(b"a"), "af63dc4c8601ec8c");
        assert_eq!(content_hash(b"foobar"), "85944171f73967e8");
    }

    #[test]
    fn load_reports_what_check_reports() {
        let dir = std::env::temp_dir().join(format!("dhcpair-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.yaml");
        std::fs::write(&f, "server: {interfaces: [eth0]}\npools: [{name: a}]\n").unwrap();
        let a = load(&f).unwrap_err().to_string();
        let b = Config::load(&f).unwrap_err().to_string();
        assert_eq!(a, b);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
