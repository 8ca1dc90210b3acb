//! An OTLP/HTTP receiver on a loopback port: what an OpenTelemetry collector's `otlp` receiver
//! does at `/v1/metrics` and `/v1/traces`, decoding the protobuf bodies with the official
//! generated types (`opentelemetry-proto`). No collector binary is packaged for this machine,
//! and the exporter under test is the real `opentelemetry-otlp` one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[derive(Default)]
struct Received {
    metrics: Vec<ExportMetricsServiceRequest>,
    traces: Vec<ExportTraceServiceRequest>,
}

/// The receiver; dropped with the test's runtime.
#[derive(Clone)]
pub struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

impl Collector {
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/metrics", post(metrics))
            .route("/v1/traces", post(traces))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, received }
    }

    /// The base URL to put in `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every metric received so far, in arrival order, with its resource's attributes.
    pub fn metrics(&self) -> Vec<(Vec<KeyValue>, Metric)> {
        let received = self.received.lock().unwrap();
        let mut out = Vec::new();
        for request in &received.metrics {
            for resource in &request.resource_metrics {
                let attributes = resource.resource.clone().unwrap_or_default().attributes;
                for scope in &resource.scope_metrics {
                    for metric in &scope.metrics {
                        out.push((attributes.clone(), metric.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every span received so far, with its resource's attributes.
    pub fn spans(&self) -> Vec<(Vec<KeyValue>, Span)> {
        let received = self.received.lock().unwrap();
        let mut out = Vec::new();
        for request in &received.traces {
            for resource in &request.resource_spans {
                let attributes = resource.resource.clone().unwrap_or_default().attributes;
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        out.push((attributes.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    /// The first metric named `name` received so far, with its resource's attributes.
    pub fn metric(&self, name: &str) -> Option<(Vec<KeyValue>, Metric)> {
        self.metrics().into_iter().find(|(_, m)| m.name == name)
    }

    /// The first span named `name` received so far, with its resource's attributes.
    pub fn span(&self, name: &str) -> Option<(Vec<KeyValue>, Span)> {
        self.spans().into_iter().find(|(_, s)| s.name == name)
    }
}

async fn metrics(State(received): State<Arc<Mutex<Received>>>, body: Bytes) {
    let request = ExportMetricsServiceRequest::decode(body).expect("a valid OTLP metrics body");
    received.lock().unwrap().metrics.push(request);
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, body: Bytes) {
    let request = ExportTraceServiceRequest::decode(body).expect("a valid OTLP traces body");
    received.lock().unwrap().traces.push(request);
}

/// The value of attribute `key` as text (strings as they are, numbers formatted).
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.clone()?;
    Some(text(&value))
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Lowercase hex, as trace and span ids appear in logs and `traceparent`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
