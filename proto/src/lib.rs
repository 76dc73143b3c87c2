//! The podconnect contracts as Rust (podconnect.v1, the core's, and podconnect.vault.v1, the
//! vault service's): prost messages, tonic clients and servers, and the core's encoded file
//! descriptor set, which its server reflection serves. No other crate runs codegen.

/// Everything generated from `proto/podconnect/v1/*.proto`.
#[allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
pub mod v1 {
    tonic::include_proto!("podconnect.v1");
}

/// The vault service's contract, `proto/podconnect/vault/v1/vault.proto`: only the core and
/// the `podconnect-vault` process speak it.
pub mod vault {
    /// Everything generated from `proto/podconnect/vault/v1/*.proto`.
    #[allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("podconnect.vault.v1");
    }
}

/// A `grpc-timeout` header value as the gRPC wire protocol writes it: 1 to 8 digits and a unit
/// (H, M, S, m, u or n). `None` when it is not of that form. Read here once for the core and the
/// gateway alike.
pub fn grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The encoded `FileDescriptorSet` of the core's contract (podconnect.v1, not the vault's), for
/// the core's gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("podconnect_descriptor");
