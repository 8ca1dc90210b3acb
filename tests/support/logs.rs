//! Captures the crate's JSON log lines in memory.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rustforge_prod::{LogConfig, LogFormat};
use serde_json::Value;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// An in-memory log sink; clone it freely.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the crate's JSON subscriber for the current thread, writing here. Use it from a
    /// `current_thread` runtime so the server's tasks run on this thread too.
    pub fn install() -> (Self, DefaultGuard) {
        let capture = Self::default();
        let config = LogConfig {
            format: LogFormat::Json,
            filter: Some("info".into()),
        };
        let subscriber = rustforge_prod::logging::subscriber(&config, capture.clone())
            .expect("valid log config");
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// Like [`install`](Self::install), with the subscriber `prod` builds (its log settings,
    /// and span export when OTLP is configured).
    pub fn install_for(prod: &rustforge_prod::ProductionLayer) -> (Self, DefaultGuard) {
        let capture = Self::default();
        let subscriber = prod.subscriber(capture.clone()).expect("valid log config");
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// Every line written so far, parsed as JSON (a line that is not JSON fails the test).
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .expect("log output is UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    /// The lines logged inside the request with this id.
    pub fn for_request(&self, request_id: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["request_id"] == request_id)
            .collect()
    }
}

pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}
