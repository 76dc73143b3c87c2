//! The one end-to-end test binary. Each module covers one area against real servers.

mod abuse;
mod catalog;
mod client_lib;
mod conformance;
mod customization;
mod faults;
mod gateway;
mod gateway_abuse;
mod grpcurl;
mod handshake;
mod installed;
mod ipp_printer;
mod podctl;
mod printing;
mod printing_ipp;
mod reflection;
mod sessions;
mod startup;
mod tls;
mod usage;
mod ustore;
mod ustore_double;
mod vault;
mod weblet;
