//! Removing every key that matches a pattern — the cache's `flush` — on a single Redis or on
//! every primary of a Cluster, without blocking the server: `SCAN` in batches, `UNLINK` each
//! batch (Redis frees the values in the background).

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::{ConnectionKind, RedisError, RedisHandle};

/// How many keys each `SCAN` call looks at (Redis's hint): big enough that a million keys take
/// a thousand round trips, small enough that no call holds the server for long.
const BATCH: u64 = 1_000;

impl RedisHandle {
    /// Removes the keys that start with `prefix` (taken literally) and that `keep` refuses;
    /// how many it removed. Keys written while it runs may stay.
    pub(crate) async fn unlink_prefixed(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<u64, RedisError> {
        let pattern = format!("{}*", escape_glob(prefix));
        let nodes = if self.is_cluster() {
            self.primaries().await?.into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        let mut removed = 0;
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(BATCH);
                let (next, keys): (u64, Vec<Vec<u8>>) = self.query_on(node.as_ref(), scan).await?;
                let doomed: Vec<Vec<u8>> = keys.into_iter().filter(|key| !keep(key)).collect();
                if !doomed.is_empty() {
                    // On a Cluster the client splits a multi-key UNLINK by slot and adds up.
                    let unlinked: i64 = self.query(redis::cmd("UNLINK").arg(doomed)).await?;
                    removed += unlinked.max(0) as u64;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(removed)
    }

    /// The addresses of a Cluster's primaries that are up, from `CLUSTER NODES`.
    async fn primaries(&self) -> Result<Vec<(String, u16)>, RedisError> {
        let nodes: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        Ok(nodes.lines().filter_map(primary_address).collect())
    }

    /// One command on `node` (a Cluster primary), or on the pool's connection when `None`.
    async fn query_on<T: redis::FromRedisValue>(
        &self,
        node: Option<&(String, u16)>,
        cmd: redis::Cmd,
    ) -> Result<T, RedisError> {
        let routing = node.map(|(host, port)| {
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            })
        });
        self.bounded(self.inner.command_timeout, |mut conn| async move {
            let result = match (routing, &mut conn.kind) {
                (Some(routing), ConnectionKind::Cluster(cluster)) => cluster
                    .route_command(cmd, routing)
                    .await
                    .and_then(|value| redis::from_redis_value(value).map_err(Into::into)),
                (_, ConnectionKind::Cluster(cluster)) => cmd.query_async(cluster).await,
                (_, ConnectionKind::Single(single)) => cmd.query_async(single).await,
            };
            (conn, result)
        })
        .await
    }
}

/// `<id> <host:port@cport[,hostname]> <flags> …` → the address of a primary that is not
/// failing.
fn primary_address(line: &str) -> Option<(String, u16)> {
    let mut fields = line.split_whitespace();
    let address = fields.nth(1)?;
    let flags = fields.next()?;
    let flags: Vec<&str> = flags.split(',').collect();
    let usable = flags.contains(&"master")
        && !flags
            .iter()
            .any(|flag| matches!(*flag, "fail" | "fail?" | "noaddr" | "handshake"));
    if !usable {
        return None;
    }
    let address = address.split(['@', ',']).next()?;
    let (host, port) = address.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// `text` as a `SCAN MATCH` pattern that matches only itself.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_primaries_of_cluster_nodes() {
        let nodes = "\
07c3 127.0.0.1:30004@31004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@31002,node-2 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 connected 10923-16383
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460";
        let primaries: Vec<_> = nodes.lines().filter_map(primary_address).collect();
        assert_eq!(
            primaries,
            [
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
    }

    #[test]
    fn glob_characters_match_only_themselves() {
        assert_eq!(escape_glob(r"app:c*[x]?\"), r"app:c\*\[x\]\?\\");
    }
}
