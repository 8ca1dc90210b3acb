//! The three endpoints and the `application/health+json` body.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Health, Report, Status};

/// The media type of every health response.
pub const HEALTH_JSON: &str = "application/health+json";

impl Health {
    /// The routes: liveness, readiness and the detailed report, at the configured paths.
    pub fn routes<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let config = self.config();
        Router::new()
            .route(&config.live_path, get(live))
            .route(&config.ready_path, get(ready))
            .route(&config.path, get(detailed))
            .with_state(self.clone())
    }

    fn may_see_details(&self, headers: &HeaderMap) -> bool {
        let config = self.config();
        if config.public_details {
            return true;
        }
        let Some(token) = config.token.as_deref() else {
            return false;
        };
        crate::util::bearer_matches(headers, token)
    }

    fn status_code(&self, status: &Status) -> StatusCode {
        match status {
            Status::Healthy => StatusCode::OK,
            Status::Degraded { .. } => {
                StatusCode::from_u16(self.config().degraded_status).unwrap_or(StatusCode::OK)
            }
            Status::Unhealthy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `application/health+json` document: only the status for callers without details,
    /// otherwise the checks of `report` (only its readiness checks when `readiness_only`).
    pub fn document(
        &self,
        status: &Status,
        report: Option<&Report>,
        details: bool,
        readiness_only: bool,
    ) -> Value {
        let mut doc = Map::new();
        doc.insert("status".into(), status.as_str().into());
        if !details {
            return Value::Object(doc);
        }
        let config = self.config();
        if let Some(version) = &config.version {
            doc.insert("version".into(), version.clone().into());
        }
        if let Some(service_id) = &config.service_id {
            doc.insert("serviceId".into(), service_id.clone().into());
        }
        if let Some(reason) = status.reason() {
            doc.insert("output".into(), reason.into());
        }
        let (uptime, time) = match report {
            Some(report) => (report.uptime, report.time),
            None => (self.uptime(), SystemTime::now()),
        };
        let mut checks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        checks.insert(
            "process:uptime".into(),
            vec![json!({
                "componentType": "system",
                "observedValue": uptime.as_secs(),
                "observedUnit": "s",
                "status": "pass",
                "time": rfc3339(time),
            })],
        );
        let all = report.map(|r| r.checks.as_slice()).unwrap_or_default();
        for check in all.iter().filter(|c| c.readiness || !readiness_only) {
            let mut entry = Map::new();
            entry.insert("componentType".into(), json!(check.component_type));
            if let Some(observed) = &check.result.observed {
                entry.insert("observedValue".into(), json!(observed.value));
                entry.insert("observedUnit".into(), observed.unit.into());
            }
            entry.insert("status".into(), check.result.status.as_str().into());
            entry.insert("time".into(), rfc3339(check.time).into());
            let output = check
                .result
                .status
                .reason()
                .or(check.result.output.as_deref());
            if let Some(output) = output {
                entry.insert("output".into(), output.into());
            }
            entry.insert("critical".into(), check.critical.into());
            entry.insert(
                "durationMs".into(),
                json!((check.duration.as_secs_f64() * 1e6).round() / 1e3),
            );
            checks
                .entry(format!("{}:{}", check.name, check.measurement))
                .or_default()
                .push(Value::Object(entry));
        }
        doc.insert("checks".into(), json!(checks));
        Value::Object(doc)
    }

    /// The response for `status`; a detailed body computed from `report` is serialized once per
    /// report and reused while the report is cached.
    fn respond(
        &self,
        status: &Status,
        report: Option<&Report>,
        details: bool,
        readiness_only: bool,
    ) -> Response {
        let body = match (details, report) {
            (false, _) => Bytes::from_static(match status {
                Status::Healthy => br#"{"status":"pass"}"#,
                Status::Degraded { .. } => br#"{"status":"warn"}"#,
                Status::Unhealthy { .. } => br#"{"status":"fail"}"#,
            }),
            (true, Some(report)) => report.bodies[usize::from(readiness_only)]
                .get_or_init(|| self.serialize(status, Some(report), readiness_only))
                .clone(),
            (true, None) => self.serialize(status, None, readiness_only),
        };
        (
            self.status_code(status),
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response()
    }

    fn serialize(&self, status: &Status, report: Option<&Report>, readiness_only: bool) -> Bytes {
        let doc = self.document(status, report, true, readiness_only);
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    }
}

/// Liveness: no I/O, only the process' own state.
async fn live(State(health): State<Health>) -> Response {
    let status = if health.is_live() {
        Status::Healthy
    } else {
        Status::Unhealthy {
            reason: "marked not live".into(),
        }
    };
    health.respond(&status, None, false, false)
}

async fn ready(State(health): State<Health>, headers: HeaderMap) -> Response {
    let (status, report) = health.readiness().await;
    health.respond(
        &status,
        report.as_deref(),
        health.may_see_details(&headers),
        true,
    )
}

async fn detailed(State(health): State<Health>, headers: HeaderMap) -> Response {
    let report = health.report().await;
    let status = report.status();
    health.respond(
        &status,
        Some(&report),
        health.may_see_details(&headers),
        false,
    )
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
