//! Implementations of the domain's `Storefront` trait.

pub mod accounts;
pub mod customizer;
pub mod embedded;
pub mod files;
pub mod template;
pub mod ustore;
