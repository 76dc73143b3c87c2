//! The embedded storefront: a folder of products (the sample shop built into the server, or one
//! given with `--storefront-dir`), loaded and validated once at start-up, so a broken product file
//! is a start-up error naming the file rather than a surprise at the printer. The folder format is
//! documented in `server/storefront/README.md`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

use crate::domain::catalog::{
    Account, Category, CategoryId, Image, ImageInfo, Price, Product, ProductFilter, ProductId, ProductKind,
    ProductSlice, ProductSummary, QuantityRule, Shopper, Storefront, TrimSize, Visit,
};
use crate::domain::error::{CoreError, CoreResult};
use crate::render::{self, Fonts, PageGeometry};
use crate::storefront::accounts::Accounts;
use crate::storefront::files::{StorefrontFiles, inside};
use crate::storefront::template::{self, LoadedTemplate};

/// Largest accepted thumbnail file.
const MAX_THUMBNAIL_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorefrontFile {
    name: String,
    currency: String,
    #[serde(default, rename = "group")]
    groups: Vec<GroupFile>,
    #[serde(default, rename = "category")]
    categories: Vec<CategoryFile>,
}

/// A group of accounts (`accounts.toml`) with its own prices and private categories.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    id: String,
    name: String,
    /// Percent off every price for the group's accounts (the largest of an account's groups).
    #[serde(default)]
    discount_percent: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    parent: Option<String>,
    /// Groups that see this category (and what is below it); empty = everyone.
    #[serde(default)]
    visible_to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductFile {
    id: String,
    name: String,
    short_description: String,
    description: String,
    category: String,
    kind: KindFile,
    thumbnail: String,
    price_minor: i64,
    price_per: u32,
    trim: TrimFile,
    quantity: QuantityFile,
    pdf: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum KindFile {
    Static,
    Customizable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrimFile {
    width_mm: f64,
    height_mm: f64,
    #[serde(default)]
    bleed_mm: f64,
    pages: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantityFile {
    min: u32,
    max: u32,
    default: u32,
    #[serde(default)]
    options: Vec<u32>,
}

struct Entry {
    product: Product,
    /// Lower-cased name and descriptions, for search.
    haystack: String,
    thumbnail: Image,
    printable: Printable,
}

/// How a product becomes print-ready.
pub enum Printable {
    /// Filled in through a form and laid out by the renderer.
    Customizable(LoadedTemplate),
    /// Printed from its shipped PDF (`document`, a path in the storefront's files); `preview` holds
    /// the pages it was made from, for previews.
    Static { preview: render::Template, document: String, pages: u32 },
}

/// A storefront read from its files at start-up and served from memory.
pub struct EmbeddedStorefront {
    name: String,
    files: StorefrontFiles,
    fonts: Fonts,
    roots: Vec<Category>,
    categories: HashSet<CategoryId>,
    /// The groups that see a category, for categories not everyone sees (inherited downwards).
    private: HashMap<CategoryId, Vec<String>>,
    /// Percent off by group id.
    discounts: HashMap<String, u8>,
    accounts: Accounts,
    /// Sorted by display name, then id.
    products: Vec<Entry>,
    by_id: HashMap<ProductId, usize>,
}

impl std::fmt::Debug for EmbeddedStorefront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStorefront")
            .field("name", &self.name)
            .field("products", &self.products.len())
            .finish_non_exhaustive()
    }
}

impl EmbeddedStorefront {
    /// Loads and validates the storefront folder `root`. Every error names the file at fault.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        Self::load_files(StorefrontFiles::Folder(root.to_path_buf()))
    }

    /// Loads the sample shop built into the binary.
    pub fn built_in_sample() -> anyhow::Result<Self> {
        Self::load_files(StorefrontFiles::BuiltInSample)
    }

    /// Loads and validates a storefront's files. Every error names the file at fault.
    pub fn load_files(files: StorefrontFiles) -> anyhow::Result<Self> {
        let fonts = load_fonts(&files).with_context(|| format!("{}: cannot load the fonts", files.shown("fonts")))?;
        let index_path = files.shown("storefront.toml");
        let index: StorefrontFile = read_toml(&files, "storefront.toml")?;
        ensure!(!index.name.trim().is_empty(), "{index_path}: name must not be empty");
        ensure!(
            index.currency.len() == 3 && index.currency.chars().all(|c| c.is_ascii_uppercase()),
            "{index_path}: currency must be an ISO 4217 code such as \"EUR\""
        );

        let mut discounts = HashMap::new();
        for group in &index.groups {
            let where_ = format!("{index_path}: group \"{}\"", group.id);
            check_slug(&group.id).with_context(|| where_.clone())?;
            ensure!(!group.name.trim().is_empty(), "{where_}: name must not be empty");
            ensure!(group.discount_percent <= 90, "{where_}: discount_percent must be 0 to 90");
            ensure!(discounts.insert(group.id.clone(), group.discount_percent).is_none(), "{where_}: declared twice");
        }
        let group_ids: Vec<String> = index.groups.iter().map(|g| g.id.clone()).collect();
        let mut private: HashMap<CategoryId, Vec<String>> = HashMap::new();
        let mut category_order = Vec::new();
        let mut parents: HashMap<String, Option<String>> = HashMap::new();
        let mut category_info: HashMap<String, (String, String)> = HashMap::new();
        for category in &index.categories {
            let where_ = format!("{index_path}: category \"{}\"", category.id);
            check_slug(&category.id).with_context(|| where_.clone())?;
            ensure!(!category.name.trim().is_empty(), "{where_}: name must not be empty");
            ensure!(!parents.contains_key(&category.id), "{where_}: declared twice");
            if let Some(parent) = &category.parent {
                ensure!(parents.contains_key(parent), "{where_}: parent \"{parent}\" must be declared before it");
            }
            for group in &category.visible_to {
                ensure!(group_ids.contains(group), "{where_}: group \"{group}\" is not declared");
            }
            // A category is seen by its own groups and no more than its parent's.
            let inherited =
                category.parent.as_ref().and_then(|p| private.get(&CategoryId::parse(p).expect("checked slug")));
            let seen_by: Option<Vec<String>> = match (inherited, category.visible_to.is_empty()) {
                (None, true) => None,
                (None, false) => Some(category.visible_to.clone()),
                (Some(parent), true) => Some(parent.clone()),
                (Some(parent), false) => {
                    Some(category.visible_to.iter().filter(|g| parent.contains(g)).cloned().collect())
                }
            };
            if let Some(seen_by) = seen_by {
                private.insert(CategoryId::parse(&category.id).expect("checked slug"), seen_by);
            }
            parents.insert(category.id.clone(), category.parent.clone());
            category_info.insert(category.id.clone(), (category.name.clone(), category.description.clone()));
            category_order.push(category.id.clone());
        }

        let folders = files
            .folders("products")
            .with_context(|| format!("{}: cannot list the products folder", files.shown("products")))?;
        let mut products = Vec::with_capacity(folders.len());
        for folder in folders {
            let entry = load_product(&files, &folder, &index.currency, &parents, &fonts)?;
            products.push(entry);
        }
        ensure!(!products.is_empty(), "{}: the storefront has no products", files.shown("products"));
        products.sort_by(|a, b| {
            (a.product.summary.name.as_str(), a.product.summary.id.as_str())
                .cmp(&(b.product.summary.name.as_str(), b.product.summary.id.as_str()))
        });

        let mut direct_counts: HashMap<&str, u32> = HashMap::new();
        for entry in &products {
            *direct_counts.entry(entry.product.summary.category.as_str()).or_default() += 1;
        }
        let roots = build_tree(None, &category_order, &parents, &category_info, &direct_counts);
        let by_id = products.iter().enumerate().map(|(i, e)| (e.product.summary.id.clone(), i)).collect();
        let categories = category_order.iter().map(|id| CategoryId::parse(id).expect("checked slug")).collect();
        let accounts = Accounts::load(&files, &group_ids)?;
        Ok(EmbeddedStorefront {
            name: index.name,
            files,
            fonts,
            roots,
            categories,
            private,
            discounts,
            accounts,
            products,
            by_id,
        })
    }

    /// Where the storefront's files are, for the static products' PDFs.
    pub fn files(&self) -> &StorefrontFiles {
        &self.files
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn product_count(&self) -> usize {
        self.products.len()
    }

    /// The fonts every template prints with.
    pub fn fonts(&self) -> &Fonts {
        &self.fonts
    }

    /// How the product becomes print-ready.
    pub fn printable(&self, id: &ProductId) -> CoreResult<&Printable> {
        Ok(&self.entry(id)?.printable)
    }

    fn entry(&self, id: &ProductId) -> CoreResult<&Entry> {
        self.by_id
            .get(id)
            .map(|&i| &self.products[i])
            .ok_or_else(|| CoreError::NotFound(format!("product \"{id}\" does not exist in this storefront")))
    }

    /// How many accounts the storefront has.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// What one shopper sees: the groups they belong to and the percent off their prices.
    fn view(&self, shopper: &Shopper) -> View<'_> {
        let groups = match shopper {
            Shopper::Anonymous => &[][..],
            Shopper::Account(account) => self.accounts.groups(&account.id),
        };
        let discount = groups.iter().filter_map(|g| self.discounts.get(g)).copied().max().unwrap_or(0);
        View { groups, discount }
    }

    fn sees(&self, view: &View<'_>, category: &CategoryId) -> bool {
        self.private.get(category).is_none_or(|seen_by| seen_by.iter().any(|g| view.groups.contains(g)))
    }

    /// The product as `view` sees it; `NotFound` (like an unknown id) when it may not see it.
    fn visible_entry(&self, view: &View<'_>, id: &ProductId) -> CoreResult<&Entry> {
        let entry = self.entry(id)?;
        if !self.sees(view, &entry.product.summary.category) {
            return Err(CoreError::NotFound(format!("product \"{id}\" does not exist in this storefront")));
        }
        Ok(entry)
    }
}

/// One shopper's view of the storefront.
struct View<'a> {
    groups: &'a [String],
    discount: u8,
}

impl View<'_> {
    fn price(&self, mut summary: ProductSummary) -> ProductSummary {
        if self.discount > 0
            && let Some(price) = &mut summary.price
        {
            // Rounded to the nearest minor unit, halves up.
            price.amount_minor = (price.amount_minor * i64::from(100 - self.discount) + 50) / 100;
        }
        summary
    }
}

/// The category tree without what `sees` hides.
fn visible_tree(categories: &[Category], sees: &dyn Fn(&CategoryId) -> bool) -> Vec<Category> {
    categories
        .iter()
        .filter(|c| sees(&c.id))
        .map(|c| Category { children: visible_tree(&c.children, sees), ..c.clone() })
        .collect()
}

#[async_trait]
impl Storefront for EmbeddedStorefront {
    async fn categories(&self, visit: &Visit) -> CoreResult<Vec<Category>> {
        let view = self.view(&visit.shopper);
        if self.private.is_empty() {
            return Ok(self.roots.clone());
        }
        Ok(visible_tree(&self.roots, &|c| self.sees(&view, c)))
    }

    async fn products(
        &self,
        visit: &Visit,
        filter: &ProductFilter,
        offset: u32,
        limit: u32,
    ) -> CoreResult<ProductSlice> {
        let view = self.view(&visit.shopper);
        if let Some(category) = &filter.category
            && (!self.categories.contains(category) || !self.sees(&view, category))
        {
            return Err(CoreError::NotFound(format!("category \"{category}\" does not exist in this storefront")));
        }
        let matching = self.products.iter().filter(|entry| {
            filter.category.as_ref().is_none_or(|c| &entry.product.summary.category == c)
                && self.sees(&view, &entry.product.summary.category)
                && filter.terms.iter().all(|term| entry.haystack.contains(term.as_str()))
        });
        let mut total = 0u32;
        let mut items = Vec::new();
        for entry in matching {
            if total >= offset && items.len() < limit as usize {
                items.push(view.price(entry.product.summary.clone()));
            }
            total += 1;
        }
        Ok(ProductSlice { items, total })
    }

    async fn product(&self, visit: &Visit, id: &ProductId) -> CoreResult<Product> {
        let view = self.view(&visit.shopper);
        let mut product = self.visible_entry(&view, id)?.product.clone();
        product.summary = view.price(product.summary);
        Ok(product)
    }

    async fn thumbnail(&self, visit: &Visit, id: &ProductId) -> CoreResult<Image> {
        Ok(self.visible_entry(&self.view(&visit.shopper), id)?.thumbnail.clone())
    }

    async fn login(&self, _visit: &Visit, username: &str, password: &str) -> CoreResult<Account> {
        self.accounts.login(username, password).await
    }
}

/// A TOML file of the storefront, named by its path in errors.
pub(crate) fn read_toml<T: for<'de> Deserialize<'de>>(files: &StorefrontFiles, path: &str) -> anyhow::Result<T> {
    let shown = files.shown(path);
    let bytes = files.read(path).with_context(|| format!("{shown}: cannot read"))?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{shown}: cannot read"))?;
    toml::from_str(text).with_context(|| format!("{shown}: invalid"))
}

/// Every .ttf/.otf/.ttc under `fonts/`, sorted by path.
fn load_fonts(files: &StorefrontFiles) -> anyhow::Result<Fonts> {
    let mut fonts = Vec::new();
    for path in files.files_below("fonts")? {
        let ext = path.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
        if matches!(ext.as_deref(), Some("ttf" | "otf" | "ttc")) {
            let data = files.read(&path).with_context(|| format!("reading font {}", files.shown(&path)))?;
            fonts.push((files.shown(&path), data.into_owned()));
        }
    }
    Fonts::from_files(fonts)
}

fn check_slug(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ensure!(ok, "id \"{id}\" must be 1 to 64 characters of a-z, 0-9 and '-'");
    Ok(())
}

fn load_product(
    files: &StorefrontFiles,
    folder_name: &str,
    currency: &str,
    categories: &HashMap<String, Option<String>>,
    fonts: &Fonts,
) -> anyhow::Result<Entry> {
    let folder = format!("products/{folder_name}");
    let path = files.shown(&format!("{folder}/product.toml"));
    let file: ProductFile = read_toml(files, &format!("{folder}/product.toml"))?;
    let at = |what: &str| format!("{path}: {what}");

    check_slug(&file.id).with_context(|| at("id"))?;
    ensure!(
        file.id == folder_name,
        "{}",
        at(&format!("id \"{}\" must equal the folder name \"{folder_name}\"", file.id))
    );
    ensure!(!file.name.trim().is_empty(), "{}", at("name must not be empty"));
    ensure!(file.short_description.chars().count() <= 120, "{}", at("short_description is longer than 120 characters"));
    ensure!(
        categories.contains_key(&file.category),
        "{}",
        at(&format!("category \"{}\" does not exist", file.category))
    );
    ensure!(file.price_minor >= 0 && file.price_per >= 1, "{}", at("price_minor must be >= 0 and price_per >= 1"));

    let trim = &file.trim;
    let sane = |mm: f64| mm.is_finite() && (10.0..=2000.0).contains(&mm);
    ensure!(sane(trim.width_mm) && sane(trim.height_mm), "{}", at("trim width_mm and height_mm must be 10 to 2000"));
    ensure!(
        trim.bleed_mm.is_finite() && (0.0..=20.0).contains(&trim.bleed_mm),
        "{}",
        at("trim bleed_mm must be 0 to 20")
    );
    ensure!((1..=64).contains(&trim.pages), "{}", at("trim pages must be 1 to 64"));

    let q = &file.quantity;
    ensure!(
        q.min >= 1 && q.min <= q.default && q.default <= q.max,
        "{}",
        at("quantity must satisfy 1 <= min <= default <= max")
    );
    if !q.options.is_empty() {
        ensure!(
            q.options.iter().all(|o| (q.min..=q.max).contains(o)),
            "{}",
            at("quantity options must lie within min..=max")
        );
        ensure!(
            q.options.windows(2).all(|w| w[0] < w[1]),
            "{}",
            at("quantity options must be ascending without repeats")
        );
        ensure!(q.options.contains(&q.default), "{}", at("quantity default must be one of the options"));
    }

    let thumbnail =
        load_image(files, &folder, &file.thumbnail, MAX_THUMBNAIL_BYTES).with_context(|| at("thumbnail"))?;
    let kind = match file.kind {
        KindFile::Static => ProductKind::Static,
        KindFile::Customizable => ProductKind::Customizable,
    };
    let id = ProductId::parse(&file.id).expect("checked slug");
    let geometry = PageGeometry {
        trim_width_mm: trim.width_mm,
        trim_height_mm: trim.height_mm,
        bleed_mm: trim.bleed_mm,
        crop_marks: false,
    };
    let printable = match (file.kind, &file.pdf) {
        (KindFile::Static, Some(name)) => {
            let document = check_pdf(files, &folder, name, &geometry, trim.pages).with_context(|| at("pdf"))?;
            let preview = render::Template {
                geometry,
                pages: template::load_pages(files, &folder, trim.pages)?,
                boxes: Vec::new(),
            };
            render::check_template(&preview, fonts, &HashMap::new())
                .with_context(|| format!("{}: preview pages", files.shown(&folder)))?;
            Printable::Static { preview, document, pages: trim.pages }
        }
        (KindFile::Static, None) => bail!("{}", at("a static product needs pdf = \"<file>.pdf\"")),
        (KindFile::Customizable, Some(_)) => bail!("{}", at("pdf is only for static products")),
        (KindFile::Customizable, None) => {
            Printable::Customizable(template::load(files, &folder, &id, geometry, trim.pages, fonts)?)
        }
    };
    let haystack = format!("{}\n{}\n{}", file.name, file.short_description, file.description).to_lowercase();
    let product = Product {
        summary: ProductSummary {
            id,
            name: file.name,
            short_description: file.short_description,
            kind,
            category: CategoryId::parse(&file.category).expect("checked slug"),
            price: Some(Price {
                currency: currency.to_owned(),
                amount_minor: file.price_minor,
                per_quantity: file.price_per,
            }),
            thumbnail: Some(thumbnail.info.clone()),
        },
        description: file.description,
        trim: TrimSize { width_mm: trim.width_mm, height_mm: trim.height_mm, bleed_mm: trim.bleed_mm },
        page_count: trim.pages,
        quantity: QuantityRule { minimum: q.min, maximum: q.max, default: q.default, options: q.options.clone() },
    };
    Ok(Entry { product, haystack, thumbnail, printable })
}

/// A PNG or JPEG file named in a product file: inside the product folder, at most `max_bytes`,
/// with a readable size of 1 to 4096 pixels a side.
pub(crate) fn load_image(files: &StorefrontFiles, folder: &str, name: &str, max_bytes: u64) -> anyhow::Result<Image> {
    let (path, size) = inside(files, folder, name)?;
    ensure!(size <= max_bytes, "\"{name}\" is larger than {} KiB", max_bytes / 1024);
    let data = files.read(&path)?.into_owned();
    let content_type = match imagesize::image_type(&data) {
        Ok(imagesize::ImageType::Png) => "image/png",
        Ok(imagesize::ImageType::Jpeg) => "image/jpeg",
        _ => bail!("\"{name}\" is not a PNG or JPEG image"),
    };
    let dims = imagesize::blob_size(&data).with_context(|| format!("\"{name}\" has an unreadable image header"))?;
    ensure!(
        dims.width > 0 && dims.height > 0 && dims.width <= 4096 && dims.height <= 4096,
        "\"{name}\" must be 1 to 4096 pixels on each side"
    );
    Ok(Image {
        info: ImageInfo {
            content_type: content_type.into(),
            width_px: dims.width as u32,
            height_px: dims.height as u32,
        },
        data: Bytes::from(data),
    })
}

/// The largest shipped PDF a static product may have.
const MAX_PDF_BYTES: u64 = 64 * 1024 * 1024;
/// How far a page box may be from the size the product states (rounding in PDF writers).
const BOX_TOLERANCE_MM: f64 = 0.2;

/// A static product's PDF must be what the contract promises of every print file: the product's
/// page count, and on every page a TrimBox of the trim size and a BleedBox of the trim plus the
/// bleed on all four sides, centred on it, inside the MediaBox. A PDF that lacks a real TrimBox
/// (many design tools write only a MediaBox) is refused by name rather than printed wrongly.
fn check_pdf(
    files: &StorefrontFiles,
    folder: &str,
    name: &str,
    geometry: &PageGeometry,
    pages: u32,
) -> anyhow::Result<String> {
    let (path, size) = inside(files, folder, name)?;
    ensure!(size <= MAX_PDF_BYTES, "\"{name}\" is larger than {MAX_PDF_BYTES} bytes");
    let bytes = files.read(&path)?;
    ensure!(bytes.starts_with(b"%PDF-"), "\"{name}\" is not a PDF file");
    let document = lopdf::Document::load_mem(&bytes).with_context(|| format!("\"{name}\" is not a readable PDF"))?;
    let found = document.get_pages();
    ensure!(found.len() == pages as usize, "\"{name}\" has {} pages; product.toml says {pages}", found.len());
    let (w, h, bleed) = (geometry.trim_width_mm, geometry.trim_height_mm, geometry.bleed_mm);
    for (number, id) in found {
        let at = |what: &str| format!("\"{name}\" page {number}: {what}");
        let page = document.get_dictionary(id).map_err(|e| anyhow::anyhow!(at(&format!("unreadable ({e})"))))?;
        let media = page_box(&document, id, b"MediaBox")?.ok_or_else(|| anyhow::anyhow!(at("no MediaBox")))?;
        // Without a TrimBox the PDF says the whole page is the finished size (the specification's
        // default), which is right only for products without bleed.
        let explicit_trim = page.get(b"TrimBox").is_ok();
        let trim_box = if explicit_trim { page_box(&document, id, b"TrimBox")? } else { None }.unwrap_or(media);
        let missing = if explicit_trim { "" } else { " (it has no TrimBox, so its MediaBox counts)" };
        let bleed_box = page_box(&document, id, b"BleedBox")?.unwrap_or(media);
        let close = |a: f64, b: f64| (a - b).abs() <= BOX_TOLERANCE_MM;
        ensure!(
            close(trim_box.width(), w) && close(trim_box.height(), h),
            "{}",
            at(&format!(
                "its TrimBox is {:.1} x {:.1} mm{missing}, the product is {w} x {h} mm; export it with a TrimBox of the \
                 trim size and a BleedBox {bleed} mm larger on every side",
                trim_box.width(),
                trim_box.height()
            ))
        );
        let expected = trim_box.grown(bleed);
        ensure!(
            [0, 1, 2, 3].iter().all(|&i| close(bleed_box.0[i], expected.0[i])),
            "{}",
            at(&format!("its BleedBox must be the TrimBox plus {bleed} mm on every side"))
        );
        ensure!(media.contains(&bleed_box), "{}", at("its BleedBox reaches outside its MediaBox"));
    }
    Ok(path)
}

/// A page box in millimetres: left, bottom, right, top.
#[derive(Debug, Clone, Copy)]
struct BoxMm([f64; 4]);

impl BoxMm {
    fn width(&self) -> f64 {
        self.0[2] - self.0[0]
    }
    fn height(&self) -> f64 {
        self.0[3] - self.0[1]
    }
    fn grown(&self, by: f64) -> BoxMm {
        BoxMm([self.0[0] - by, self.0[1] - by, self.0[2] + by, self.0[3] + by])
    }
    fn contains(&self, other: &BoxMm) -> bool {
        let slack = BOX_TOLERANCE_MM;
        other.0[0] >= self.0[0] - slack
            && other.0[1] >= self.0[1] - slack
            && other.0[2] <= self.0[2] + slack
            && other.0[3] <= self.0[3] + slack
    }
}

/// A page's box by name, inherited from the page tree as the PDF specification allows for the
/// MediaBox (the other boxes belong to the page itself).
fn page_box(document: &lopdf::Document, page: lopdf::ObjectId, key: &[u8]) -> anyhow::Result<Option<BoxMm>> {
    let mut node = document.get_dictionary(page)?;
    for _ in 0..32 {
        if let Ok(value) = node.get(key) {
            let value = match value {
                lopdf::Object::Reference(id) => document.get_object(*id)?,
                other => other,
            };
            let numbers =
                value.as_array()?.iter().map(|n| n.as_float().map(f64::from)).collect::<Result<Vec<_>, _>>()?;
            ensure!(numbers.len() == 4, "a {} with {} numbers", String::from_utf8_lossy(key), numbers.len());
            let mm = |pt: f64| pt * 25.4 / 72.0;
            let (x0, x1) = (numbers[0].min(numbers[2]), numbers[0].max(numbers[2]));
            let (y0, y1) = (numbers[1].min(numbers[3]), numbers[1].max(numbers[3]));
            return Ok(Some(BoxMm([mm(x0), mm(y0), mm(x1), mm(y1)])));
        }
        if key != b"MediaBox" {
            return Ok(None);
        }
        match node.get(b"Parent") {
            Ok(lopdf::Object::Reference(parent)) => node = document.get_dictionary(*parent)?,
            _ => return Ok(None),
        }
    }
    bail!("the page tree is too deep")
}

fn build_tree(
    parent: Option<&str>,
    order: &[String],
    parents: &HashMap<String, Option<String>>,
    info: &HashMap<String, (String, String)>,
    counts: &HashMap<&str, u32>,
) -> Vec<Category> {
    order
        .iter()
        .filter(|id| parents[*id].as_deref() == parent)
        .map(|id| {
            let (name, description) = info[id].clone();
            Category {
                id: CategoryId::parse(id).expect("checked slug"),
                name,
                description,
                product_count: counts.get(id.as_str()).copied().unwrap_or(0),
                children: build_tree(Some(id), order, parents, info, counts),
            }
        })
        // Like uStore, a category with no product at any depth is not shown.
        .filter(|category| category.product_count > 0 || !category.children.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn sample() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample")
    }

    #[test]
    fn sample_storefront_loads() {
        let shop = EmbeddedStorefront::load(&sample()).unwrap();
        assert!(shop.product_count() >= 10);
        assert!(shop.roots.iter().any(|c| !c.children.is_empty()), "a nested category");
    }

    #[tokio::test]
    async fn the_built_in_sample_is_the_sample_folder() {
        let (folder, built_in) =
            (EmbeddedStorefront::load(&sample()).unwrap(), EmbeddedStorefront::built_in_sample().unwrap());
        let visit = Visit::without_session(Shopper::Anonymous);
        let all =
            |shop: &EmbeddedStorefront| shop.products.iter().map(|entry| entry.product.clone()).collect::<Vec<_>>();
        assert_eq!(format!("{:?}", all(&built_in)), format!("{:?}", all(&folder)));
        assert_eq!(format!("{:?}", built_in.roots), format!("{:?}", folder.roots));
        // A static product's PDF and a customizable product's option pictures come from memory.
        let id = ProductId::parse("fire-action-notice").unwrap();
        let Printable::Static { document, .. } = built_in.printable(&id).unwrap() else { panic!("a static product") };
        let pdf = built_in.files().read_async(document).await.unwrap();
        assert_eq!(pdf, std::fs::read(sample().join("products/fire-action-notice/document.pdf")).unwrap());
        let postcard = ProductId::parse("a6-postcard").unwrap();
        let Printable::Customizable(loaded) = built_in.printable(&postcard).unwrap() else { panic!("customizable") };
        assert!(loaded.choices.values().flat_map(|options| options.values()).any(|asset| asset.image.is_some()));
        assert_eq!(
            built_in.thumbnail(&visit, &id).await.unwrap().data,
            folder.thumbnail(&visit, &id).await.unwrap().data
        );
    }

    #[test]
    fn an_option_image_outside_its_product_folder_or_behind_a_link_is_refused() {
        for (image, why) in [("../../../storefront.toml", "inside the product folder"), ("link.png", "not a link")] {
            let err = broken_copy(|root| {
                let product = root.join("products/a6-postcard");
                std::os::unix::fs::symlink(product.join("thumbnail.png"), product.join("link.png")).unwrap();
                let path = product.join("template.toml");
                let text = std::fs::read_to_string(&path).unwrap();
                let text = text.replacen("image = \"images/picture-lake.png\"", &format!("image = \"{image}\""), 1);
                std::fs::write(&path, text).unwrap();
            });
            let message = format!("{err:#}");
            assert!(message.contains("template.toml") && message.contains(why), "{message}");
        }
    }

    /// Copies the sample into a temporary folder so a test can break one file.
    fn broken_copy(edit: impl FnOnce(&Path)) -> anyhow::Error {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&sample(), dir.path());
        edit(dir.path());
        EmbeddedStorefront::load(dir.path()).unwrap_err()
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &target)
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }

    fn first_product(root: &Path) -> PathBuf {
        let mut dirs: Vec<_> = std::fs::read_dir(root.join("products")).unwrap().map(|e| e.unwrap().path()).collect();
        dirs.sort();
        dirs.remove(0)
    }

    #[test]
    fn broken_product_file_is_named_in_the_error() {
        let mut product = PathBuf::new();
        let err = broken_copy(|root| {
            product = first_product(root).join("product.toml");
            let text = std::fs::read_to_string(&product).unwrap();
            std::fs::write(&product, text.replace("category = ", "category = \"nowhere\"\n#")).unwrap();
        });
        let message = format!("{err:#}");
        assert!(message.contains("product.toml"), "{message}");
        assert!(message.contains("nowhere"), "{message}");
    }

    /// A PDF with `pages` pages of the given boxes (points; `None` leaves a box out).
    fn pdf_with_boxes(pages: usize, media: [f32; 4], trim: Option<[f32; 4]>, bleed: Option<[f32; 4]>) -> Vec<u8> {
        use pdf_writer::{Pdf, Rect, Ref};
        let rect = |r: [f32; 4]| Rect::new(r[0], r[1], r[2], r[3]);
        let mut pdf = Pdf::new();
        let (catalog, tree) = (Ref::new(1), Ref::new(2));
        let ids: Vec<Ref> = (0..pages).map(|i| Ref::new(3 + i as i32)).collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree).kids(ids.iter().copied()).count(pages as i32);
        for id in ids {
            let mut page = pdf.page(id);
            page.parent(tree).media_box(rect(media));
            if let Some(t) = trim {
                page.trim_box(rect(t));
            }
            if let Some(b) = bleed {
                page.bleed_box(rect(b));
            }
        }
        pdf.finish()
    }

    #[test]
    fn static_pdfs_without_the_products_page_boxes_are_refused_by_name() {
        // The door sign: 210 x 148 mm with 3 mm bleed, two pages.
        let pt = |mm: f32| mm * 72.0 / 25.4;
        let media = [0.0, 0.0, pt(216.0), pt(154.0)];
        let trim = [pt(3.0), pt(3.0), pt(213.0), pt(151.0)];
        let write = |bytes: Vec<u8>| {
            move |root: &Path| {
                std::fs::write(root.join("products/open-closed-door-sign/document.pdf"), bytes).unwrap();
            }
        };
        let err = format!("{:#}", broken_copy(write(pdf_with_boxes(2, media, None, None))));
        assert!(err.contains("open-closed-door-sign") && err.contains("document.pdf"), "{err}");
        assert!(err.contains("TrimBox is 216.0 x 154.0 mm (it has no TrimBox"), "{err}");

        let small = [pt(3.0), pt(3.0), pt(203.0), pt(151.0)];
        let err = format!("{:#}", broken_copy(write(pdf_with_boxes(2, media, Some(small), Some(media)))));
        assert!(err.contains("TrimBox is 200.0 x 148.0 mm"), "{err}");

        let err = format!("{:#}", broken_copy(write(pdf_with_boxes(2, media, Some(trim), Some(trim)))));
        assert!(err.contains("BleedBox must be the TrimBox plus 3 mm"), "{err}");

        let err = format!("{:#}", broken_copy(write(pdf_with_boxes(1, media, Some(trim), Some(media)))));
        assert!(err.contains("has 1 pages; product.toml says 2"), "{err}");

        // The same boxes as the shipped file load.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&sample(), dir.path());
        write(pdf_with_boxes(2, media, Some(trim), Some(media)))(dir.path());
        EmbeddedStorefront::load(dir.path()).unwrap();
    }

    #[test]
    fn unknown_keys_and_escaping_paths_are_refused() {
        let err = broken_copy(|root| {
            let path = first_product(root).join("product.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("colour = \"red\"\n{text}")).unwrap();
        });
        assert!(format!("{err:#}").contains("colour"), "{err:#}");

        let err = broken_copy(|root| {
            let path = first_product(root).join("product.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text
                .lines()
                .map(|l| if l.starts_with("thumbnail") { "thumbnail = \"../../storefront.toml\"" } else { l })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(&path, text).unwrap();
        });
        assert!(format!("{err:#}").contains("inside the product folder"), "{err:#}");
    }
}
