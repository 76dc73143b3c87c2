//! The double's fixed store: users, categories, products and the dynamic products' property forms.
//!
//! IDs are fixed so tests and the backend's fixtures can name them; they are GUID-shaped (lowercase,
//! 36 characters) like the real server's.

use serde_json::{Value, json};

pub const STORE_ID: &str = "5707e000-0000-4000-8000-000000000001";
pub const STORE_FRIENDLY_ID: u32 = 12;
pub const CURRENCY_ID: &str = "c0000000-0000-4000-8000-000000000840";

pub const CAT_STATIONERY: &str = "ca7e0000-0000-4000-8000-000000000101";
pub const CAT_BUSINESS_CARDS: &str = "ca7e0000-0000-4000-8000-000000000102";
pub const CAT_MARKETING: &str = "ca7e0000-0000-4000-8000-000000000103";
/// Seen only by users in group "trade".
pub const CAT_TRADE: &str = "ca7e0000-0000-4000-8000-000000000104";

pub const PROD_BUSINESS_CARD: &str = "9d0d0000-0000-4000-8000-000000000201";
pub const PROD_LETTERHEAD: &str = "9d0d0000-0000-4000-8000-000000000202";
pub const PROD_COMPLIMENTS_SLIP: &str = "9d0d0000-0000-4000-8000-000000000203";
pub const PROD_FLYER: &str = "9d0d0000-0000-4000-8000-000000000204";
pub const PROD_POSTER: &str = "9d0d0000-0000-4000-8000-000000000205";
pub const PROD_POSTCARD: &str = "9d0d0000-0000-4000-8000-000000000206";
pub const PROD_STICKER_SHEET: &str = "9d0d0000-0000-4000-8000-000000000207";
/// In the private "Trade counter" category.
pub const PROD_TRADE_CARDS: &str = "9d0d0000-0000-4000-8000-000000000208";

/// The form key of the quantity in state calls and in their errors.
pub const QUANTITY_KEY: &str = "uStoreOrderItemQuantity";

/// A registered user; anonymous users are made at run time by loginByUrl.
pub struct Account {
    pub id: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub trade: bool,
}

pub const ACCOUNTS: [Account; 2] = [
    Account {
        id: "05e70000-0000-4000-8000-0000000a0a01",
        email: "ana@example.com",
        password: "print-shop-ana",
        first_name: "Ana",
        last_name: "Silva",
        trade: false,
    },
    Account {
        id: "05e70000-0000-4000-8000-0000000b0b02",
        email: "ben@example.com",
        password: "print-shop-ben",
        first_name: "Ben",
        last_name: "Okafor",
        trade: true,
    },
];

pub struct Category {
    pub id: &'static str,
    pub friendly_id: u32,
    pub name: &'static str,
    pub description: &'static str,
    pub parent: Option<&'static str>,
    pub trade_only: bool,
}

pub const CATEGORIES: [Category; 4] = [
    Category {
        id: CAT_STATIONERY,
        friendly_id: 101,
        name: "Stationery",
        description: "Letterheads, slips and cards.",
        parent: None,
        trade_only: false,
    },
    Category {
        id: CAT_BUSINESS_CARDS,
        friendly_id: 102,
        name: "Business cards",
        description: "Cards with your details.",
        parent: Some(CAT_STATIONERY),
        trade_only: false,
    },
    Category {
        id: CAT_MARKETING,
        friendly_id: 103,
        name: "Marketing",
        description: "Flyers, posters and postcards.",
        parent: None,
        trade_only: false,
    },
    Category {
        id: CAT_TRADE,
        friendly_id: 104,
        name: "Trade counter",
        description: "Trade prices for resellers.",
        parent: None,
        trade_only: true,
    },
];

/// One dial of a dynamic product's form.
pub struct Dial {
    pub key: &'static str,
    pub id: &'static str,
    pub title: &'static str,
    pub default: &'static str,
    pub required: bool,
    pub max_length: Option<usize>,
    pub pattern: Option<&'static str>,
    /// `(values, display names)`.
    pub choices: Option<(&'static [&'static str], &'static [&'static str])>,
    pub widget: &'static str,
    /// Shown (and required) only when `(parent key, parent value)`.
    pub shown_when: Option<(&'static str, &'static str)>,
    pub section: (&'static str, &'static str),
}

const FRONT: (&str, &str) = ("Front", "front");
const BACK: (&str, &str) = ("Back", "back");

const fn text(key: &'static str, id: &'static str, title: &'static str) -> Dial {
    Dial {
        key,
        id,
        title,
        default: "",
        required: false,
        max_length: None,
        pattern: None,
        choices: None,
        widget: "textbox",
        shown_when: None,
        section: FRONT,
    }
}

pub const BUSINESS_CARD_DIALS: &[Dial] = &[
    Dial { required: true, max_length: Some(40), ..text("Name", "d1a10000-0000-4000-8000-000000000301", "Name") },
    Dial { max_length: Some(60), ..text("JobTitle", "d1a10000-0000-4000-8000-000000000302", "Job title") },
    Dial {
        default: "No",
        choices: Some((&["Yes", "No"], &["Yes", "No"])),
        widget: "dropdown",
        ..text("ShowPhone", "d1a10000-0000-4000-8000-000000000303", "Show phone number")
    },
    Dial {
        pattern: Some("^[0-9 +]+$"),
        max_length: Some(20),
        shown_when: Some(("ShowPhone", "Yes")),
        ..text("Phone", "d1a10000-0000-4000-8000-000000000304", "Phone")
    },
    Dial {
        pattern: Some("^[^@ ]+@[^@ ]+$"),
        max_length: Some(80),
        ..text("Email", "d1a10000-0000-4000-8000-000000000305", "Email")
    },
    Dial {
        default: "navy",
        choices: Some((&["navy", "red"], &["Navy blue", "Signal red"])),
        widget: "dropdown",
        section: BACK,
        ..text("Accent", "d1a10000-0000-4000-8000-000000000306", "Accent colour")
    },
    // A community DUC the core does not know: it must fall back to a text field.
    Dial {
        default: "0,0,0,10",
        widget: "CmykColorPicker",
        section: BACK,
        ..text("PaperTint", "d1a10000-0000-4000-8000-000000000307", "Paper tint (CMYK)")
    },
];

pub const FLYER_DIALS: &[Dial] = &[
    Dial {
        required: true,
        max_length: Some(50),
        ..text("Headline", "d1a10000-0000-4000-8000-000000000401", "Headline")
    },
    Dial { widget: "textarea", max_length: Some(400), ..text("Body", "d1a10000-0000-4000-8000-000000000402", "Body") },
];

pub const POSTCARD_DIALS: &[Dial] = &[Dial {
    widget: "textarea",
    max_length: Some(200),
    required: true,
    ..text("Message", "d1a10000-0000-4000-8000-000000000501", "Message")
}];

pub struct Product {
    pub id: &'static str,
    pub friendly_id: u32,
    pub name: &'static str,
    pub short: &'static str,
    pub description: &'static str,
    /// Empty for static products.
    pub dials: &'static [Dial],
    pub categories: &'static [&'static str],
    pub price: (f64, f64),
    pub unit: (&'static str, &'static str),
    pub quantity: (u32, u32),
    pub options: Option<&'static [u32]>,
    pub trim_mm: (f64, f64),
    pub bleed_mm: f64,
    pub pages: u32,
    /// Thumbnail and preview base colour.
    pub rgb: [u8; 3],
}

impl Product {
    pub fn is_dynamic(&self) -> bool {
        !self.dials.is_empty()
    }

    pub fn trade_only(&self) -> bool {
        self.categories.iter().all(|c| category(c).is_some_and(|c| c.trade_only))
    }

    pub fn thumbnail_path(&self) -> String {
        format!("/uStore/Images/thumb-{}.png", self.id)
    }

    /// ProductModel (and ProductDetailsModel: the same fields).
    pub fn model(&self) -> Value {
        let options =
            self.options.map(|o| o.iter().map(|v| json!({"Name": v.to_string(), "Value": v})).collect::<Vec<_>>());
        json!({
            "ID": self.id,
            "FriendlyID": self.friendly_id,
            "Name": self.name,
            "ShortDescription": self.short,
            "Description": self.description,
            "ImageUrl": self.thumbnail_path(),
            "Type": if self.is_dynamic() { 1 } else { 2 },
            "MinimumPrice": {"Price": self.price.0, "Tax": self.price.1},
            "Unit": {"ItemQuantity": 1, "ItemType": {"Name": self.unit.0, "PluralName": self.unit.1}},
            "Attributes": [
                {"Name": "TrimWidthMM", "Value": self.trim_mm.0.to_string()},
                {"Name": "TrimHeightMM", "Value": self.trim_mm.1.to_string()},
                {"Name": "BleedMM", "Value": self.bleed_mm.to_string()},
                {"Name": "PageCount", "Value": self.pages.to_string()},
            ],
            "Configuration": {"Quantity": {
                "Minimum": self.quantity.0,
                "Maximum": self.quantity.1,
                "Changeable": true,
                "Options": options,
            }},
        })
    }

    pub fn dial_by_id(&self, id: &str) -> Option<&'static Dial> {
        self.dials.iter().find(|d| d.id == id)
    }

    pub fn default_quantity(&self) -> u32 {
        self.options.and_then(|o| o.first().copied()).unwrap_or(self.quantity.0)
    }

    /// Whether `quantity` is one the product sells.
    pub fn quantity_ok(&self, quantity: u32) -> bool {
        match self.options {
            Some(options) => options.contains(&quantity),
            None => (self.quantity.0..=self.quantity.1).contains(&quantity),
        }
    }
}

pub const PRODUCTS: [Product; 8] = [
    Product {
        id: PROD_BUSINESS_CARD,
        friendly_id: 201,
        name: "Business card",
        short: "Your name and details on 350 gsm card.",
        description: "<p>Double-sided business card, <b>350 gsm</b> silk.</p>",
        dials: BUSINESS_CARD_DIALS,
        categories: &[CAT_BUSINESS_CARDS],
        price: (24.5, 4.9),
        unit: ("Card", "Cards"),
        quantity: (100, 1000),
        options: Some(&[100, 250, 500, 1000]),
        trim_mm: (85.0, 55.0),
        bleed_mm: 3.0,
        pages: 2,
        rgb: [30, 60, 120],
    },
    Product {
        id: PROD_LETTERHEAD,
        friendly_id: 202,
        name: "Letterhead",
        short: "A4 letterhead, 120 gsm.",
        description: "<p>Printed letterhead paper.</p>",
        dials: &[],
        categories: &[CAT_STATIONERY],
        price: (39.0, 7.8),
        unit: ("Sheet", "Sheets"),
        quantity: (250, 5000),
        options: None,
        trim_mm: (210.0, 297.0),
        bleed_mm: 3.0,
        pages: 1,
        rgb: [240, 240, 230],
    },
    Product {
        id: PROD_COMPLIMENTS_SLIP,
        friendly_id: 203,
        name: "Compliments slip",
        short: "DL compliments slip.",
        description: "<p>With compliments, one third of A4.</p>",
        dials: &[],
        categories: &[CAT_STATIONERY],
        price: (19.0, 3.8),
        unit: ("Slip", "Slips"),
        quantity: (250, 5000),
        options: None,
        trim_mm: (210.0, 99.0),
        bleed_mm: 3.0,
        pages: 1,
        rgb: [200, 220, 240],
    },
    Product {
        id: PROD_FLYER,
        friendly_id: 204,
        name: "Flyer A5",
        short: "A5 flyer, your headline on the front.",
        description: "<p>Double-sided A5 flyer on 170 gsm gloss.</p>",
        dials: FLYER_DIALS,
        categories: &[CAT_MARKETING],
        price: (45.0, 9.0),
        unit: ("Flyer", "Flyers"),
        quantity: (50, 10000),
        options: None,
        trim_mm: (148.0, 210.0),
        bleed_mm: 3.0,
        pages: 2,
        rgb: [250, 170, 40],
    },
    Product {
        id: PROD_POSTER,
        friendly_id: 205,
        name: "Poster A3",
        short: "A3 poster on satin paper.",
        description: "<p>Big and bright.</p>",
        dials: &[],
        categories: &[CAT_MARKETING],
        price: (12.0, 2.4),
        unit: ("Poster", "Posters"),
        quantity: (1, 500),
        options: None,
        trim_mm: (297.0, 420.0),
        bleed_mm: 3.0,
        pages: 1,
        rgb: [200, 40, 60],
    },
    Product {
        id: PROD_POSTCARD,
        friendly_id: 206,
        name: "Postcard A6",
        short: "A6 postcard with your message.",
        description: "<p>Postcard, message on the back.</p>",
        dials: POSTCARD_DIALS,
        categories: &[CAT_MARKETING],
        price: (18.0, 3.6),
        unit: ("Card", "Cards"),
        quantity: (25, 2500),
        options: None,
        trim_mm: (148.0, 105.0),
        bleed_mm: 3.0,
        pages: 2,
        rgb: [60, 160, 90],
    },
    Product {
        id: PROD_STICKER_SHEET,
        friendly_id: 207,
        name: "Sticker sheet",
        short: "A4 sheet of round stickers.",
        description: "<p>Kiss-cut stickers on an A4 sheet.</p>",
        dials: &[],
        categories: &[CAT_MARKETING],
        price: (9.5, 1.9),
        unit: ("Sheet", "Sheets"),
        quantity: (10, 1000),
        options: None,
        trim_mm: (210.0, 297.0),
        bleed_mm: 2.0,
        pages: 1,
        rgb: [150, 90, 200],
    },
    Product {
        id: PROD_TRADE_CARDS,
        friendly_id: 208,
        name: "Trade business cards",
        short: "Blank business cards for resellers, packs of 500.",
        description: "<p>Unprinted stock at trade prices.</p>",
        dials: &[],
        categories: &[CAT_TRADE],
        price: (60.0, 12.0),
        unit: ("Pack", "Packs"),
        quantity: (1, 100),
        options: None,
        trim_mm: (85.0, 55.0),
        bleed_mm: 3.0,
        pages: 2,
        rgb: [90, 90, 90],
    },
];

pub fn category(id: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.id == id)
}

pub fn product(id: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}

pub fn account_by_email(email: &str) -> Option<&'static Account> {
    ACCOUNTS.iter().find(|a| a.email.eq_ignore_ascii_case(email))
}

pub fn account_by_id(id: &str) -> Option<&'static Account> {
    ACCOUNTS.iter().find(|a| a.id == id)
}
