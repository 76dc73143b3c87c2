//! The catalog: what a storefront offers (categories, products, thumbnails), the narrow
//! `Storefront` trait every backend implements (the embedded sample shop now, XMPie uStore
//! later), and `Catalog`, the domain service that adds paging, validation and usage events.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::domain::ephemeral::SessionStash;
use crate::domain::error::{CoreError, CoreResult};
// Re-exported so storefront backends can name a catalog's ids from the catalog.
pub use crate::domain::ids::{CategoryId, ProductId};
use crate::domain::usage::{UsageEvent, UsageKind, UsageSink};

/// Default number of products per page.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Larger page sizes are clamped to this.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Longest accepted search text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Whether a product prints as is or is filled in first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductKind {
    /// A finished PDF printed as is.
    Static,
    /// Fields are filled in, previewed and rendered before printing.
    Customizable,
}

/// A price in the storefront's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// ISO 4217 code.
    pub currency: String,
    /// Amount in minor units (cents).
    pub amount_minor: i64,
    /// The amount is for this many units.
    pub per_quantity: u32,
}

/// Format and pixel size of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub content_type: String,
    pub width_px: u32,
    pub height_px: u32,
}

/// An image with its bytes.
#[derive(Debug, Clone)]
pub struct Image {
    pub info: ImageInfo,
    pub data: Bytes,
}

/// Finished size of a printed page.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrimSize {
    pub width_mm: f64,
    pub height_mm: f64,
    /// Extra image around the trim edge, on every side.
    pub bleed_mm: f64,
}

/// Which quantities may be ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityRule {
    pub minimum: u32,
    pub maximum: u32,
    pub default: u32,
    /// When not empty, only these quantities.
    pub options: Vec<u32>,
}

/// A category and its subcategories.
#[derive(Debug, Clone)]
pub struct Category {
    pub id: CategoryId,
    pub name: String,
    pub description: String,
    /// Products directly in this category.
    pub product_count: u32,
    pub children: Vec<Category>,
}

/// What a product list shows of a product.
#[derive(Debug, Clone)]
pub struct ProductSummary {
    pub id: ProductId,
    pub name: String,
    pub short_description: String,
    pub kind: ProductKind,
    pub category: CategoryId,
    pub price: Option<Price>,
    pub thumbnail: Option<ImageInfo>,
}

/// Everything the product page shows.
#[derive(Debug, Clone)]
pub struct Product {
    pub summary: ProductSummary,
    pub description: String,
    pub trim: TrimSize,
    pub page_count: u32,
    pub quantity: QuantityRule,
}

/// Who is browsing: prices and assortment may depend on the storefront login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shopper {
    /// Nobody has logged in to the storefront in this session.
    Anonymous,
    /// The session is logged in to this storefront account.
    Account(Account),
}

/// A storefront account a session is logged in to. Personal data: `Debug` shows neither field.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// The storefront's own id for the account (what its catalog views are keyed by).
    pub id: String,
    /// The storefront's name for the person, shown on screen.
    pub display_name: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Account([redacted])")
    }
}

/// Who asks a storefront, and where a remote storefront keeps what it holds for that session
/// (uStore's token and its anonymous user). `stash` is `None` outside a session (health checks,
/// benches); a backend that needs one refuses the call then.
#[derive(Clone)]
pub struct Visit {
    pub shopper: Shopper,
    pub stash: Option<Arc<dyn SessionStash>>,
}

impl Visit {
    /// A visit with no session behind it.
    pub fn without_session(shopper: Shopper) -> Self {
        Visit { shopper, stash: None }
    }
}

impl std::fmt::Debug for Visit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visit").field("shopper", &self.shopper).finish_non_exhaustive()
    }
}

/// Which products to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    pub category: Option<CategoryId>,
    /// Words that must all appear (case-insensitively) in the name or descriptions.
    pub terms: Vec<String>,
}

/// One slice of a filtered product list.
#[derive(Debug, Clone)]
pub struct ProductSlice {
    pub items: Vec<ProductSummary>,
    /// How many products match the filter in all.
    pub total: u32,
}

/// A storefront backend. Every call may go over the network (uStore), so all are async, and
/// nothing here assumes local files.
#[async_trait]
pub trait Storefront: Send + Sync + 'static {
    /// The category tree's roots.
    async fn categories(&self, visit: &Visit) -> CoreResult<Vec<Category>>;
    /// Products matching `filter`, `limit` of them from position `offset`. An unknown category
    /// is `NotFound`.
    async fn products(
        &self,
        visit: &Visit,
        filter: &ProductFilter,
        offset: u32,
        limit: u32,
    ) -> CoreResult<ProductSlice>;
    /// One product; `NotFound` when it does not exist for this shopper.
    async fn product(&self, visit: &Visit, id: &ProductId) -> CoreResult<Product>;
    /// The product's thumbnail; `NotFound` when it has none.
    async fn thumbnail(&self, visit: &Visit, id: &ProductId) -> CoreResult<Image>;
    /// Checks a storefront account's user name and password. Wrong ones are `PermissionDenied`
    /// with one message that does not say which was wrong; `Unavailable` when the storefront
    /// cannot be asked. A remote storefront keeps its login in the visit's stash.
    async fn login(&self, visit: &Visit, username: &str, password: &str) -> CoreResult<Account>;
    /// Ends the visit's storefront login (what `login` kept); nothing to do for local backends.
    async fn logout(&self, _visit: &Visit) -> CoreResult<()> {
        Ok(())
    }
    /// Whether the storefront can be reached now; `Unavailable` with a reason when not. Local
    /// backends always can.
    async fn check_reachable(&self) -> CoreResult<()> {
        Ok(())
    }
}

/// A product list request as the caller sent it.
#[derive(Debug, Clone, Default)]
pub struct ListProducts {
    pub category: Option<CategoryId>,
    pub query: String,
    /// 0 means the default; more than [`MAX_PAGE_SIZE`] is clamped.
    pub page_size: u32,
    /// Empty for the first page.
    pub page_token: String,
}

/// One page of products.
#[derive(Debug, Clone)]
pub struct ProductPage {
    pub items: Vec<ProductSummary>,
    /// Empty on the last page.
    pub next_page_token: String,
    pub total: u32,
}

/// The catalog as callers use it: one storefront, with paging and usage events on top.
pub struct Catalog {
    storefront: Arc<dyn Storefront>,
    usage: Arc<dyn UsageSink>,
}

impl Catalog {
    pub fn new(storefront: Arc<dyn Storefront>, usage: Arc<dyn UsageSink>) -> Self {
        Catalog { storefront, usage }
    }

    pub async fn categories(&self, visit: &Visit) -> CoreResult<Vec<Category>> {
        self.storefront.categories(visit).await
    }

    pub async fn list_products(&self, visit: &Visit, request: ListProducts) -> CoreResult<ProductPage> {
        let query = request.query.trim();
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(CoreError::InvalidArgument(format!(
                "query is longer than {MAX_QUERY_CHARS} characters; shorten the search text"
            )));
        }
        if query.chars().any(char::is_control) {
            return Err(CoreError::InvalidArgument("query must not contain control characters".into()));
        }
        let filter = ProductFilter {
            category: request.category,
            terms: query.split_whitespace().map(str::to_lowercase).collect(),
        };
        let limit = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let fingerprint = filter_fingerprint(&filter);
        let offset = match request.page_token.as_str() {
            "" => 0,
            token => decode_page_token(token, fingerprint)?,
        };
        let slice = self.storefront.products(visit, &filter, offset, limit).await?;
        let next = offset.saturating_add(slice.items.len() as u32);
        let next_page_token = if next < slice.total && !slice.items.is_empty() {
            encode_page_token(fingerprint, next)
        } else {
            String::new()
        };
        Ok(ProductPage { items: slice.items, next_page_token, total: slice.total })
    }

    pub async fn product(&self, visit: &Visit, id: &ProductId) -> CoreResult<Product> {
        let product = self.storefront.product(visit, id).await?;
        self.usage.record(UsageEvent::new(UsageKind::ProductViewed).with_product(id.clone())).await;
        Ok(product)
    }

    pub async fn thumbnail(&self, visit: &Visit, id: &ProductId) -> CoreResult<Image> {
        self.storefront.thumbnail(visit, id).await
    }

    /// The storefront behind the catalog (for logins).
    pub fn storefront(&self) -> &Arc<dyn Storefront> {
        &self.storefront
    }
}

const PAGE_TOKEN_VERSION: u8 = 1;

/// Ties a page token to the filter it was issued for, so a token cannot be replayed against
/// another category or search.
fn filter_fingerprint(filter: &ProductFilter) -> [u8; 8] {
    let mut hasher = Sha256::new();
    hasher.update(filter.category.as_ref().map_or("", |c| c.as_str()).as_bytes());
    for term in &filter.terms {
        hasher.update([0]);
        hasher.update(term.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..8].try_into().expect("sha256 is 32 bytes")
}

fn encode_page_token(fingerprint: [u8; 8], offset: u32) -> String {
    let mut raw = Vec::with_capacity(13);
    raw.push(PAGE_TOKEN_VERSION);
    raw.extend_from_slice(&fingerprint);
    raw.extend_from_slice(&offset.to_be_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode_page_token(token: &str, fingerprint: [u8; 8]) -> CoreResult<u32> {
    let invalid = || {
        CoreError::InvalidArgument(
            "page_token is not one this server issued; omit it to start from the first page".into(),
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    if raw.len() != 13 || raw[0] != PAGE_TOKEN_VERSION {
        return Err(invalid());
    }
    if raw[1..9] != fingerprint {
        return Err(CoreError::InvalidArgument(
            "page_token belongs to a different category or query; send the same category_id and query \
             as the first page, or omit page_token"
                .into(),
        ));
    }
    Ok(u32::from_be_bytes(raw[9..13].try_into().expect("length checked")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_bind_to_the_filter() {
        let a = ProductFilter { category: None, terms: vec!["card".into()] };
        let b = ProductFilter { category: None, terms: vec!["poster".into()] };
        let token = encode_page_token(filter_fingerprint(&a), 40);
        assert_eq!(decode_page_token(&token, filter_fingerprint(&a)).unwrap(), 40);
        assert!(decode_page_token(&token, filter_fingerprint(&b)).is_err());
        for garbage in ["x", "!!!!", "AAAAAAAAAAAAAAAAAA", ""] {
            assert!(decode_page_token(garbage, filter_fingerprint(&a)).is_err());
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(ProductId::parse("classic-business-card").is_ok());
        assert!(ProductId::parse("6f1c2a9e-0b1d-4a8e-9c3f-2b7d5e8a1c40").is_ok());
        for bad in ["", "../etc/passwd", "a b", &"x".repeat(65), "caf\u{e9}"] {
            assert!(ProductId::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
