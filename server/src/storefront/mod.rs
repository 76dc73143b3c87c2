//! Implementations of the domain's `Storefront` trait.

pub mod embedded;
