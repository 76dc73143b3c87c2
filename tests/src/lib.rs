//! The end-to-end test harness: small builders that start the real core (as the
//! `podconnect-server` binary, or in-process through the same `app::run` when a test must look
//! inside its stores) on `127.0.0.1:0`, and clients that call it over TLS.
//!
//! Modules:
//! - `core`: `TestCore`, the running server, and how to reach it.
//! - `pki`: throwaway CAs and client certificates for mTLS tests.
//! - `ipp`: `TestPrinter`, a real IPP printer (ippeveprinter) on loopback.
//! - `bench`: the entry point the benchmark binaries share.
//! - `client`: channels and session helpers.
//! - `disk`: every file a server left below a folder, and whether one holds a secret.
//! - `gateway`: `TestGateway`, the running weblet-gateway, and grpc-web clients over HTTP/1.1 and h2.
//! - `haproxy`: `ReferenceProxy`, a real HAProxy relaying gRPC to the core (the gateway bench's yardstick).
//! - `proxy`: `TcpProxy`, a TCP relay that refuses, cuts or redirects connections (client faults).
//! - `process`: how the binaries are started (clean environment) and their JSON ready line.
//! - `ustore`: `UstoreDouble`, a test double of the XMPie uStore storefront REST API, with fault switches.
//! - `postgres`: `TestDatabase`, a fresh PostgreSQL database (on 127.0.0.1:5432 when it runs, or a
//!   server the harness starts), and `TestPostgres`, a private server (with TLS when asked).
//! - `redis`: `RedisServer` and `RedisCluster`, real `redis-server` processes of a test's own.
//! - `raw`: raw TCP, TLS and HTTP/2 clients with hand-built gRPC bodies, for attacks on the core.
//! - `vault`: `TestVault`, the running vault service (`podconnect-vault`), and its mTLS clients.
//! - `wait`: `eventually`, the one poll loop (for what happens in the background).

pub mod bench;
pub mod client;
pub mod core;
pub mod disk;
pub mod gateway;
pub mod haproxy;
pub mod ipp;
pub mod pdf;
pub mod pki;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod redis;
pub mod ustore;
pub mod vault;
pub mod wait;
