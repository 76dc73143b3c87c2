//! The domain: sessions, catalog, usage and the store contracts. It knows nothing of gRPC, HTTP or
//! prost; the `grpc` module adapts it to the wire.

pub mod catalog;
pub mod clock;
pub mod crypto;
pub mod customization;
pub mod deadline;
pub mod devices;
pub mod ephemeral;
pub mod error;
pub mod events;
pub mod form;
pub mod identity;
pub mod ids;
pub mod imposition;
pub mod jobs;
pub mod pdf;
pub mod printing;
pub mod records;
pub mod session;
pub mod signin;
pub mod usage;
