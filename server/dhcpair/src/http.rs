//! HTTP: `/healthz`, `/readyz`, `/metrics` and `/v1/status`. Read-only views of snapshots the
//! engine thread publishes; nothing here touches the lease table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub name: String,
    pub subnet: String,
    pub total: u64,
    pub free: u64,
    pub active: u64,
    pub expired: u64,
    pub released: u64,
    pub abandoned: u64,
    pub backup: u64,
    pub reserved: u64,
}

/// One failover relationship as `/v1/status` shows it (and the operator reads it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipView {
    pub name: String,
    pub role: &'static str,
    pub my_state: String,
    pub partner_state: String,
    pub startup: bool,
    pub my_stos: u64,
    pub partner_stos: u64,
    pub connected: bool,
    pub mclt: u32,
    pub unacked_updates: usize,
    pub queued_updates: usize,
    pub seconds_since_contact: Option<u64>,
    pub skew: i64,
}

impl RelationshipView {
    pub fn new(r: &dhcpair_engine::RelationshipStatus, now: u64) -> RelationshipView {
        RelationshipView {
            name: r.name.clone(),
            role: match r.role {
                dhcpair_config::Role::Primary => "primary",
                dhcpair_config::Role::Secondary => "secondary",
            },
            my_state: r.my_state.isc_name().to_string(),
            partner_state: r.partner_state.isc_name().to_string(),
            startup: r.startup,
            my_stos: r.my_stos,
            partner_stos: r.partner_stos,
            connected: r.connected,
            mclt: r.mclt,
            unacked_updates: r.unacked_updates,
            queued_updates: r.queued_updates,
            seconds_since_contact: r.last_contact.map(|t| now.saturating_sub(t)),
            skew: r.skew,
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: &'static str,
    pub server_id: Option<String>,
    pub interfaces: Vec<String>,
    pub pools: Vec<PoolStatus>,
    pub failover: Vec<RelationshipView>,
}

#[derive(Debug, Clone)]
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub status: Arc<RwLock<Status>>,
    pub ready: Arc<AtomicBool>,
    pub input: crate::serve::InputTx,
    /// Bearer token for control calls; None disables them.
    pub token: Option<String>,
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/failover/{name}/partner-down", post(partner_down))
        .with_state(shared)
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn status(State(s): State<Shared>) -> Response {
    let snap = match s.status.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    Json(snap).into_response()
}

/// Why a control call is refused.
fn authorized(s: &Shared, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
    let Some(want) = &s.token else {
        return Err((
            StatusCode::FORBIDDEN,
            "control API disabled: no controlTokenFile or DHCPAIR_CONTROL_TOKEN\n",
        ));
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compare without an early exit on the first differing byte.
    let ok = got.is_some_and(|g| {
        g.len() == want.len()
            && g.bytes()
                .zip(want.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, "bad or missing bearer token\n"))
    }
}

async fn partner_down(
    State(s): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return r.into_response();
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if !s
        .input
        .send(crate::serve::Input::PartnerDown { name, reply: tx })
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "server is stopping\n").into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "partner-down\n").into_response(),
        Ok(Err(e)) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "server is stopping\n").into_response(),
    }
}
