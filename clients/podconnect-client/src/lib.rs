//! A typed Rust client of the podconnect core, for internal services and the `podctl` command
//! line: connect once ([`Client::builder`]), then call one method per RPC with plain Rust types.
//!
//! What it does for the caller:
//! - **Credentials.** The session token from [`Client::start_session`] is sent on every session
//!   call and replaced when [`Client::login`] or [`Client::silent_login`] rotates it. Operator
//!   calls (devices, usage, SSO keys) carry the operator token when one was given, and otherwise
//!   rely on the client certificate (mutual TLS). Tokens are [`Secret`]s: no `Debug` or error
//!   shows them.
//! - **Deadlines** per kind of call ([`CallKind`], [`Deadlines`]): reads 10 s, changes 15 s,
//!   previews and print-ready files 60 s, submitting a job 45 s.
//! - **Retries** with exponential backoff and full jitter on `UNAVAILABLE`, for idempotent reads
//!   only ([`RetryPolicy`]). CreateDraft, SubmitJob, Login and every other call that changes
//!   something are sent exactly once.
//! - **Watching a job** ([`Client::watch_job`]) is a `Stream` that resumes after a dropped
//!   connection and yields each state once.
//! - **One error type** ([`Error`]) that keeps the gRPC code and the core's message.
//!
//! ```no_run
//! # async fn run() -> podconnect_client::Result<()> {
//! use std::collections::BTreeMap;
//!
//! use futures::StreamExt as _;
//! use podconnect_client::{Client, Document, PrintOptions};
//!
//! let client = Client::builder("https://127.0.0.1:50443").ca_file("dev-ca.pem").connect().await?;
//! client.start_session("mfd-lobby").await?;
//! let values = BTreeMap::from([("name".to_string(), "Anna Keller".to_string())]);
//! let draft = client.create_draft("classic-business-card", 0, &values).await?;
//! for error in &draft.field_errors {
//!     eprintln!("{}: {}", error.field_id.as_deref().unwrap_or("quantity"), error.message);
//! }
//! client.finalize_draft(&draft.draft.id).await?;
//! let job = client.submit_job(&Document::Draft(draft.draft.id), &PrintOptions::default()).await?.job;
//! let mut watch = client.watch_job(&job.id);
//! while let Some(state) = watch.next().await {
//!     println!("{}", state?.state.name());
//! }
//! # Ok(()) }
//! ```

mod client;
mod connect;
mod error;
mod types;
mod watch;

pub use client::{Client, UPLOAD_CHUNK_BYTES};
pub use connect::{CallKind, ClientBuilder, Deadlines, RetryPolicy, Secret};
pub use error::{Code, Error, Result, code_name};
pub use types::{
    Category, ColorMode, DeliveryMode, Device, Document, Draft, DraftChange, DraftState, DraftWithErrors, FieldError,
    Grouping, Image, Job, JobPlan, JobState, KeyVersion, Layout, Media, Named, PrintFile, PrintOptions, PrinterInfo,
    Product, ProductKind, ProductPage, ProductQuery, ProductSummary, RewrapReport, SessionInfo, Sides, Submitted,
    UsageKind, UsageQuery, UsageReport, UsageRow, parse_time, rfc3339,
};
pub use watch::JobWatch;

/// The generated contract types, for what the plain types leave out (e.g. a form's fields).
pub use proto::v1 as pb;
