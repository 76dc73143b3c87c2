//! The gRPC edge of the core: thin adapters from the `podconnect.v1` contract to the domain, the
//! call gate (admission and authentication), conversions and the one status mapping.

pub mod catalog;
pub mod convert;
pub mod customization;
pub mod gate;
pub mod print;
pub mod session;
pub mod sso;
pub mod status;
pub mod usage;
