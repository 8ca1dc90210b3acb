//! [`serve`]: the application on the [`Server`] with the [`ProductionLayer`]'s settings and
//! shutdown signal.

use std::convert::Infallible;
use std::fmt::Debug;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::Listener as AcceptConnections;
use tower::Service;

use super::ProductionLayer;
use crate::server::Server;

/// Serves `app` on `listener` with the limits of [`Config::server`](crate::Config::server) until
/// SIGINT/SIGTERM (after the [drain](crate::Config::shutdown_drain)), shuts down gracefully, waits
/// for the modules' own shutdown (the broadcaster's, see [`Shutdown::on_shutdown`](crate::Shutdown::on_shutdown))
/// within the shutdown timeout, then [flushes](ProductionLayer::flush) the telemetry that is
/// still buffered and closes the database pool.
///
/// Use it instead of `axum::serve`, which has no header-read or idle timeout, no connection cap
/// and no shutdown deadline; [`server`](crate::server) lists what it enforces and why. Each
/// request carries the peer address as `ConnectInfo`, as `into_make_service_with_connect_info`
/// would add it.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use rustforge_prod::ProductionLayer;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let prod = ProductionLayer::builder().from_env()?.build().await?;
/// let app = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .merge(prod.routes())
///     .layer(prod.layer());
/// let listener = rustforge_prod::bind("0.0.0.0:3000").await?;
/// rustforge_prod::serve(listener, app, &prod).await;
/// # Ok(()) }
/// ```
pub async fn serve<L, S>(listener: L, app: S, prod: &ProductionLayer)
where
    L: AcceptConnections,
    L::Addr: Clone + Send + Sync + Debug + 'static,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    // The config was checked when the layer was built.
    let server = Server::new(prod.config().server.clone()).expect("a checked server config");
    server.serve(listener, app, prod.shutdown_signal()).await;
    // The modules' own shutdown (the broadcaster removes its presence from Redis), which
    // started with the signal, within the server's deadline.
    if !prod
        .shutdown()
        .finished(prod.config().server.shutdown_timeout)
        .await
    {
        tracing::warn!("shutdown timeout reached before the modules finished their shutdown");
    }
    prod.flush().await;
    #[cfg(feature = "sqlx-postgres")]
    if let Some(database) = prod.database() {
        database.close().await;
    }
}
