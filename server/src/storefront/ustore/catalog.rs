//! uStore's catalog as podconnect's: the category tree with product counts, products per category
//! and search behind offset/limit (uStore pages are 1-based and at most 200 long), product
//! details, and thumbnails fetched, size-checked and re-encoded by the core. Anonymous answers
//! are cached in memory for all; a logged-in shopper's in their own session's stash.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::domain::catalog::{
    Category, CategoryId, Image, ImageInfo, Price, Product, ProductFilter, ProductId, ProductKind, ProductSlice,
    ProductSummary, QuantityRule, TrimSize, Visit,
};
use crate::domain::ephemeral::SessionStash;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::records::now_ms;
use crate::storefront::ustore::client::{Call, MAX_JSON_BYTES, UpstreamError};
use crate::storefront::ustore::models::{CategoryNode, CategoryTree, ProductList, ProductModel, Thumbnails};
use crate::storefront::ustore::{UstoreStorefront, Who, upstream_error};

/// uStore's largest page.
const MAX_USTORE_PAGE: u32 = 200;
/// A category filtered by search text is read at most this far.
const MAX_FILTERED_SCAN: u32 = 1000;
/// Thumbnails are re-encoded into this box (PNG), so their size is known before they are fetched.
pub(crate) const THUMB_WIDTH: u32 = 320;
pub(crate) const THUMB_HEIGHT: u32 = 240;
/// The largest thumbnail download accepted.
const MAX_THUMB_BYTES: usize = 4 * 1024 * 1024;
/// Depth of the category tree asked for.
const TREE_DEPTH: u32 = 4;
/// Stash entries of a logged-in shopper's cached views start with this.
const PRIVATE_VIEW_PREFIX: &str = "ustore/view/";

/// A JSON answer through the cache of the visit's shopper kind.
async fn cached<T: DeserializeOwned>(
    ustore: &UstoreStorefront,
    visit: &Visit,
    key: &str,
    fetch: impl Fn(&str) -> Call,
) -> CoreResult<T> {
    let who = ustore.reader(visit);
    let decode = |value: &serde_json::Value| {
        serde_json::from_value::<T>(value.clone()).map_err(|e| {
            upstream_error(UpstreamError::Malformed(format!("JSON: {e}")), "read the storefront's catalog")
        })
    };
    match who {
        Who::Account => {
            let stash = super::stash(visit)?;
            let name = format!("{PRIVATE_VIEW_PREFIX}{}", hex::encode(&sha2::Sha256::digest(key.as_bytes())[..12]));
            if let Some(bytes) = stash.get(&name).await?
                && let Ok((at_ms, value)) = serde_json::from_slice::<(u64, serde_json::Value)>(&bytes)
                && now_ms().saturating_sub(at_ms) < ustore.settings.cache_ttl.as_millis() as u64
            {
                return decode(&value);
            }
            let value: serde_json::Value = ustore.call_json(visit, who, fetch).await?;
            let parsed = decode(&value)?;
            if !ustore.settings.cache_ttl.is_zero() {
                let bytes = serde_json::to_vec(&(now_ms(), &value))
                    .map_err(|e| CoreError::internal("cannot cache a catalog answer", e))?;
                if bytes.len() <= MAX_JSON_BYTES {
                    stash.put(&name, &bytes).await?;
                    remember_view(stash, &name).await?;
                }
            }
            Ok(parsed)
        }
        _ => {
            let key = format!("anonymous/{key}");
            if let Some(value) = ustore.catalog_cache.get(&key) {
                return decode(&value);
            }
            let value: serde_json::Value = ustore.call_json(visit, who, fetch).await?;
            let parsed = decode(&value)?;
            ustore.catalog_cache.put(key, Arc::new(value));
            Ok(parsed)
        }
    }
}

use sha2::Digest as _;

/// The names of a session's cached private views, so logging out can forget them all.
const VIEW_INDEX: &str = "ustore/views";

async fn remember_view(stash: &Arc<dyn SessionStash>, name: &str) -> CoreResult<()> {
    let mut names: Vec<String> =
        stash.get(VIEW_INDEX).await?.and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
        let bytes = serde_json::to_vec(&names).map_err(|e| CoreError::internal("cannot cache a catalog answer", e))?;
        stash.put(VIEW_INDEX, &bytes).await?;
    }
    Ok(())
}

/// Deletes a logged-out shopper's cached private views.
pub(crate) async fn forget_private_views(stash: &Arc<dyn SessionStash>) -> CoreResult<()> {
    let names: Vec<String> =
        stash.get(VIEW_INDEX).await?.and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
    for name in names {
        stash.delete(&name).await?;
    }
    stash.delete(VIEW_INDEX).await?;
    Ok(())
}

pub(crate) async fn categories(ustore: &UstoreStorefront, visit: &Visit) -> CoreResult<Vec<Category>> {
    let tree: CategoryTree =
        cached(ustore, visit, "tree", |t| Call::get("v1/store/categories/tree", Some(t)).query("depth", TREE_DEPTH))
            .await?;
    let mut nodes = Vec::new();
    flatten(&tree.categories, &mut nodes);
    // uStore's tree has no product counts: ask each category for one product (bounded fan-out).
    let counts: Vec<CoreResult<(String, u32)>> = futures::stream::iter(nodes)
        .map(|id| async move {
            let list = category_page(ustore, visit, &id, 1, 1).await?;
            Ok((id, list.count))
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut by_id = std::collections::HashMap::new();
    for count in counts {
        let (id, n) = count?;
        by_id.insert(id, n);
    }
    tree.categories.iter().map(|node| category(node, &by_id)).collect()
}

fn flatten(nodes: &[CategoryNode], out: &mut Vec<String>) {
    for node in nodes {
        out.push(node.category.id.clone());
        flatten(&node.sub_categories, out);
    }
}

fn category(node: &CategoryNode, counts: &std::collections::HashMap<String, u32>) -> CoreResult<Category> {
    Ok(Category {
        id: CategoryId::parse(&node.category.id).map_err(malformed_id)?,
        name: node.category.name.clone(),
        description: plain_text(node.category.description.as_deref().unwrap_or("")),
        product_count: counts.get(&node.category.id).copied().unwrap_or(0),
        children: node.sub_categories.iter().map(|child| category(child, counts)).collect::<CoreResult<_>>()?,
    })
}

async fn category_page(
    ustore: &UstoreStorefront,
    visit: &Visit,
    category: &str,
    page: u32,
    size: u32,
) -> CoreResult<ProductList> {
    let path = format!("v1/store/categories/{category}/products");
    let key = format!("category/{category}/{page}/{size}");
    cached(ustore, visit, &key, |t| {
        Call::get(&path, Some(t)).query("pageNumber", page).query("pageSize", size).query("calculateMinimumPrice", true)
    })
    .await
    .map_err(|err| match err {
        CoreError::NotFound(_) => {
            CoreError::NotFound(format!("category \"{category}\" does not exist in this storefront"))
        }
        other => other,
    })
}

async fn search_page(
    ustore: &UstoreStorefront,
    visit: &Visit,
    text: &str,
    page: u32,
    size: u32,
) -> CoreResult<ProductList> {
    let key = format!("search/{}/{page}/{size}", hex::encode(sha2::Sha256::digest(text.as_bytes())));
    cached(ustore, visit, &key, |t| {
        Call::get("v1/store/products/search", Some(t))
            .query("search", text)
            .query("pageNumber", page)
            .query("pageSize", size)
    })
    .await
}

pub(crate) async fn products(
    ustore: &UstoreStorefront,
    visit: &Visit,
    filter: &ProductFilter,
    offset: u32,
    limit: u32,
) -> CoreResult<ProductSlice> {
    let currency = ustore.currency(visit).await?;
    let limit = limit.clamp(1, MAX_USTORE_PAGE);
    let (models, total, category) = match (&filter.category, filter.terms.is_empty()) {
        (Some(category), true) => {
            let (models, total) =
                window(offset, limit, |page, size| category_page(ustore, visit, category.as_str(), page, size)).await?;
            (models, total, Some(category.clone()))
        }
        (None, false) => {
            let text = filter.terms.join(" ");
            let (models, total) =
                window(offset, limit, |page, size| search_page(ustore, visit, &text, page, size)).await?;
            (models, total, None)
        }
        (Some(category), false) => {
            // uStore's search has no category: read the category (bounded) and match here.
            let mut matching = Vec::new();
            let mut page = 1;
            loop {
                let list = category_page(ustore, visit, category.as_str(), page, MAX_USTORE_PAGE).await?;
                let done =
                    list.products.len() < MAX_USTORE_PAGE as usize || page * MAX_USTORE_PAGE >= MAX_FILTERED_SCAN;
                matching.extend(list.products.into_iter().filter(|p| matches_terms(p, &filter.terms)));
                if done {
                    break;
                }
                page += 1;
            }
            let total = matching.len() as u32;
            let models = matching.into_iter().skip(offset as usize).take(limit as usize).collect();
            (models, total, Some(category.clone()))
        }
        (None, true) => {
            // Every product: uStore lists per category, so walk the tree's categories in order.
            let mut all = Vec::new();
            let tree = categories(ustore, visit).await?;
            let mut ids = Vec::new();
            walk(&tree, &mut ids);
            for id in ids {
                let mut page = 1;
                loop {
                    let list = category_page(ustore, visit, id.as_str(), page, MAX_USTORE_PAGE).await?;
                    let done =
                        list.products.len() < MAX_USTORE_PAGE as usize || page * MAX_USTORE_PAGE >= MAX_FILTERED_SCAN;
                    all.extend(list.products.into_iter().map(|p| (p, id.clone())));
                    if done {
                        break;
                    }
                    page += 1;
                }
            }
            let total = all.len() as u32;
            let items = all
                .into_iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(|(model, id)| summary(&model, Some(id), &currency))
                .collect::<CoreResult<_>>()?;
            return Ok(ProductSlice { items, total });
        }
    };
    let items = models.iter().map(|model| summary(model, category.clone(), &currency)).collect::<CoreResult<_>>()?;
    Ok(ProductSlice { items, total })
}

fn walk(categories: &[Category], out: &mut Vec<CategoryId>) {
    for category in categories {
        out.push(category.id.clone());
        walk(&category.children, out);
    }
}

/// `limit` products from `offset`, from 1-based pages: one page when the offset falls on a page
/// boundary of size `limit` (how our page tokens advance), two otherwise.
async fn window<F, Fut>(offset: u32, limit: u32, page: F) -> CoreResult<(Vec<ProductModel>, u32)>
where
    F: Fn(u32, u32) -> Fut,
    Fut: std::future::Future<Output = CoreResult<ProductList>>,
{
    let first = offset / limit + 1;
    let skip = (offset % limit) as usize;
    let list = page(first, limit).await?;
    let total = list.count;
    let mut models: Vec<ProductModel> = list.products.into_iter().skip(skip).collect();
    if skip > 0 && models.len() < limit as usize && offset + (models.len() as u32) < total {
        let more = page(first + 1, limit).await?;
        models.extend(more.products);
    }
    models.truncate(limit as usize);
    Ok((models, total))
}

fn matches_terms(product: &ProductModel, terms: &[String]) -> bool {
    let haystack = format!(
        "{} {} {}",
        product.name,
        product.short_description.as_deref().unwrap_or(""),
        plain_text(product.description.as_deref().unwrap_or(""))
    )
    .to_lowercase();
    terms.iter().all(|term| haystack.contains(term.as_str()))
}

pub(crate) async fn product_model(
    ustore: &UstoreStorefront,
    visit: &Visit,
    id: &ProductId,
) -> CoreResult<ProductModel> {
    let path = format!("v1/store/products/{id}");
    cached(ustore, visit, &format!("product/{id}"), |t| Call::get(&path, Some(t))).await.map_err(|err| match err {
        CoreError::NotFound(_) => CoreError::NotFound(format!("product \"{id}\" does not exist in this storefront")),
        other => other,
    })
}

pub(crate) async fn product(ustore: &UstoreStorefront, visit: &Visit, id: &ProductId) -> CoreResult<Product> {
    let model = product_model(ustore, visit, id).await?;
    let currency = ustore.currency(visit).await?;
    to_product(&model, &currency)
}

pub(crate) fn to_product(model: &ProductModel, currency: &str) -> CoreResult<Product> {
    let attribute = |name: &str| {
        model
            .attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .and_then(|a| a.value.as_deref())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0 && *v < 10_000.0)
    };
    let trim = match (attribute("TrimWidthMM"), attribute("TrimHeightMM")) {
        (Some(width_mm), Some(height_mm)) => {
            TrimSize { width_mm, height_mm, bleed_mm: attribute("BleedMM").unwrap_or(0.0) }
        }
        // uStore does not say: the contract leaves the trim size unset.
        _ => TrimSize { width_mm: 0.0, height_mm: 0.0, bleed_mm: 0.0 },
    };
    let page_count = attribute("PageCount").map_or(1, |n| (n as u32).clamp(1, 1000));
    let quantity = model.configuration.as_ref().and_then(|c| c.quantity.as_ref());
    let options: Vec<u32> = quantity
        .and_then(|q| q.options.as_ref())
        .map(|o| o.iter().map(|o| o.value).filter(|v| *v > 0).collect())
        .unwrap_or_default();
    let minimum = quantity.and_then(|q| q.minimum).filter(|m| *m > 0).unwrap_or(1);
    let maximum = quantity.and_then(|q| q.maximum).filter(|m| *m >= minimum).unwrap_or(100_000);
    let default = options.first().copied().unwrap_or(minimum);
    Ok(Product {
        summary: summary(model, None, currency)?,
        description: plain_text(model.description.as_deref().unwrap_or("")),
        trim,
        page_count,
        quantity: QuantityRule { minimum, maximum, default, options },
    })
}

/// Placeholder category of a product found without one (search, details): uStore's product
/// models do not say which category holds them.
pub(crate) const UNKNOWN_CATEGORY: &str = "ustore-search";

fn summary(model: &ProductModel, category: Option<CategoryId>, currency: &str) -> CoreResult<ProductSummary> {
    let kind = match model.kind {
        2 => ProductKind::Static,
        _ => ProductKind::Customizable,
    };
    let quantity = model.configuration.as_ref().and_then(|c| c.quantity.as_ref());
    let per_quantity = quantity.and_then(|q| q.minimum).filter(|m| *m > 0).unwrap_or(1);
    let price = model.minimum_price.as_ref().filter(|p| p.price.is_finite() && p.price >= 0.0).map(|p| Price {
        currency: currency.to_owned(),
        amount_minor: (p.price * 100.0).round() as i64,
        per_quantity,
    });
    Ok(ProductSummary {
        id: ProductId::parse(&model.id).map_err(malformed_id)?,
        name: model.name.clone(),
        short_description: plain_text(model.short_description.as_deref().unwrap_or("")),
        kind,
        category: category.unwrap_or_else(|| CategoryId::parse(UNKNOWN_CATEGORY).expect("a valid id")),
        price,
        thumbnail: Some(ImageInfo { content_type: "image/png".into(), width_px: THUMB_WIDTH, height_px: THUMB_HEIGHT }),
    })
}

fn malformed_id(err: CoreError) -> CoreError {
    upstream_error(
        UpstreamError::Malformed(format!("an id podconnect cannot carry: {err}")),
        "read the storefront's catalog",
    )
}

pub(crate) async fn thumbnail(ustore: &UstoreStorefront, visit: &Visit, id: &ProductId) -> CoreResult<Image> {
    // Visibility first: a product the shopper may not see has no thumbnail for them.
    product_model(ustore, visit, id).await?;
    let path = format!("v1/store/products/{id}/thumbnails");
    let thumbnails: Thumbnails =
        cached(ustore, visit, &format!("thumbnails/{id}"), |t| Call::get(&path, Some(t))).await?;
    let Some(first) = thumbnails.thumbnails.first() else {
        return Err(CoreError::NotFound(format!("product \"{id}\" has no thumbnail")));
    };
    let url = ustore.upstream.resolve(&first.url).map_err(|e| upstream_error(e, "fetch the thumbnail"))?;
    let who = ustore.reader(visit);
    let bytes = ustore.call_bytes(visit, who, |t| Call::get_url(&url, Some(t)), MAX_THUMB_BYTES).await?;
    let png = tokio::task::spawn_blocking(move || fit_png(&bytes, THUMB_WIDTH, THUMB_HEIGHT))
        .await
        .map_err(|e| CoreError::internal("cannot re-encode the thumbnail", e))??;
    Ok(Image {
        info: ImageInfo { content_type: "image/png".into(), width_px: THUMB_WIDTH, height_px: THUMB_HEIGHT },
        data: png,
    })
}

/// Decodes a PNG or JPEG within bounds and re-encodes it as a PNG of exactly `width`×`height`,
/// the picture scaled to fit and centred on transparency: what reaches the device is always an
/// image the core made.
pub(crate) fn fit_png(bytes: &[u8], width: u32, height: u32) -> CoreResult<Bytes> {
    let image = decode_image(bytes)?;
    let scaled = image.resize(width, height, image::imageops::FilterType::Triangle).to_rgba8();
    let mut canvas = image::RgbaImage::new(width, height);
    let (x, y) = ((width - scaled.width()) / 2, (height - scaled.height()) / 2);
    image::imageops::overlay(&mut canvas, &scaled, i64::from(x), i64::from(y));
    encode_png(&image::DynamicImage::ImageRgba8(canvas))
}

/// Decodes an image uStore sent, refusing one too large to decode safely.
pub(crate) fn decode_image(bytes: &[u8]) -> CoreResult<image::DynamicImage> {
    let unusable = |detail: String| {
        upstream_error(UpstreamError::Malformed(format!("image: {detail}")), "show the storefront's image")
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unusable(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8000);
    limits.max_image_height = Some(8000);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    reader.decode().map_err(|e| unusable(e.to_string()))
}

pub(crate) fn encode_png(image: &image::DynamicImage) -> CoreResult<Bytes> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).map_err(|e| CoreError::internal("cannot encode an image", e))?;
    Ok(Bytes::from(out.into_inner()))
}

/// uStore's descriptions are HTML; the contract's are plain text: tags dropped, the common
/// entities decoded, blocks separated by blank lines, runs of spaces collapsed.
pub(crate) fn plain_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim_start_matches('/').to_ascii_lowercase();
        if ["p", "br", "div", "li", "h1", "h2", "h3", "tr"]
            .iter()
            .any(|t| tag == *t || tag.starts_with(&format!("{t} ")))
        {
            text.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    text.push_str(rest);
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let paragraphs: Vec<String> = text
        .split('\n')
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect();
    paragraphs.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_descriptions_become_plain_paragraphs() {
        assert_eq!(
            plain_text("<p>Premium <b>350 gsm</b> card &amp; matte</p><p>Two&nbsp;sides</p>"),
            "Premium 350 gsm card & matte\n\nTwo sides"
        );
        assert_eq!(plain_text("no tags"), "no tags");
        assert_eq!(plain_text("broken <b"), "broken");
    }

    #[tokio::test]
    async fn a_window_reads_one_page_on_a_boundary_and_two_otherwise() {
        let data: Vec<u32> = (0..25).collect();
        let calls = std::sync::Mutex::new(Vec::new());
        let page = |number: u32, size: u32| {
            calls.lock().unwrap().push((number, size));
            let start = ((number - 1) * size) as usize;
            let products = data
                .iter()
                .skip(start)
                .take(size as usize)
                .map(|i| {
                    serde_json::from_value(serde_json::json!({"ID": format!("p{i}"), "Name": "x", "Type": 2})).unwrap()
                })
                .collect();
            async move { Ok(ProductList { products, count: 25 }) }
        };
        let (models, total) = window(10, 10, page).await.unwrap();
        assert_eq!((models.first().unwrap().id.as_str(), models.len(), total), ("p10", 10, 25));
        assert_eq!(calls.lock().unwrap().len(), 1);
        calls.lock().unwrap().clear();
        let (models, _) = window(5, 10, page).await.unwrap();
        assert_eq!(
            models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(","),
            "p5,p6,p7,p8,p9,p10,p11,p12,p13,p14"
        );
        assert_eq!(*calls.lock().unwrap(), vec![(1, 10), (2, 10)]);
    }

    #[test]
    fn images_are_re_encoded_into_the_box_and_garbage_is_refused() {
        let mut source = image::RgbaImage::new(100, 50);
        source.put_pixel(0, 0, image::Rgba([255, 0, 0, 255]));
        let png = encode_png(&image::DynamicImage::ImageRgba8(source)).unwrap();
        let fitted = fit_png(&png, THUMB_WIDTH, THUMB_HEIGHT).unwrap();
        let decoded = decode_image(&fitted).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (THUMB_WIDTH, THUMB_HEIGHT));
        assert!(fit_png(b"not an image", 10, 10).is_err());
        // A header claiming a huge image is refused before anything that size is allocated.
        let mut huge = png.to_vec();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode_image(&huge).is_err());
    }

    #[test]
    fn products_map_with_trim_from_attributes_and_prices_in_minor_units() {
        let model: ProductModel = serde_json::from_value(serde_json::json!({
            "ID": "6f1c2a9e-0b1d-4a8e-9c3f-2b7d5e8a1c40", "Name": "Card", "Type": 1,
            "MinimumPrice": {"Price": 24.5, "Tax": 0},
            "Attributes": [{"Name": "TrimWidthMM", "Value": "85"}, {"Name": "TrimHeightMM", "Value": "55"},
                           {"Name": "BleedMM", "Value": "3"}, {"Name": "PageCount", "Value": "2"}],
            "Configuration": {"Quantity": {"Minimum": 100, "Maximum": 1000, "Options": null}}
        }))
        .unwrap();
        let product = to_product(&model, "EUR").unwrap();
        assert_eq!((product.trim.width_mm, product.trim.height_mm, product.trim.bleed_mm), (85.0, 55.0, 3.0));
        assert_eq!(product.page_count, 2);
        let price = product.summary.price.unwrap();
        assert_eq!((price.currency.as_str(), price.amount_minor, price.per_quantity), ("EUR", 2450, 100));
        assert_eq!((product.quantity.minimum, product.quantity.maximum, product.quantity.default), (100, 1000, 100));
        assert_eq!(product.summary.kind, ProductKind::Customizable);
    }
}
