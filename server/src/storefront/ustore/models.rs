//! The JSON uStore's storefront REST API answers with, as typed models: PascalCase names, unknown
//! members ignored (uStore adds fields between versions), a wrong type refused by serde with the
//! member's path in the error. Only what podconnect reads is modelled.

use serde::Deserialize;

/// `{Token: "…"}` from `login` and `login/renew`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TokenAnswer {
    pub token: String,
}

/// `loginByUrl`'s answer: the token sits one level deeper.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LoginByUrlAnswer {
    pub token: TokenAnswer,
    #[serde(rename = "UserID")]
    pub user_id: Option<String>,
    /// Set when the store wants an interactive login instead (a B2B store).
    #[serde(rename = "URL")]
    pub url: Option<String>,
}

/// `GET v1/store/login/user`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UserModel {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

/// `GET v1/store`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StoreModel {
    #[serde(rename = "PrimaryCurrencyID")]
    pub primary_currency_id: Option<String>,
}

/// One of `GET v1/store/currencies`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CurrencyModel {
    #[serde(rename = "ID")]
    pub id: String,
    pub code: String,
}

/// `GET v1/store/categories/tree`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CategoryTree {
    pub categories: Vec<CategoryNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CategoryNode {
    pub category: CategoryModel,
    #[serde(default)]
    pub sub_categories: Vec<CategoryNode>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CategoryModel {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A page of products: `categories/{id}/products` and `products/search`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProductList {
    pub products: Vec<ProductModel>,
    /// Products in all, before paging.
    pub count: u32,
}

/// A product, as lists and `products/{id}` describe it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProductModel {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub short_description: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// 1 Dynamic, 2 Static, 6 Dynamic with PURL; others (email, upload, kits…) are not printable here.
    #[serde(rename = "Type")]
    pub kind: u32,
    #[serde(default)]
    pub minimum_price: Option<PriceModel>,
    #[serde(default)]
    pub attributes: Vec<AttributeModel>,
    #[serde(default)]
    pub configuration: Option<ProductConfiguration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PriceModel {
    pub price: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AttributeModel {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProductConfiguration {
    #[serde(default)]
    pub quantity: Option<QuantityModel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QuantityModel {
    #[serde(default)]
    pub minimum: Option<u32>,
    #[serde(default)]
    pub maximum: Option<u32>,
    #[serde(default)]
    pub options: Option<Vec<QuantityOption>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QuantityOption {
    pub value: u32,
}

/// `products/{id}/thumbnails`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Thumbnails {
    pub thumbnails: Vec<ThumbnailModel>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ThumbnailModel {
    pub url: String,
}

/// An order item (podconnect's draft on the uStore side).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OrderItemModel {
    #[serde(rename = "ID")]
    pub id: String,
}

/// A preview or proof job: `preview`, `preview/{id}` and `proof`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RenderJob {
    #[serde(rename = "PreviewID", default)]
    pub preview_id: Option<String>,
    /// `ActivityStatus`: 1 in progress, 2 completed, 3 failed, 4 partially failed.
    pub status: u32,
    #[serde(default)]
    pub items: Vec<RenderItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RenderItem {
    pub url: String,
}

/// uStore's error body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub type_name: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

pub(crate) const STATUS_IN_PROGRESS: u32 = 1;
pub(crate) const STATUS_COMPLETED: u32 = 2;
