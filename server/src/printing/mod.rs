//! Delivery modes: implementations of the domain's `Printer` trait.

pub mod devices_file;
pub mod imposition;
pub mod ipp;
pub mod spool;
