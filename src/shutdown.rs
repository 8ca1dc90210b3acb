//! Graceful shutdown: one signal the server, the modules and the application share.
//!
//! ```
//! use rustforge_prod::Shutdown;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let shutdown = Shutdown::new();
//! let waiter = shutdown.clone();
//! let task = tokio::spawn(async move { waiter.triggered().await; "stopped" });
//! shutdown.trigger();
//! assert_eq!(task.await.unwrap(), "stopped");
//! assert!(shutdown.is_triggered());
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A cheap-to-clone shutdown flag: triggered by SIGINT/SIGTERM (through
/// [`signal`](Self::signal)) or by [`trigger`](Self::trigger).
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    /// Work that runs once shutdown starts ([`on_shutdown`](Self::on_shutdown)), each counted
    /// here until it is done.
    work: Arc<watch::Sender<usize>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A flag that is not triggered yet.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
            work: Arc::new(watch::channel(0).0),
        }
    }

    /// Runs `work` once shutdown has started (a module's own shutdown: the broadcaster closing
    /// its sockets and removing its presence from Redis); [`finished`](Self::finished) waits
    /// for it. Call it within a Tokio runtime.
    pub fn on_shutdown(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.work.send_modify(|n| *n += 1);
        let (triggered, done) = (self.triggered(), Arc::clone(&self.work));
        tokio::spawn(async move {
            // Counted down even if `work` panics, so `finished` never waits for it forever.
            struct Done(Arc<watch::Sender<usize>>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.send_modify(|n| *n -= 1);
                }
            }
            let _done = Done(done);
            triggered.await;
            work.await;
        });
    }

    /// Resolves once every piece of [`on_shutdown`](Self::on_shutdown) work is done, or at
    /// `deadline`, whichever comes first; whether all of it finished. It does not start the
    /// shutdown: call it after [`trigger`](Self::trigger) or the signal.
    pub async fn finished(&self, deadline: Duration) -> bool {
        let mut rx = self.work.subscribe();
        tokio::time::timeout(deadline, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has started.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // The sender lives as long as `self.tx`'s clones; an error means it was dropped,
            // which can only happen once every handle is gone — nothing left to wait for.
            let _ = rx.wait_for(|triggered| *triggered).await;
        }
    }

    /// Resolves on SIGINT (Ctrl-C), SIGTERM (Kubernetes, systemd, Docker) or
    /// [`trigger`](Self::trigger), and marks shutdown as started: pass it to axum's
    /// `with_graceful_shutdown`.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.signal_with_drain(Duration::ZERO)
    }

    /// Like [`signal`](Self::signal), but resolves `drain` after shutdown started: readiness
    /// already answers 503 during that time, so load balancers stop sending new requests before
    /// the server stops accepting them.
    pub fn signal_with_drain(&self, drain: Duration) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        async move {
            tokio::select! {
                () = this.triggered() => {}
                () = os_signal() => tracing::info!("shutdown signal received"),
            }
            this.trigger();
            if !drain.is_zero() {
                tracing::info!(
                    drain_ms = drain.as_millis() as u64,
                    "draining before shutdown"
                );
                tokio::time::sleep(drain).await;
            }
        }
    }
}

async fn os_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
