//! Clients for a `TestCore`: TLS channels that trust the core's development CA, and helpers that
//! start sessions and attach tokens the way the weblet and podctl do.

use std::collections::HashMap;
use std::path::Path;

use proto::v1 as pb;
use proto::v1::catalog_service_client::CatalogServiceClient;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use proto::v1::session_service_client::SessionServiceClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::core::TestCore;

impl TestCore {
    /// A channel over TLS trusting the development CA.
    pub async fn channel(&self) -> Channel {
        self.channel_with(None).await.expect("the core accepts a TLS connection")
    }

    /// A channel over TLS, optionally presenting a client certificate (PEM cert and key).
    pub async fn channel_with(&self, identity: Option<(&str, &str)>) -> anyhow::Result<Channel> {
        let ca = self.dev_ca.as_ref().expect("the core runs with its development CA");
        self.channel_trusting(ca, identity).await
    }

    /// A channel over TLS trusting `ca_file`.
    pub async fn channel_trusting(&self, ca_file: &Path, identity: Option<(&str, &str)>) -> anyhow::Result<Channel> {
        let ca = std::fs::read_to_string(ca_file)?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let channel = Channel::from_shared(format!("https://{}", self.addr))?.tls_config(tls)?.connect().await?;
        Ok(channel)
    }

    /// A plaintext channel (for cores started with --insecure-plaintext).
    pub async fn plaintext_channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?.connect().await?)
    }
}

/// Starts a session for `device_id` and returns its token.
pub async fn start_session(channel: &Channel, device_id: &str) -> String {
    let response = SessionServiceClient::new(channel.clone())
        .start_session(pb::StartSessionRequest { device_id: device_id.into(), ..Default::default() })
        .await
        .expect("StartSession succeeds");
    response.into_inner().session_token
}

/// Wraps a message in a request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("a token is ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

/// A catalog client.
pub fn catalog(channel: &Channel) -> CatalogServiceClient<Channel> {
    CatalogServiceClient::new(channel.clone())
}

/// A single sign-on client.
pub fn sso(channel: &Channel) -> proto::v1::sso_service_client::SsoServiceClient<Channel> {
    proto::v1::sso_service_client::SsoServiceClient::new(channel.clone())
}

/// The sample storefront's retail shopper and trade shopper (user name, password, display name).
pub const ANA: (&str, &str, &str) = ("ana@example.com", "print-shop-ana", "Ana Silva");
pub const BEN: (&str, &str, &str) = ("ben@example.com", "print-shop-ben", "Ben Okafor");

/// A session client.
pub fn sessions(channel: &Channel) -> SessionServiceClient<Channel> {
    SessionServiceClient::new(channel.clone())
}

/// Values that make the sample shop's classic business card valid.
pub const VALID_CARD: &[(&str, &str)] = &[
    ("initials", "AK"),
    ("card_colour", "navy"),
    ("company", "Keller Architects"),
    ("tagline", "Architecture & Interiors"),
    ("name", "Anna Keller"),
    ("job_title", "Architect"),
    ("phone", "+49 30 5550 1842"),
    ("email", "anna@keller-architects.de"),
    ("website", "keller-architects.de"),
    ("address", "Lindenstrasse 12\n10969 Berlin"),
];

/// A customization client that takes previews up to 16 MiB.
pub fn customize(channel: &Channel) -> CustomizationServiceClient<Channel> {
    CustomizationServiceClient::new(channel.clone()).max_decoding_message_size(16 * 1024 * 1024)
}

pub fn print(channel: &Channel) -> PrintServiceClient<Channel> {
    PrintServiceClient::new(channel.clone())
}

/// Form values from `(field, value)` pairs.
pub fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Creates a draft of `product` with `pairs` (the product's default quantity); panics if refused.
pub async fn create_draft(
    channel: &Channel,
    token: &str,
    product: &str,
    pairs: &[(&str, &str)],
) -> pb::CreateDraftResponse {
    let request = pb::CreateDraftRequest { product_id: product.into(), quantity: 0, values: values(pairs) };
    customize(channel).create_draft(authed(token, request)).await.expect("CreateDraft succeeds").into_inner()
}

/// Sets `pairs` on a draft; panics if refused.
pub async fn update_draft(
    channel: &Channel,
    token: &str,
    draft: &str,
    pairs: &[(&str, &str)],
) -> pb::UpdateDraftResponse {
    let request = pb::UpdateDraftRequest { draft_id: draft.into(), values: values(pairs), ..Default::default() };
    customize(channel).update_draft(authed(token, request)).await.expect("UpdateDraft succeeds").into_inner()
}
