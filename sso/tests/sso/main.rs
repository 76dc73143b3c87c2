//! The SSO crate's behaviour through its public API: key file, envelope, rotation, manager.

mod envelope;
mod key_file;
mod manager;
mod rotation;
mod support;
