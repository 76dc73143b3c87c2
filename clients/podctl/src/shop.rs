//! The shopping commands: the saved session, catalog, customizing drafts (values from `--set`
//! and files, field errors on their fields, previews as image files), printing with options
//! checked against the printer, and following jobs.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use podconnect_client::{
    Client, Code, ColorMode, Document, DraftChange, Image, Job, JobState, Named, PrintOptions, ProductQuery, Secret,
    Sides, pb,
};

use crate::config::Settings;
use crate::output::{self, Failure};

#[derive(Subcommand, Debug)]
pub(crate) enum SessionCommand {
    /// Start a session on the device and save its token (a file only you can read).
    Start {
        /// A file holding a device user's assertion (JWT), for single sign-on.
        #[arg(long, value_name = "FILE")]
        assertion_file: Option<PathBuf>,
        /// The person's language (BCP-47), e.g. de-CH.
        #[arg(long)]
        locale: Option<String>,
    },
    /// Say whether a session is saved, and where (never the token).
    Show,
    /// Close the saved session: the core deletes its drafts, previews and jobs.
    Close,
}

#[derive(Args, Debug)]
pub(crate) struct LoginArgs {
    /// The storefront account's user name.
    username: String,
    /// Read the password from this file instead of standard input.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Keep the credentials for single sign-on (needs a session with a device user).
    #[arg(long)]
    remember: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ProductsArgs {
    /// Only products directly in this category.
    #[arg(long)]
    category: Option<String>,
    /// Only products matching every word of this text.
    #[arg(long)]
    search: Option<String>,
    /// Products per page (the core's default is 20, at most 100).
    #[arg(long, default_value_t = 0)]
    page_size: u32,
    /// The page after the one that printed this token.
    #[arg(long)]
    page_token: Option<String>,
    /// Every page.
    #[arg(long, conflicts_with = "page_token")]
    all: bool,
}

#[derive(Args, Debug)]
pub(crate) struct CustomizeArgs {
    /// The product to make a new draft of (or give --draft to change one).
    #[arg(required_unless_present = "draft", conflicts_with = "draft")]
    product: Option<String>,
    /// The draft to change.
    #[arg(long)]
    draft: Option<String>,
    /// A value: FIELD=VALUE (repeatable; wins over --values).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// Values from a TOML or JSON file of FIELD = VALUE.
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
    /// How many units.
    #[arg(long)]
    quantity: Option<i32>,
    /// Write preview images of every page into this folder.
    #[arg(long, value_name = "DIR")]
    preview: Option<PathBuf>,
    /// Preview width in pixels.
    #[arg(long, default_value_t = 800)]
    width: u32,
    /// Make the print-ready file when the draft is valid.
    #[arg(long)]
    finalize: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("document").required(true).args(["draft", "file", "pdf"])))]
pub(crate) struct PrintArgs {
    /// A finalized draft of the session.
    // Ids are base64url and may start with '-'.
    #[arg(long, allow_hyphen_values = true)]
    draft: Option<String>,
    /// A print file of the session.
    #[arg(long, allow_hyphen_values = true)]
    file: Option<String>,
    /// A local PDF, uploaded first. Without a saved session, prints on --device in a session
    /// of its own and follows the job until it ends.
    #[arg(long, value_name = "FILE")]
    pdf: Option<PathBuf>,
    /// Copies (default: the print file's suggested copies).
    #[arg(long, default_value_t = 0)]
    copies: u32,
    /// one-sided, two-sided-long-edge or two-sided-short-edge.
    #[arg(long)]
    sides: Option<String>,
    /// color or monochrome.
    #[arg(long)]
    color: Option<String>,
    /// A media keyword, e.g. iso_a4_210x297mm.
    #[arg(long)]
    media: Option<String>,
    /// Scale a product down to the sheet when it is larger than every sheet loaded.
    #[arg(long)]
    fit: bool,
    /// Only show how it would print (sheet, pieces per sheet, sheets, sides); print nothing.
    #[arg(long)]
    plan: bool,
    /// With --plan: write the first sheet's front and back as PNG files into this folder.
    #[arg(long, value_name = "DIR", requires = "plan")]
    sheet_previews: Option<PathBuf>,
    /// Follow the job until it ends.
    #[arg(long)]
    watch: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum JobCommand {
    /// Show a job.
    Get {
        /// The job's id (base64url: it may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Ask to cancel a job.
    Cancel {
        /// The job's id (base64url: it may start with '-').
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

/// How a command got its session: the saved one, or one of its own that it closes at the end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SessionUse {
    Saved,
    Own,
}

/// What every command needs: the settings, a client, and whether to print JSON.
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) client: Client,
    pub(crate) json: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Context {
    pub(crate) fn new(settings: Settings, json: bool) -> Result<Context, Failure> {
        let client = settings.client().map_err(|e| match e.downcast_ref::<podconnect_client::Error>() {
            Some(error) => Failure::new(error.code(), error.message()),
            None => Failure::new(Code::InvalidArgument, format!("{e:#}")),
        })?;
        Ok(Context { settings, client, json })
    }

    /// The failure to report for an error a command returned.
    pub(crate) fn failure(&self, error: anyhow::Error) -> Failure {
        let error = match error.downcast::<Failure>() {
            Ok(failure) => return failure,
            Err(error) => error,
        };
        match error.downcast_ref::<podconnect_client::Error>() {
            Some(client) => Failure::from_client(client, &self.settings.endpoint),
            None => Failure::new(Code::InvalidArgument, format!("{error:#}")),
        }
    }

    fn device(&self) -> anyhow::Result<&str> {
        match &self.settings.device {
            Some(device) => Ok(device),
            None => {
                Err(Failure::new(Code::InvalidArgument, "no device: give --device or set `device` in the profile")
                    .into())
            }
        }
    }

    /// Uses the saved session, or (when `own_ok`) starts one for this command alone.
    async fn use_session(&self, own_ok: bool) -> anyhow::Result<SessionUse> {
        if let Some(token) = self.settings.saved_session()? {
            self.client.set_session_token(token);
            return Ok(SessionUse::Saved);
        }
        if own_ok && self.settings.device.is_some() {
            self.client.start_session(self.device()?).await?;
            return Ok(SessionUse::Own);
        }
        Err(Failure::new(Code::FailedPrecondition, "no saved session")
            .hint("run `podctl session start --device <id>` first")
            .into())
    }

    /// Closes a session this command started for itself.
    async fn end_session(&self, used: SessionUse) {
        if used == SessionUse::Own {
            let _ = self.client.close_session().await;
        }
    }

    /// Runs a read with the saved session or one of its own.
    async fn with_session<T, F, Fut>(&self, read: F) -> anyhow::Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = podconnect_client::Result<T>>,
    {
        let used = self.use_session(true).await?;
        let result = read().await;
        self.end_session(used).await;
        Ok(result?)
    }

    pub(crate) async fn session(&self, command: SessionCommand) -> anyhow::Result<Code> {
        match command {
            SessionCommand::Start { assertion_file, locale } => {
                let device = self.device()?.to_owned();
                let assertion = match &assertion_file {
                    Some(file) => std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read the assertion file {}", file.display()))?
                        .trim()
                        .to_owned(),
                    None => String::new(),
                };
                let info = self.client.start_session_with(&device, &assertion, locale.as_deref().unwrap_or("")).await?;
                let token = self.client.session_token().context("the core sent no session token")?;
                self.settings.save_session(&token)?;
                let file = self.settings.session_file.display().to_string();
                if self.json {
                    output::json(&serde_json::json!({
                        "device_id": device, "session_file": file, "expire_time": info.expire_time.map(podconnect_client::rfc3339),
                        "idle_timeout_seconds": info.idle_timeout.map(|d| d.as_secs()), "sso_available": info.sso_available,
                    }))?;
                } else {
                    let until = info.expire_time.map(podconnect_client::rfc3339).unwrap_or_else(|| "?".into());
                    output::line(&format!("session started on {device} until {until}; saved in {file}"));
                }
                Ok(Code::Ok)
            }
            SessionCommand::Show => {
                let saved = self.settings.saved_session()?.is_some();
                let file = self.settings.session_file.display().to_string();
                if self.json {
                    output::json(&serde_json::json!({
                        "profile": self.settings.profile_name, "endpoint": self.settings.endpoint,
                        "device": self.settings.device, "session_file": file, "saved": saved,
                    }))?;
                } else {
                    let state = if saved { "a session is saved" } else { "no session is saved" };
                    output::line(&format!("profile {}: {state} ({file})", self.settings.profile_name));
                }
                Ok(Code::Ok)
            }
            SessionCommand::Close => {
                self.use_session(false).await?;
                let result = self.client.close_session().await;
                // Closed, or already ended at the core: either way the file is of no use now.
                if result.is_ok() || result.as_ref().is_err_and(|e| e.code() == Code::Unauthenticated) {
                    self.settings.forget_session()?;
                }
                result?;
                if self.json {
                    output::json(&serde_json::json!({ "closed": true }))?;
                } else {
                    output::line("session closed");
                }
                Ok(Code::Ok)
            }
        }
    }

    pub(crate) async fn login(&self, args: LoginArgs) -> anyhow::Result<Code> {
        let password = match &args.password_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the password file {}", file.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
            None => {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
        };
        self.use_session(false).await?;
        let result = self.client.login(&args.username, &Secret::new(password), args.remember).await;
        let (name, remembered) = result?;
        // Login rotated the token: the old one in the file no longer works.
        let token = self.client.session_token().context("the core sent no session token")?;
        self.settings.save_session(&token)?;
        if self.json {
            output::json(&serde_json::json!({ "display_name": name, "remembered": remembered }))?;
        } else {
            output::line(&format!("logged in as {name}{}", if remembered { " (remembered)" } else { "" }));
        }
        Ok(Code::Ok)
    }

    pub(crate) async fn logout(&self) -> anyhow::Result<Code> {
        self.use_session(false).await?;
        self.client.logout().await?;
        if self.json {
            output::json(&serde_json::json!({ "logged_out": true }))?;
        } else {
            output::line("logged out");
        }
        Ok(Code::Ok)
    }

    pub(crate) async fn categories(&self) -> anyhow::Result<Code> {
        let categories = self.with_session(|| self.client.list_categories()).await?;
        if self.json {
            output::json(&serde_json::json!({ "categories": categories }))?;
            return Ok(Code::Ok);
        }
        fn walk(list: &[podconnect_client::Category], depth: usize, rows: &mut Vec<Vec<String>>) {
            for c in list {
                rows.push(vec![
                    format!("{}{}", "  ".repeat(depth), c.id),
                    c.product_count.to_string(),
                    c.display_name.clone(),
                ]);
                walk(&c.subcategories, depth + 1, rows);
            }
        }
        let mut rows = Vec::new();
        walk(&categories, 0, &mut rows);
        output::table(&["ID", "PRODUCTS", "NAME"], &rows);
        Ok(Code::Ok)
    }

    pub(crate) async fn products(&self, args: ProductsArgs) -> anyhow::Result<Code> {
        let mut query = ProductQuery {
            category_id: args.category,
            search: args.search,
            page_size: args.page_size,
            page_token: args.page_token,
        };
        let used = self.use_session(true).await?;
        let mut products = Vec::new();
        let (next, total) = loop {
            let page = match self.client.list_products(&query).await {
                Ok(page) => page,
                Err(error) => {
                    self.end_session(used).await;
                    return Err(error.into());
                }
            };
            products.extend(page.products);
            match page.next_page_token {
                Some(token) if args.all => query.page_token = Some(token),
                next => break (next, page.total_size),
            }
        };
        self.end_session(used).await;
        if self.json {
            output::json(&serde_json::json!({ "products": products, "next_page_token": next, "total_size": total }))?;
            return Ok(Code::Ok);
        }
        let rows: Vec<Vec<String>> = products
            .iter()
            .map(|p| {
                let price = p.price.as_ref().map(|p| p.display()).unwrap_or_default();
                let kind = if p.kind == podconnect_client::ProductKind::Static { "static" } else { "custom" };
                vec![p.id.clone(), kind.into(), price, p.category_id.clone(), p.display_name.clone()]
            })
            .collect();
        output::table(&["ID", "KIND", "PRICE", "CATEGORY", "NAME"], &rows);
        match next {
            Some(token) => output::line(&format!("{} of {total}; next page: --page-token {token}", products.len())),
            None => output::line(&format!("{} of {total}", products.len())),
        }
        Ok(Code::Ok)
    }

    pub(crate) async fn product(&self, id: &str) -> anyhow::Result<Code> {
        let product = self.with_session(|| self.client.get_product(id)).await?;
        if self.json {
            output::json(&serde_json::json!({ "product": product }))?;
            return Ok(Code::Ok);
        }
        let mut rows = vec![
            vec!["id".into(), product.id.clone()],
            vec!["name".into(), product.display_name.clone()],
            vec!["kind".into(), format!("{:?}", product.kind).to_lowercase()],
            vec!["category".into(), product.category_id.clone()],
            vec![
                "price".into(),
                product.price.as_ref().map(|p| format!("{} per {}", p.display(), p.per_quantity)).unwrap_or_default(),
            ],
            vec!["pages".into(), product.page_count.to_string()],
        ];
        if let Some((w, h, bleed)) = product.trim_size_mm {
            rows.push(vec!["trim".into(), format!("{w} x {h} mm, bleed {bleed} mm")]);
        }
        let quantities = if product.quantity_options.is_empty() {
            format!("{} to {} (default {})", product.quantity_min, product.quantity_max, product.quantity_default)
        } else {
            let options: Vec<String> = product.quantity_options.iter().map(i32::to_string).collect();
            format!("{} (default {})", options.join(", "), product.quantity_default)
        };
        rows.push(vec!["quantity".into(), quantities]);
        rows.push(vec!["summary".into(), product.short_description.clone()]);
        output::table(&["FIELD", "VALUE"], &rows);
        Ok(Code::Ok)
    }

    pub(crate) async fn thumbnail(&self, id: &str, file: &Path) -> anyhow::Result<Code> {
        let image = self.with_session(|| self.client.thumbnail(id)).await?;
        std::fs::write(file, &image.data).with_context(|| format!("cannot write {}", file.display()))?;
        let shown = file.display().to_string();
        if self.json {
            output::json(&serde_json::json!({ "file": shown, "image": image, "bytes": image.data.len() }))?;
        } else {
            output::line(&format!("wrote {shown} ({}, {}x{})", image.content_type, image.width_px, image.height_px));
        }
        Ok(Code::Ok)
    }

    pub(crate) async fn form(&self, id: &str) -> anyhow::Result<Code> {
        let form = self.with_session(|| self.client.form(id)).await?;
        let mut fields = form.fields.clone();
        fields.sort_by_key(|f| f.display_order);
        let kind = |f: &pb::FormField| {
            pb::FieldType::try_from(f.r#type)
                .map(|t| t.as_str_name().trim_start_matches("FIELD_TYPE_").to_ascii_lowercase())
                .unwrap_or_else(|_| "text".into())
        };
        if self.json {
            let fields: Vec<_> = fields
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "id": f.id, "label": f.label, "type": kind(f), "required": f.required,
                        "default_value": f.default_value, "max_length": f.max_length, "read_only": f.read_only,
                        "options": f.options.iter().map(|o| o.value.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            output::json(&serde_json::json!({ "product_id": form.product_id, "fields": fields }))?;
            return Ok(Code::Ok);
        }
        let rows: Vec<Vec<String>> = fields
            .iter()
            .map(|f| {
                let mut rules = Vec::new();
                if f.max_length > 0 {
                    rules.push(format!("max {} chars", f.max_length));
                }
                if !f.options.is_empty() {
                    rules.push(f.options.iter().map(|o| o.value.as_str()).collect::<Vec<_>>().join("|"));
                }
                if f.read_only {
                    rules.push("read-only".into());
                }
                let required = if f.required { "yes" } else { "" };
                vec![f.id.clone(), kind(f), required.into(), f.label.clone(), rules.join("; ")]
            })
            .collect();
        output::table(&["FIELD", "TYPE", "REQUIRED", "LABEL", "RULES"], &rows);
        Ok(Code::Ok)
    }

    pub(crate) async fn customize(&self, args: CustomizeArgs) -> anyhow::Result<Code> {
        let mut values = match &args.values {
            Some(file) => values_file(file)?,
            None => BTreeMap::new(),
        };
        for pair in &args.set {
            let (field, value) = pair
                .split_once('=')
                .ok_or_else(|| Failure::new(Code::InvalidArgument, format!("--set {pair:?}: write FIELD=VALUE")))?;
            values.insert(field.trim().to_owned(), value.to_owned());
        }
        self.use_session(false).await?;
        let result = match (&args.product, &args.draft) {
            (Some(product), None) => self.client.create_draft(product, args.quantity.unwrap_or(0), &values).await?,
            (None, Some(draft)) => {
                let change = DraftChange { values, quantity: args.quantity, clear: Vec::new() };
                self.client.update_draft(draft, &change).await?
            }
            _ => unreachable!("clap requires exactly one of product and --draft"),
        };
        let draft = &result.draft;
        let mut previews = Vec::new();
        if let Some(dir) = &args.preview {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for page in self.client.render_preview(&draft.id, args.width, &[]).await? {
                previews.push(write_preview(dir, &draft.id, &page)?);
            }
        }
        let mut print_file = None;
        if args.finalize && result.field_errors.is_empty() {
            print_file = Some(self.client.finalize_draft(&draft.id).await?.0);
        }
        if self.json {
            output::json(&serde_json::json!({
                "draft": draft, "field_errors": result.field_errors, "previews": previews, "print_file": print_file,
            }))?;
        } else {
            let price = draft.price.as_ref().map(|p| format!("  {}", p.display())).unwrap_or_default();
            let state = if print_file.is_some() {
                "finalized".to_string()
            } else {
                format!("{:?}", draft.state).to_lowercase()
            };
            output::line(&format!("draft {}  {state}  quantity {}{price}", draft.id, draft.quantity));
            if !result.field_errors.is_empty() {
                let rows: Vec<Vec<String>> = result
                    .field_errors
                    .iter()
                    .map(|e| {
                        vec![
                            e.field_id.clone().unwrap_or_else(|| "(quantity)".into()),
                            e.code.clone(),
                            e.message.clone(),
                        ]
                    })
                    .collect();
                output::table(&["FIELD", "ERROR", "MESSAGE"], &rows);
            }
            for preview in &previews {
                output::line(&format!(
                    "preview page {} -> {}",
                    preview["page_number"],
                    preview["file"].as_str().unwrap_or("")
                ));
            }
            if let Some(file) = &print_file {
                output::line(&format!(
                    "print file {}  {} pages  {} bytes  sha256 {}",
                    file.file_id, file.page_count, file.size_bytes, file.sha256
                ));
            }
        }
        if !result.field_errors.is_empty() {
            let first = &result.field_errors[0];
            let field = first.field_id.as_deref().unwrap_or("quantity");
            let more = if result.field_errors.len() > 1 {
                format!(" (and {} more)", result.field_errors.len() - 1)
            } else {
                String::new()
            };
            eprintln!("podctl: INVALID_ARGUMENT: {field}: {}{more}", first.message);
            return Ok(Code::InvalidArgument);
        }
        Ok(Code::Ok)
    }

    pub(crate) async fn print(&self, args: PrintArgs) -> anyhow::Result<Code> {
        let options = PrintOptions {
            copies: args.copies,
            sides: args.sides.as_deref().map(|s| named::<Sides>("--sides", s)).transpose()?,
            color_mode: args.color.as_deref().map(|s| named::<ColorMode>("--color", s)).transpose()?,
            media: args.media.clone(),
            fit_to_sheet: args.fit,
        };
        let Some(pdf) = args.pdf.clone() else { return self.print_in(SessionUse::Saved, args, options).await };
        // Read before any call, so a missing file costs no session.
        let bytes = std::fs::read(&pdf).map_err(|e| {
            Failure::new(Code::InvalidArgument, format!("cannot read {}: {e}", pdf.display()))
                .hint("give the path of a local PDF file")
        })?;
        let used = self.use_session(true).await?;
        let result = async {
            let name = pdf.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = self.client.upload_print_file(bytes, &name).await?;
            if !self.json {
                output::line(&format!(
                    "uploaded {}  {} pages  {} bytes  sha256 {}",
                    pdf.display(),
                    file.page_count,
                    file.size_bytes,
                    file.sha256
                ));
            }
            let args = PrintArgs { file: Some(file.file_id), pdf: None, ..args };
            self.print_in(used, args, options).await
        }
        .await;
        self.end_session(used).await;
        result
    }

    /// Prints a draft or a print file of the session in use; a session of its own is followed to
    /// the job's end, since closing it first would take the job's file with it.
    async fn print_in(&self, used: SessionUse, args: PrintArgs, options: PrintOptions) -> anyhow::Result<Code> {
        let document = match (args.draft, args.file) {
            (Some(draft), _) => Document::Draft(draft),
            (_, Some(file)) => Document::File(file),
            _ => unreachable!("clap requires one document"),
        };
        if used == SessionUse::Saved {
            self.use_session(false).await?;
        }
        let printer = self.client.printer().await?;
        if let Err(problem) = printer.check(&options) {
            return Err(Failure::new(Code::InvalidArgument, problem).into());
        }
        if args.plan {
            let width = if args.sheet_previews.is_some() { 600 } else { 0 };
            let plan = self.client.plan_job(&document, &options, width).await?;
            let mut written = Vec::new();
            if let Some(dir) = &args.sheet_previews {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Failure::new(Code::InvalidArgument, format!("cannot create {}: {e}", dir.display()))
                })?;
                for image in &plan.sheets {
                    let path = dir.join(if image.page_number == 1 { "sheet-front.png" } else { "sheet-back.png" });
                    std::fs::write(&path, &image.data).map_err(|e| {
                        Failure::new(Code::Unavailable, format!("cannot write {}: {e}", path.display()))
                    })?;
                    written.push(path.display().to_string());
                }
            }
            if self.json {
                output::json(&serde_json::json!({ "layout": plan.layout, "sheet_previews": written }))?;
            } else {
                output::line(&describe_layout(&plan.layout));
                for path in written {
                    output::line(&format!("wrote {path}"));
                }
            }
            return Ok(Code::Ok);
        }
        let submitted = self.client.submit_job(&document, &options).await?;
        if self.json {
            output::json(&serde_json::json!({ "job": submitted.job }))?;
        } else {
            output::line(&format!(
                "job {} on {}: {}",
                submitted.job.id,
                printer.display_name,
                submitted.job.state.name()
            ));
        }
        if args.watch || used == SessionUse::Own {
            self.follow(&submitted.job.id.clone(), Some(submitted.job)).await
        } else {
            Ok(Code::Ok)
        }
    }

    pub(crate) async fn watch(&self, job_id: &str) -> anyhow::Result<Code> {
        self.use_session(false).await?;
        self.follow(job_id, None).await
    }

    /// Prints each state of the job until it ends; the exit status says how it ended.
    async fn follow(&self, job_id: &str, already_shown: Option<Job>) -> anyhow::Result<Code> {
        let mut watch = self.client.watch_job(job_id);
        let mut last = already_shown;
        while let Some(job) = watch.next().await {
            let job = job?;
            if last.as_ref().is_some_and(|l| l.same_moment(&job)) {
                continue;
            }
            if self.json {
                output::json(&serde_json::json!({ "job": job }))?;
            } else {
                output::line(&progress(&job));
            }
            last = Some(job);
        }
        Ok(match last.map(|j| j.state) {
            Some(JobState::Completed) => Code::Ok,
            Some(JobState::Canceled) => Code::Cancelled,
            Some(JobState::Aborted) => Code::Aborted,
            _ => Code::Unknown,
        })
    }

    pub(crate) async fn job(&self, command: JobCommand) -> anyhow::Result<Code> {
        self.use_session(false).await?;
        let job = match command {
            JobCommand::Get { id } => self.client.get_job(&id).await?,
            JobCommand::Cancel { id } => self.client.cancel_job(&id).await?,
        };
        if self.json {
            output::json(&serde_json::json!({ "job": job }))?;
        } else {
            output::line(&progress(&job));
        }
        Ok(Code::Ok)
    }
}

/// One line of a job's progress: state, pages, reasons, the printer's words.
fn progress(job: &Job) -> String {
    let total = job.pages_total;
    let pages = match job.pages_printed {
        Some(done) if total > 0 => format!("{done}/{total} pages"),
        Some(done) => format!("{done} pages"),
        None => String::new(),
    };
    let mut text = format!("{:<10}  {:<12}  {}", job.state.name(), pages, job.state_reasons.join(","));
    if !job.state_message.is_empty() {
        text.push_str(&format!("  {}", job.state_message));
    }
    format!("{}  {}", job.id, text.trim_end())
}

/// A value named on the command line, or INVALID_ARGUMENT listing the names.
fn named<T: Named + PartialEq>(flag: &str, value: &str) -> anyhow::Result<T> {
    T::from_name(value).ok_or_else(|| {
        let names: Vec<&str> = T::NAMES.iter().map(|(n, _)| *n).collect();
        Failure::new(Code::InvalidArgument, format!("{flag} {value:?}: use one of {}", names.join(", "))).into()
    })
}

/// FIELD = VALUE pairs from a TOML or JSON file (by extension); numbers and booleans become text.
fn values_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the values file {}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let table: BTreeMap<String, serde_json::Value> = if is_json {
        serde_json::from_str(&text).with_context(|| format!("{}: not a JSON object of FIELD: VALUE", path.display()))?
    } else {
        let table: BTreeMap<String, toml::Value> =
            toml::from_str(&text).with_context(|| format!("{}: not a TOML table of FIELD = VALUE", path.display()))?;
        table.into_iter().map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default())).collect()
    };
    let mut values = BTreeMap::new();
    for (field, value) in table {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => anyhow::bail!("{}: the value of {field:?} must be text, a number or true/false", path.display()),
        };
        values.insert(field, text);
    }
    Ok(values)
}

/// Writes one preview page as `<dir>/<draft>-page-<n>.png` (`.jpg` when the core sent JPEG).
fn write_preview(dir: &Path, draft_id: &str, page: &Image) -> anyhow::Result<serde_json::Value> {
    let extension = if page.content_type == "image/jpeg" { "jpg" } else { "png" };
    // The id is opaque: keep only characters that are safe in a file name.
    let safe: String =
        draft_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(64).collect();
    let file = dir.join(format!("{safe}-page-{}.{extension}", page.page_number));
    std::fs::write(&file, &page.data).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(serde_json::json!({
        "file": file.display().to_string(), "page_number": page.page_number,
        "content_type": page.content_type, "width_px": page.width_px, "height_px": page.height_px,
    }))
}

/// A layout for people: "100 pieces on 12 A4 sheets (tray-1), two-sided-short-edge; 9 per sheet,
/// one per sheet would take 100".
fn describe_layout(layout: &podconnect_client::Layout) -> String {
    let sides = layout.sides.map_or("sides unknown", |s| s.name());
    let tray = if layout.tray.is_empty() { String::new() } else { format!(" ({})", layout.tray) };
    let sheet = if layout.sheet.display_name.is_empty() { &layout.sheet.keyword } else { &layout.sheet.display_name };
    if !layout.imposed {
        return format!(
            "{} copies on {} {sheet} sheets{tray}, {sides}, as the file is",
            layout.pieces, layout.sheet_count
        );
    }
    let mut text = format!(
        "{} pieces on {} {sheet} sheets{tray}, {sides}; {} per sheet",
        layout.pieces, layout.sheet_count, layout.pieces_per_sheet
    );
    if layout.backs_on_separate_sheets {
        text += "; the backs print on sheets of their own";
    }
    if layout.scale < 1.0 {
        text += &format!("; scaled to {:.0}%", layout.scale * 100.0);
    }
    if layout.sheets_one_per_sheet > layout.sheet_count {
        text += &format!("; one per sheet would take {}", layout.sheets_one_per_sheet);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_pages_up_to_the_jobs_printed_sides() {
        // 100 two-page cards on 12 two-sided sheets: 24 pages, not 200.
        let pb = podconnect_client::pb::Job {
            id: "j1".into(),
            state: podconnect_client::pb::JobState::Processing as i32,
            copies: 100,
            page_count: 2,
            pages_printed: Some(10),
            pages_total: 24,
            ..Default::default()
        };
        let line = progress(&Job::from(pb));
        assert!(line.starts_with("j1  processing") && line.contains("10/24 pages"), "{line}");
    }
}
