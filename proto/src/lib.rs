//! The podconnect.v1 contract as Rust: prost messages, tonic clients and servers, and the
//! encoded file descriptor set that server reflection serves. No other crate runs codegen.

/// Everything generated from `proto/podconnect/v1/*.proto`.
#[allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
pub mod v1 {
    tonic::include_proto!("podconnect.v1");
}

/// The encoded `FileDescriptorSet` of the whole contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("podconnect_descriptor");
