//! The control API's client side (`dhcpair status`, `dhcpair partner-down`) and the token.
//! A minimal HTTP/1.1 client over a TCP stream: the server is local or on the pod network.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use dhcpair_config::ServerSettings;

/// The control token: `server.controlTokenFile`, else `DHCPAIR_CONTROL_TOKEN`, else none.
pub fn load_token(s: &ServerSettings) -> anyhow::Result<Option<String>> {
    if let Some(path) = &s.control_token_file {
        let t = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read control token {}", path.display()))?;
        let t = t.trim().to_string();
        if t.is_empty() {
            bail!("{}: control token file is empty", path.display());
        }
        return Ok(Some(t));
    }
    Ok(std::env::var("DHCPAIR_CONTROL_TOKEN")
        .ok()
        .filter(|t| !t.is_empty()))
}

/// One request; returns (status code, body).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut s =
        TcpStream::connect(addr).with_context(|| format!("cannot reach dhcpair at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

pub fn status(addr: &str, json: bool) -> anyhow::Result<()> {
    let (code, body) = request(addr, "GET", "/v1/status", None)?;
    if code != 200 {
        bail!("status: HTTP {code}: {}", body.trim());
    }
    if json {
        println!("{body}");
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let empty = Vec::new();
    let n = |x: &serde_json::Value| x.as_i64().map_or("-".to_string(), |v| v.to_string());
    println!(
        "{:<16} {:<9} {:<26} {:<26} {:>5} {:>7} {:>7} {:>8} {:>5}",
        "RELATIONSHIP",
        "ROLE",
        "MY STATE",
        "PARTNER STATE",
        "LINK",
        "UNACKED",
        "QUEUED",
        "CONTACT",
        "SKEW"
    );
    for r in v["failover"].as_array().unwrap_or(&empty) {
        let me = format!(
            "{}{}",
            r["myState"].as_str().unwrap_or("?"),
            if r["startup"].as_bool() == Some(true) {
                " (startup)"
            } else {
                ""
            }
        );
        let contact = r["secondsSinceContact"]
            .as_u64()
            .map_or("-".to_string(), |s| format!("{s}s ago"));
        println!(
            "{:<16} {:<9} {:<26} {:<26} {:>5} {:>7} {:>7} {:>8} {:>5}",
            r["name"].as_str().unwrap_or("?"),
            r["role"].as_str().unwrap_or("?"),
            me,
            r["partnerState"].as_str().unwrap_or("?"),
            if r["connected"].as_bool() == Some(true) {
                "up"
            } else {
                "down"
            },
            n(&r["unackedUpdates"]),
            n(&r["queuedUpdates"]),
            contact,
            n(&r["skew"]),
        );
    }
    println!();
    println!(
        "{:<12} {:<18} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9}",
        "POOL", "SUBNET", "TOTAL", "FREE", "BACKUP", "ACTIVE", "EXPIRED", "ABANDONED"
    );
    for p in v["pools"].as_array().unwrap_or(&empty) {
        println!(
            "{:<12} {:<18} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9}",
            p["name"].as_str().unwrap_or("?"),
            p["subnet"].as_str().unwrap_or("?"),
            n(&p["total"]),
            n(&p["free"]),
            n(&p["backup"]),
            n(&p["active"]),
            n(&p["expired"]),
            n(&p["abandoned"])
        );
    }
    Ok(())
}

pub fn partner_down(addr: &str, name: &str, token: Option<String>) -> anyhow::Result<()> {
    let Some(token) = token else {
        bail!("partner-down needs the control token: --token-file FILE or DHCPAIR_CONTROL_TOKEN");
    };
    let (code, body) = request(
        addr,
        "POST",
        &format!("/v1/failover/{name}/partner-down"),
        Some(&token),
    )?;
    if code != 200 {
        bail!("partner-down {name}: HTTP {code}: {}", body.trim());
    }
    println!("{name}: partner-down");
    Ok(())
}
