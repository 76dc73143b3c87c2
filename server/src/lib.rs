//! The podconnect gRPC core as a library: `app::run` serves it on a listener; `main.rs` only
//! parses configuration and wires it. Integration tests start it the same way.

pub mod app;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod identity;
pub mod printing;
pub mod pull;
pub mod render;
pub mod serve;
pub mod store;
pub mod storefront;
pub mod tls;
