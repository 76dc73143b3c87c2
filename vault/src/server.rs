//! `VaultServer`: the vault service (podconnect.vault.v1) over any `VaultStore`, a thin adapter
//! that checks the wire input, calls the store, and is the one place here that builds a
//! `tonic::Status`. It logs what happened to which address, never an envelope.

use std::sync::Arc;

use proto::vault::v1 as pb;
use proto::vault::v1::vault_service_server::{VaultService, VaultServiceServer};
use tonic::{Request, Response, Status};

use crate::wire::{self, MAX_MESSAGE};
use crate::{MAX_PAGE, VaultError, VaultStore};

/// How many entries a page asks the store for at once: few enough that large envelopes are not
/// read only to be cut from a response, enough that small ones take few queries.
const PAGE_CHUNK: usize = 32;

/// The vault service over a store.
#[derive(Clone)]
pub struct VaultServer {
    store: Arc<dyn VaultStore>,
}

impl VaultServer {
    pub fn new(store: Arc<dyn VaultStore>) -> Self {
        VaultServer { store }
    }

    /// The tonic service to serve, with messages bounded to 64 KiB both ways.
    pub fn into_service(self) -> VaultServiceServer<VaultServer> {
        VaultServiceServer::new(self).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
    }
}

#[tonic::async_trait]
impl VaultService for VaultServer {
    async fn put(&self, request: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let request = request.into_inner();
        let address = wire::address(&request.address, "address").map_err(status)?;
        let entry = wire::entry(request.entry, "entry").map_err(status)?;
        let key_version = entry.key_version;
        let replaced = self.store.put(&address, entry).await.map_err(status)?;
        tracing::debug!(?address, key_version, replaced, "put");
        Ok(Response::new(pb::PutResponse { replaced }))
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let address = wire::address(&request.get_ref().address, "address").map_err(status)?;
        let entry = self.store.get(&address).await.map_err(status)?;
        tracing::debug!(?address, found = entry.is_some(), "get");
        Ok(Response::new(pb::GetResponse { entry: entry.map(wire::to_wire) }))
    }

    async fn delete(&self, request: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let address = wire::address(&request.get_ref().address, "address").map_err(status)?;
        let deleted = self.store.delete(&address).await.map_err(status)?;
        tracing::debug!(?address, deleted, "delete");
        Ok(Response::new(pb::DeleteResponse { deleted }))
    }

    async fn replace_if(
        &self,
        request: Request<pb::ReplaceIfRequest>,
    ) -> Result<Response<pb::ReplaceIfResponse>, Status> {
        let request = request.into_inner();
        let address = wire::address(&request.address, "address").map_err(status)?;
        let expected = wire::entry(request.expected, "expected").map_err(status)?;
        let entry = wire::entry(request.entry, "entry").map_err(status)?;
        let key_version = entry.key_version;
        let replaced = self.store.replace_if(&address, &expected, entry).await.map_err(status)?;
        tracing::debug!(?address, key_version, replaced, "replace_if");
        Ok(Response::new(pb::ReplaceIfResponse { replaced }))
    }

    async fn page(&self, request: Request<pb::PageRequest>) -> Result<Response<pb::PageResponse>, Status> {
        let request = request.into_inner();
        let mut after = match request.after.as_str() {
            "" => None,
            text => Some(wire::address(text, "after").map_err(status)?),
        };
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        if limit == 0 || limit > MAX_PAGE {
            return Err(status(VaultError::Invalid(format!("`limit` must be 1 to {MAX_PAGE}"))));
        }
        // Reads chunk by chunk until the page is full, the store has no more, or the response
        // would pass the message bound.
        let mut page = wire::PageBuilder::default();
        loop {
            let want = PAGE_CHUNK.min(limit - page.len());
            let chunk = self.store.page(after.as_ref(), want).await.map_err(status)?;
            let exhausted = chunk.len() < want;
            for (address, entry) in chunk {
                if !page.push(&address, entry) {
                    return Ok(Response::new(finish(page)));
                }
                after = Some(address);
            }
            if exhausted || page.len() == limit {
                return Ok(Response::new(finish(page)));
            }
        }
    }
}

fn finish(page: wire::PageBuilder) -> pb::PageResponse {
    tracing::debug!(entries = page.len(), "page");
    page.finish()
}

/// A store error as the caller sees it: the message says what to fix or that a retry can work,
/// and never carries an envelope (no `VaultError` does).
fn status(err: VaultError) -> Status {
    match err {
        VaultError::Invalid(message) => Status::invalid_argument(message),
        VaultError::Unavailable(message) => {
            tracing::warn!(error = %message, "vault storage failed");
            Status::unavailable("the vault's storage is unavailable; try again shortly")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_ENVELOPE, MemoryVault, VaultAddress, VaultEntry};

    fn server() -> (VaultServer, Arc<MemoryVault>) {
        let store = Arc::new(MemoryVault::new());
        (VaultServer::new(store.clone()), store)
    }

    fn wire_entry(key_version: u32, envelope: &[u8]) -> Option<pb::VaultEntry> {
        Some(pb::VaultEntry { key_version, envelope: envelope.to_vec() })
    }

    #[tokio::test]
    async fn bad_requests_are_invalid_arguments() {
        let (server, store) = server();
        let good = "ab".repeat(32);
        let cases = [
            pb::PutRequest { address: "AB".repeat(32), entry: wire_entry(1, b"x") },
            pb::PutRequest { address: good.clone(), entry: None },
            pb::PutRequest { address: good.clone(), entry: wire_entry(1, b"") },
            pb::PutRequest { address: good.clone(), entry: wire_entry(1, &vec![0; MAX_ENVELOPE + 1]) },
        ];
        for case in cases {
            let err = server.put(Request::new(case)).await.expect_err("refused");
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        }
        assert!(store.is_empty());
        for (after, limit) in [("", 0), ("", 1001), ("nothex", 10)] {
            let err =
                server.page(Request::new(pb::PageRequest { after: after.into(), limit })).await.expect_err("refused");
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        }
        let err = server
            .replace_if(Request::new(pb::ReplaceIfRequest {
                address: good,
                expected: None,
                entry: wire_entry(1, b"x"),
            }))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn a_page_is_filled_across_chunks_and_cut_at_the_message_bound() {
        let (server, store) = server();
        for i in 0..100u8 {
            let envelope = if i < 50 { vec![i; 10] } else { vec![i; MAX_ENVELOPE] };
            store.put(&VaultAddress::from_bytes([i; 32]), VaultEntry { key_version: 1, envelope }).await.unwrap();
        }
        let page = |after: String, limit| server.page(Request::new(pb::PageRequest { after, limit }));
        let small = page(String::new(), 40).await.unwrap().into_inner();
        assert_eq!(small.entries.len(), 40, "more than one chunk of small entries");
        let rest = page(small.entries[39].address.clone(), 1000).await.unwrap().into_inner();
        assert_eq!(rest.entries.len(), 13, "10 small entries, then 3 large ones fill 64 KiB");
        assert!(prost::Message::encoded_len(&rest) <= MAX_MESSAGE);
        let last = VaultAddress::from_bytes([99; 32]).to_hex();
        assert!(page(last, 10).await.unwrap().into_inner().entries.is_empty());
    }
}
