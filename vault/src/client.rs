//! `GrpcVault`: the vault service (the `podconnect-vault` process) as a `VaultStore`, reached over
//! gRPC with mutual TLS: the core proves itself with its client certificate and trusts only the
//! vault's CA. Every call has a time limit; failures become `VaultError`s.

use std::fmt;
use std::time::Duration;

use proto::vault::v1 as pb;
use proto::vault::v1::vault_service_client::VaultServiceClient;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use zeroize::Zeroize as _;

use crate::wire::{self, MAX_MESSAGE};
use crate::{MAX_PAGE, VaultAddress, VaultEntry, VaultError, VaultResult, VaultStore, check_entry};

/// Where the vault service is and how to reach it (operator configuration).
pub struct GrpcVaultConfig {
    /// The vault's address as `https://host:port`; `host` must be a name (or IP address) the
    /// vault's certificate carries.
    pub endpoint: String,
    /// The CA certificate(s), PEM, that the vault's server certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// This client's certificate chain, PEM, signed by a CA the vault trusts (`--client-ca`).
    pub client_cert_pem: Vec<u8>,
    /// The private key of `client_cert_pem`, PEM. Wiped from memory when the config is dropped.
    pub client_key_pem: Vec<u8>,
    /// Time limit of each call, connecting included, e.g. 5 s.
    pub timeout: Duration,
}

impl fmt::Debug for GrpcVaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcVaultConfig")
            .field("endpoint", &self.endpoint)
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("client_cert_pem", &format_args!("{} bytes", self.client_cert_pem.len()))
            .field("client_key_pem", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Drop for GrpcVaultConfig {
    fn drop(&mut self) {
        self.client_key_pem.zeroize();
    }
}

/// The vault service as a vault backend. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct GrpcVault {
    client: VaultServiceClient<Channel>,
    endpoint: String,
}

impl fmt::Debug for GrpcVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcVault").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl GrpcVault {
    /// Checks the configuration and prepares the channel. Connecting is lazy: an unreachable
    /// vault shows on the first call as [`VaultError::Unavailable`], so the core can start
    /// before the vault does. A malformed configuration is [`VaultError::Invalid`] at once.
    /// Call it inside a Tokio runtime (the channel's worker task starts here).
    pub fn connect(config: GrpcVaultConfig) -> VaultResult<GrpcVault> {
        let invalid = |what: String| VaultError::Invalid(format!("vault service configuration: {what}"));
        if !config.endpoint.starts_with("https://") {
            return Err(invalid("the endpoint must be https://host:port (the vault is reached over TLS only)".into()));
        }
        if config.timeout.is_zero() {
            return Err(invalid("the call timeout must be more than zero".into()));
        }
        // tonic reads the PEM only when it first connects; checked here, a mistake is found at
        // start-up rather than as an unavailable vault later.
        pem_certificates(&config.ca_pem).map_err(|what| invalid(format!("the vault CA: {what}")))?;
        pem_certificates(&config.client_cert_pem).map_err(|what| invalid(format!("the client certificate: {what}")))?;
        PrivateKeyDer::from_pem_slice(&config.client_key_pem)
            .map_err(|_| invalid("the client key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)".into()))?;

        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&config.ca_pem))
            .identity(Identity::from_pem(&config.client_cert_pem, &config.client_key_pem));
        let endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|err| invalid(format!("the endpoint {:?} is not a URL: {err}", config.endpoint)))?
            .tls_config(tls)
            .map_err(|err| invalid(format!("TLS: {err}")))?
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let client = VaultServiceClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(GrpcVault { client, endpoint: config.endpoint.clone() })
    }

    /// One call of a page: up to `limit` entries after `after`, possibly fewer while more follow.
    async fn page_once(
        &self,
        after: Option<&VaultAddress>,
        limit: usize,
    ) -> VaultResult<Vec<(VaultAddress, VaultEntry)>> {
        let request = pb::PageRequest {
            after: after.map(VaultAddress::to_hex).unwrap_or_default(),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        };
        let response = self.client.clone().page(request).await.map_err(call_error)?.into_inner();
        if response.entries.len() > limit {
            return Err(malformed("a page longer than asked for"));
        }
        let mut page = Vec::with_capacity(response.entries.len());
        let mut previous = after.cloned();
        for item in response.entries {
            let address = VaultAddress::from_hex(&item.address).ok_or_else(|| malformed("a malformed address"))?;
            // Strictly increasing, as promised: the caller's next page starts after the last one.
            if previous.as_ref().is_some_and(|previous| &address <= previous) {
                return Err(malformed("a page out of address order"));
            }
            let entry = item.entry.ok_or_else(|| malformed("an address without an entry"))?;
            previous = Some(address.clone());
            page.push((address, VaultEntry { key_version: entry.key_version, envelope: entry.envelope }));
        }
        Ok(page)
    }
}

#[async_trait::async_trait]
impl VaultStore for GrpcVault {
    async fn put(&self, address: &VaultAddress, entry: VaultEntry) -> VaultResult<bool> {
        check_entry(&entry)?;
        let request = pb::PutRequest { address: address.to_hex(), entry: Some(wire::to_wire(entry)) };
        Ok(self.client.clone().put(request).await.map_err(call_error)?.into_inner().replaced)
    }

    async fn get(&self, address: &VaultAddress) -> VaultResult<Option<VaultEntry>> {
        let request = pb::GetRequest { address: address.to_hex() };
        let response = self.client.clone().get(request).await.map_err(call_error)?.into_inner();
        Ok(response.entry.map(|entry| VaultEntry { key_version: entry.key_version, envelope: entry.envelope }))
    }

    async fn delete(&self, address: &VaultAddress) -> VaultResult<bool> {
        let request = pb::DeleteRequest { address: address.to_hex() };
        Ok(self.client.clone().delete(request).await.map_err(call_error)?.into_inner().deleted)
    }

    async fn replace_if(&self, address: &VaultAddress, expected: &VaultEntry, entry: VaultEntry) -> VaultResult<bool> {
        check_entry(&entry)?;
        let request = pb::ReplaceIfRequest {
            address: address.to_hex(),
            expected: Some(wire::to_wire(expected.clone())),
            entry: Some(wire::to_wire(entry)),
        };
        Ok(self.client.clone().replace_if(request).await.map_err(call_error)?.into_inner().replaced)
    }

    /// Asks again until the page is full or the vault has no more: one response stays under
    /// 64 KiB, so it may hold fewer entries than asked for while more follow.
    async fn page(&self, after: Option<&VaultAddress>, limit: usize) -> VaultResult<Vec<(VaultAddress, VaultEntry)>> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(VaultError::Invalid(format!("page size must be 1 to {MAX_PAGE}")));
        }
        let mut page: Vec<(VaultAddress, VaultEntry)> = Vec::new();
        // Each round adds at least one entry or ends, so there are at most `limit` rounds.
        while page.len() < limit {
            let start = page.last().map(|(address, _)| address).or(after).cloned();
            let more = self.page_once(start.as_ref(), limit - page.len()).await?;
            if more.is_empty() {
                break;
            }
            page.extend(more);
        }
        Ok(page)
    }
}

/// The certificates in a PEM buffer; an error says what is wrong when there are none.
fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("invalid PEM ({err})"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    Ok(certs)
}

/// A failed call: the vault refused the request as malformed (INVALID_ARGUMENT, or OUT_OF_RANGE
/// for a message over the size limit), or it could not be reached or could not serve it, which
/// a retry later can fix.
fn call_error(status: tonic::Status) -> VaultError {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => VaultError::Invalid(status.message().to_owned()),
        code => {
            tracing::warn!(code = ?code, message = status.message(), "vault service call failed");
            VaultError::Unavailable(format!("the vault service answered {code:?}: {}", status.message()))
        }
    }
}

fn malformed(what: &str) -> VaultError {
    VaultError::Unavailable(format!("the vault service answered with {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str, ca: &[u8]) -> GrpcVaultConfig {
        GrpcVaultConfig {
            endpoint: endpoint.into(),
            ca_pem: ca.to_vec(),
            client_cert_pem: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            client_key_pem: b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"
                .to_vec(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_hides_the_client_key() {
        let shown = format!("{:?}", config("https://vault:8470", b""));
        assert!(shown.contains("<redacted>") && shown.contains("https://vault:8470"), "{shown}");
        assert!(!shown.contains("PRIVATE") && !shown.contains("c2VjcmV0"), "{shown}");
    }

    #[tokio::test]
    async fn a_bad_configuration_is_refused_at_once() {
        let ca = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let plaintext = GrpcVault::connect(config("http://vault:8470", ca)).expect_err("plaintext");
        assert!(matches!(plaintext, VaultError::Invalid(ref m) if m.contains("https")), "{plaintext}");
        let no_ca = GrpcVault::connect(config("https://vault:8470", b"not pem")).expect_err("no CA");
        assert!(matches!(no_ca, VaultError::Invalid(ref m) if m.contains("vault CA")), "{no_ca}");
        let mut zero = config("https://vault:8470", ca);
        zero.timeout = Duration::ZERO;
        assert!(matches!(GrpcVault::connect(zero), Err(VaultError::Invalid(_))));
    }
}
