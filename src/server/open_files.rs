//! The process' open-file limit: each connection, WebSockets included, holds a file descriptor.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does at start, and warns
/// when even that is below `max_connections`. Many environments start processes with a soft
/// limit of 1,024 (shells, systemd services, some container runtimes) while allowing far more:
/// the server would stop accepting at about a thousand connections, each later client waiting
/// in the backlog while axum's listener retries every second. The limit is the process', so
/// this runs once however many servers it starts (the app's, a separate `/metrics` listener).
#[cfg(unix)]
pub(crate) fn raise_open_file_limit(max_connections: usize) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| raise(max_connections));
}

#[cfg(unix)]
fn raise(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // RLIM_INFINITY is not a valid open-file limit (the kernel caps it at fs.nr_open).
    const CEILING: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return;
    };
    let target = limit.maximum.unwrap_or(CEILING).min(CEILING);
    let mut effective = soft;
    if soft < target {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::info!(from = soft, to = target, "raised the open-file limit");
                effective = target;
            }
            Err(err) => tracing::warn!(error = %err, soft, "cannot raise the open-file limit"),
        }
    }
    // Room for Redis, the database, log files and the listener itself.
    if effective < max_connections as u64 + 64 {
        tracing::warn!(
            open_files = effective,
            max_connections,
            "the open-file limit is below RUSTFORGE_MAX_CONNECTIONS: accepting will stall at about \
             that many connections; raise the hard limit (ulimit -Hn, LimitNOFILE, the container's \
             nofile) or lower RUSTFORGE_MAX_CONNECTIONS"
        );
    }
}

#[cfg(not(unix))]
pub(crate) fn raise_open_file_limit(_max_connections: usize) {}
