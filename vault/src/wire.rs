//! The vault service's wire forms (podconnect.vault.v1) and the crate's types, converted in one
//! place for the server and the client, with the message bound both ends keep.

use proto::vault::v1 as pb;

use crate::{VaultAddress, VaultEntry, VaultError, VaultResult};

/// Largest gRPC message either end sends or accepts. The largest request (ReplaceIf: two entries
/// of at most 16 KiB and an address) fits with room to spare; pages are cut to fit.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// What one page response may hold: the message bound less room for the response's own framing.
const PAGE_BUDGET: usize = MAX_MESSAGE - 1024;

/// A request's address: exactly 64 lower-case hex characters.
pub(crate) fn address(text: &str, field: &str) -> VaultResult<VaultAddress> {
    VaultAddress::from_hex(text)
        .ok_or_else(|| VaultError::Invalid(format!("`{field}` must be 64 lower-case hex characters")))
}

/// A required entry of a request.
pub(crate) fn entry(entry: Option<pb::VaultEntry>, field: &str) -> VaultResult<VaultEntry> {
    let entry = entry.ok_or_else(|| VaultError::Invalid(format!("`{field}` is required")))?;
    Ok(VaultEntry { key_version: entry.key_version, envelope: entry.envelope })
}

pub(crate) fn to_wire(entry: VaultEntry) -> pb::VaultEntry {
    pb::VaultEntry { key_version: entry.key_version, envelope: entry.envelope }
}

/// How many bytes `item` adds to a page response: its field tag, its length and itself.
fn page_item_len(item: &pb::AddressedEntry) -> usize {
    let len = prost::Message::encoded_len(item);
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// A page response filled in address order while it fits in one message (the first entry always
/// fits: the largest one does).
#[derive(Default)]
pub(crate) struct PageBuilder {
    response: pb::PageResponse,
    used: usize,
}

impl PageBuilder {
    /// Adds an entry; false, adding nothing, when it would not fit.
    pub(crate) fn push(&mut self, address: &VaultAddress, entry: VaultEntry) -> bool {
        let item = pb::AddressedEntry { address: address.to_hex(), entry: Some(to_wire(entry)) };
        let len = page_item_len(&item);
        if !self.response.entries.is_empty() && self.used + len > PAGE_BUDGET {
            return false;
        }
        self.used += len;
        self.response.entries.push(item);
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.response.entries.len()
    }

    pub(crate) fn finish(self) -> pb::PageResponse {
        self.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_ENVELOPE;

    fn entries(count: u8, envelope_len: usize) -> Vec<(VaultAddress, VaultEntry)> {
        (0..count)
            .map(|i| {
                (
                    VaultAddress::from_bytes([i; 32]),
                    VaultEntry { key_version: u32::MAX, envelope: vec![i; envelope_len] },
                )
            })
            .collect()
    }

    #[test]
    fn pages_fit_in_one_message() {
        let mut page = PageBuilder::default();
        let pushed = entries(10, MAX_ENVELOPE).into_iter().take_while(|(a, e)| page.push(a, e.clone())).count();
        assert_eq!(pushed, 3, "three of the largest entries fit in 64 KiB");
        let page = page.finish();
        assert!(prost::Message::encoded_len(&page) <= MAX_MESSAGE);
        assert_eq!(page.entries[0].address, "00".repeat(32), "a page keeps the entries' order");

        let mut page = PageBuilder::default();
        assert!(entries(200, 100).into_iter().all(|(a, e)| page.push(&a, e)), "small entries all fit");
        assert_eq!(page.len(), 200);
        assert!(prost::Message::encoded_len(&page.finish()) <= MAX_MESSAGE);
    }

    #[test]
    fn a_request_address_is_strict() {
        assert!(address(&"0f".repeat(32), "address").is_ok());
        assert!(matches!(address(&"0F".repeat(32), "address"), Err(VaultError::Invalid(_))));
        assert!(matches!(address("", "address"), Err(VaultError::Invalid(_))));
        assert!(matches!(entry(None, "entry"), Err(VaultError::Invalid(_))));
    }
}
