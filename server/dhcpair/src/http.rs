//! HTTP: `/healthz`, `/readyz`, `/metrics` and `/v1/status`. Read-only views of snapshots the
//! engine thread publishes; nothing here touches the lease table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: &'static str,
    pub server_id: Option<String>,
    pub interfaces: Vec<String>,
    pub pools: Vec<PoolStatus>,
}

#[derive(Debug, Clone)]
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub status: Arc<RwLock<Status>>,
    pub ready: Arc<AtomicBool>,
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
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
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
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
