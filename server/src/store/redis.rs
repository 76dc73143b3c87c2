//! The Redis ephemeral store and event bus, for several core instances sharing one system: a
//! standalone Redis server or a Redis Cluster (detected by asking the first server).
//!
//! Layout: an entry is the string `pc:{<scope>}:e:<name>` and a scope's index the set
//! `pc:{<scope>}:i` of its names. The hash tag `{<scope>}` puts everything of one scope (one
//! session) on one cluster slot, so every operation is one atomic script on one node and a
//! session is deleted in one call. Every key is written with its time limit in the same script
//! (`SET … PX`, and the index's `PEXPIRE` to its longest entry): nothing is ever stored without
//! one. Values arrive sealed (see `domain::session`), so Redis never holds plaintext.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use tokio::sync::broadcast;

use crate::domain::ephemeral::{EphemeralStore, StoreError, StoreResult};
use crate::domain::events::{BUS_BUFFER, BusMessage, EventBus};

/// The pub/sub channel job changes travel on (classic pub/sub reaches every node of a cluster).
const EVENTS_CHANNEL: &str = "podconnect:events";
/// Longest wait between two attempts to subscribe again after the connection was lost.
const MAX_RESUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

/// How to reach Redis.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URLs; several name seed nodes of one cluster.
    pub urls: Vec<String>,
    /// Connecting, and every answer.
    pub timeout: Duration,
    /// CA certificates (PEM) trusted for `rediss://` servers instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl RedisSettings {
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        let root_cert = self.ca_pem.clone()?;
        Some(redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) })
    }

    /// A client for one server, trusting the configured CA for `rediss://`.
    fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        match self.certificates() {
            Some(certificates) if url.starts_with("rediss://") => redis::Client::build_with_tls(url, certificates),
            _ => redis::Client::open(url),
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A URL may carry a password.
        f.debug_struct("RedisSettings")
            .field("urls", &self.urls.len())
            .field("timeout", &self.timeout)
            .field("ca", &self.ca_pem.is_some())
            .finish()
    }
}

/// A connection that multiplexes every call of the instance: one per server, or the cluster's.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// The scripts, each touching the keys of one scope only.
struct Scripts {
    put: Script,
    put_new: Script,
    touch: Script,
    touch_if: Script,
    take: Script,
    delete: Script,
    delete_if: Script,
    delete_scope: Script,
    names: Script,
}

impl Scripts {
    fn new() -> Self {
        // KEYS[1] the entry, KEYS[2] the scope's index; the index lives as long as its longest entry.
        const KEEP_INDEX: &str = "local t = redis.call('PTTL', KEYS[2]) \
             if t < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end ";
        Scripts {
            put: Script::new(&format!(
                "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('SADD', KEYS[2], ARGV[3]) {KEEP_INDEX} \
                 return 1"
            )),
            put_new: Script::new(&format!(
                "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end \
                 redis.call('SADD', KEYS[2], ARGV[3]) {KEEP_INDEX} return 1"
            )),
            touch: Script::new(&format!(
                "if redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 0 then return 0 end {KEEP_INDEX} return 1"
            )),
            touch_if: Script::new(&format!(
                "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
                 redis.call('PEXPIRE', KEYS[1], ARGV[2]) {KEEP_INDEX} return 1"
            )),
            take: Script::new(
                "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end \
                 redis.call('SREM', KEYS[2], ARGV[1]) return v",
            ),
            delete: Script::new("local n = redis.call('DEL', KEYS[1]) redis.call('SREM', KEYS[2], ARGV[1]) return n"),
            delete_if: Script::new(
                "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
                 redis.call('DEL', KEYS[1]) redis.call('SREM', KEYS[2], ARGV[2]) return 1",
            ),
            // ARGV[1] is the entries' key prefix (same hash tag, so the same slot as KEYS[1]).
            delete_scope: Script::new(
                "local n = 0 for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do \
                 n = n + redis.call('DEL', ARGV[1] .. name) end redis.call('DEL', KEYS[1]) return n",
            ),
            // Names whose entry expired leave the index here.
            names: Script::new(
                "local live = {} for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do \
                 if redis.call('EXISTS', ARGV[1] .. name) == 1 then live[#live + 1] = name \
                 else redis.call('SREM', KEYS[1], name) end end return live",
            ),
        }
    }
}

/// The ephemeral store (and, through [`RedisStore::bus`], the event bus) on Redis.
pub struct RedisStore {
    connection: Connection,
    scripts: Scripts,
    settings: RedisSettings,
    cluster: bool,
    bus: broadcast::Sender<BusMessage>,
    subscriber: tokio::task::JoinHandle<()>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl RedisStore {
    /// Connects (within the timeout: a server that cannot be reached at start is an error the
    /// operator sees at once) and starts listening for events. Later outages are ridden out:
    /// calls fail with `Unavailable` and the connection is made again.
    pub async fn connect(settings: RedisSettings) -> anyhow::Result<Arc<Self>> {
        let first = settings.urls.first().ok_or_else(|| anyhow::anyhow!("no Redis URL given"))?;
        let client = settings.client(first).map_err(|e| anyhow::anyhow!("the Redis URL is invalid: {e}"))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let single =
            tokio::time::timeout(settings.timeout, client.get_connection_manager_with_config(manager_config.clone()))
                .await
                .map_err(|_| anyhow::anyhow!("Redis did not answer within {:?}", settings.timeout))?
                .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut single.clone())
            .await
            .map_err(|e| anyhow::anyhow!("Redis refused INFO: {e}"))?;
        let cluster = info.lines().any(|line| line.trim() == "cluster_enabled:1");
        let connection = if cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(settings.urls.iter().map(String::as_str))
                .connection_timeout(settings.timeout)
                .response_timeout(settings.timeout)
                .retries(2);
            if let Some(certificates) = settings.certificates() {
                builder = builder.certs(certificates);
            }
            let client = builder.build().map_err(|e| anyhow::anyhow!("the Redis Cluster URLs are invalid: {e}"))?;
            let connection = tokio::time::timeout(settings.timeout, client.get_async_connection())
                .await
                .map_err(|_| anyhow::anyhow!("the Redis Cluster did not answer within {:?}", settings.timeout))?
                .map_err(|e| anyhow::anyhow!("cannot connect to the Redis Cluster: {e}"))?;
            Connection::Cluster(connection)
        } else {
            Connection::Single(single)
        };
        let (bus, _) = broadcast::channel(BUS_BUFFER);
        let subscriber = tokio::spawn(subscribe_forever(settings.clone(), bus.clone()));
        Ok(Arc::new(RedisStore { connection, scripts: Scripts::new(), settings, cluster, bus, subscriber }))
    }

    /// Whether the servers form a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The event bus over the same servers.
    pub fn bus(self: &Arc<Self>) -> Arc<dyn EventBus> {
        Arc::new(RedisBus(self.clone()))
    }

    async fn run<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(StoreError::Unavailable(format!("Redis {what}: {err}"))),
            Err(_) => {
                Err(StoreError::Unavailable(format!("Redis {what}: no answer within {:?}", self.settings.timeout)))
            }
        }
    }

    async fn invoke<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> StoreResult<T> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection.clone();
        self.run(what, async move { invocation.invoke_async(&mut connection).await }).await
    }
}

fn check_scope(scope: &str) -> StoreResult<()> {
    // Braces would change the hash tag, and with it which slot the scope lives on.
    if scope.contains(['{', '}']) {
        return Err(StoreError::Unavailable(format!("scope names may not contain braces: {scope:?}")));
    }
    Ok(())
}

fn entry_key(scope: &str, name: &str) -> String {
    format!("pc:{{{scope}}}:e:{name}")
}

fn entry_prefix(scope: &str) -> String {
    format!("pc:{{{scope}}}:e:")
}

fn index_key(scope: &str) -> String {
    format!("pc:{{{scope}}}:i")
}

fn millis(ttl: Duration) -> Vec<u8> {
    // Redis refuses a zero time limit; one millisecond is "already gone" for every caller.
    ttl.as_millis().clamp(1, i64::MAX as u128).to_string().into_bytes()
}

#[async_trait]
impl EphemeralStore for RedisStore {
    async fn put(&self, scope: &str, name: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        check_scope(scope)?;
        let keys = [entry_key(scope, name), index_key(scope)];
        let _: i64 = self
            .invoke("PUT", &self.scripts.put, &[&keys[0], &keys[1]], &[&value, &millis(ttl), name.as_bytes()])
            .await?;
        Ok(())
    }

    async fn put_new(&self, scope: &str, name: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<bool> {
        check_scope(scope)?;
        let keys = [entry_key(scope, name), index_key(scope)];
        let stored: i64 = self
            .invoke("PUT NX", &self.scripts.put_new, &[&keys[0], &keys[1]], &[&value, &millis(ttl), name.as_bytes()])
            .await?;
        Ok(stored == 1)
    }

    async fn touch_if(&self, scope: &str, name: &str, expected: &[u8], ttl: Duration) -> StoreResult<bool> {
        check_scope(scope)?;
        let keys = [entry_key(scope, name), index_key(scope)];
        let touched: i64 =
            self.invoke("TOUCH IF", &self.scripts.touch_if, &[&keys[0], &keys[1]], &[expected, &millis(ttl)]).await?;
        Ok(touched == 1)
    }

    async fn delete_if(&self, scope: &str, name: &str, expected: &[u8]) -> StoreResult<bool> {
        check_scope(scope)?;
        let keys = [entry_key(scope, name), index_key(scope)];
        let deleted: i64 = self
            .invoke("DELETE IF", &self.scripts.delete_if, &[&keys[0], &keys[1]], &[expected, name.as_bytes()])
            .await?;
        Ok(deleted == 1)
    }

    async fn get(&self, scope: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
        check_scope(scope)?;
        let mut connection = self.connection.clone();
        let key = entry_key(scope, name);
        self.run("GET", async move { redis::cmd("GET").arg(key).query_async(&mut connection).await }).await
    }

    async fn touch(&self, scope: &str, name: &str, ttl: Duration) -> StoreResult<bool> {
        check_scope(scope)?;
        let keys = [entry_key(scope, name), index_key(scope)];
        let touched: i64 =
            self.invoke("TOUCH", &self.scripts.touch, &[&keys[0], &keys[1]], &[b"", &millis(ttl)]).await?;
        Ok(touched == 1)
    }

    async fn take(&self, scope: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
        check_scope(scope)?;
        let keys = [entry_key(scope, name), index_key(scope)];
        self.invoke("TAKE", &self.scripts.take, &[&keys[0], &keys[1]], &[name.as_bytes()]).await
    }

    async fn delete(&self, scope: &str, name: &str) -> StoreResult<bool> {
        check_scope(scope)?;
        let keys = [entry_key(scope, name), index_key(scope)];
        let deleted: i64 =
            self.invoke("DELETE", &self.scripts.delete, &[&keys[0], &keys[1]], &[name.as_bytes()]).await?;
        Ok(deleted == 1)
    }

    async fn delete_scope(&self, scope: &str) -> StoreResult<u64> {
        check_scope(scope)?;
        let deleted: i64 = self
            .invoke("DELETE SCOPE", &self.scripts.delete_scope, &[&index_key(scope)], &[entry_prefix(scope).as_bytes()])
            .await?;
        Ok(u64::try_from(deleted).unwrap_or_default())
    }

    async fn names(&self, scope: &str) -> StoreResult<Vec<String>> {
        check_scope(scope)?;
        let names: Vec<Vec<u8>> =
            self.invoke("NAMES", &self.scripts.names, &[&index_key(scope)], &[entry_prefix(scope).as_bytes()]).await?;
        Ok(names.into_iter().map(|name| String::from_utf8_lossy(&name).into_owned()).collect())
    }

    /// Scans every server given (in a cluster: give every primary) for scope indexes.
    async fn scopes(&self) -> StoreResult<Vec<String>> {
        let mut scopes = BTreeSet::new();
        for url in &self.settings.urls {
            let client = self.settings.client(url).map_err(|e| StoreError::Unavailable(format!("Redis URL: {e}")))?;
            let mut connection = self.run("SCAN", async { client.get_multiplexed_async_connection().await }).await?;
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .run("SCAN", async {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg("pc:{*}:i")
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut connection)
                            .await
                    })
                    .await?;
                for key in keys {
                    if let Some(scope) = key.strip_prefix("pc:{").and_then(|k| k.strip_suffix("}:i")) {
                        scopes.insert(scope.to_owned());
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            if !self.cluster {
                break;
            }
        }
        Ok(scopes.into_iter().collect())
    }
}

/// The event bus on Redis pub/sub.
struct RedisBus(Arc<RedisStore>);

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, message: Vec<u8>) -> StoreResult<()> {
        let mut connection = self.0.connection.clone();
        let _: i64 = self
            .0
            .run("PUBLISH", async move {
                redis::cmd("PUBLISH").arg(EVENTS_CHANNEL).arg(message).query_async(&mut connection).await
            })
            .await?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.0.bus.subscribe()
    }
}

/// Holds one subscription to the events channel (on any server: in a cluster every node hears
/// every message) and hands its messages to the instance. After a lost connection it subscribes
/// again, trying each server in turn with a growing wait, and tells subscribers they may have
/// missed messages.
async fn subscribe_forever(settings: RedisSettings, bus: broadcast::Sender<BusMessage>) {
    let mut wait = Duration::from_millis(100);
    let mut subscribed_before = false;
    for url in settings.urls.iter().cycle() {
        match subscribe(&settings, url).await {
            Ok(pubsub) => {
                wait = Duration::from_millis(100);
                if subscribed_before {
                    let _ = bus.send(BusMessage::Gap);
                }
                subscribed_before = true;
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let _ = bus.send(BusMessage::Event(message.get_payload_bytes().into()));
                }
                tracing::warn!("the Redis event subscription was lost; subscribing again");
                let _ = bus.send(BusMessage::Gap);
            }
            Err(err) => tracing::warn!(error = %err, "cannot subscribe to Redis events; trying again"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RESUBSCRIBE_WAIT);
    }
}

async fn subscribe(settings: &RedisSettings, url: &str) -> anyhow::Result<redis::aio::PubSub> {
    let timeout = settings.timeout;
    let client = settings.client(url)?;
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))??;
    tokio::time::timeout(timeout, pubsub.subscribe(EVENTS_CHANNEL))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))??;
    Ok(pubsub)
}
