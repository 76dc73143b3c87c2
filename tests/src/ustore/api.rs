//! The HTTP side of the double: each request is counted, delayed and failed as the switches say,
//! then routed to its endpoint. Answers follow /work/notes/ustore-spec.md (the shared spec).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use super::controls::{
    self, FailMode, Inner, Job, MAX_ITEMS, MAX_PREVIEWS, MAX_USERS, OrderItem, Settings, Shared, User,
};
use super::fixtures::{self, Dial, Product, QUANTITY_KEY};
use super::render;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Returned by the service to make hyper drop the connection (h1) or reset the stream (h2)
/// without an answer: the "down" fail mode.
#[derive(Debug)]
pub(crate) struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the uStore double is down on purpose")
    }
}

impl std::error::Error for Down {}

/// Request bodies larger than this are refused (the real calls send a few KiB at most).
const MAX_REQUEST_BODY: usize = 1 << 20;
const API_PREFIX: &str = "/ustorerestapi/";
const UNSUB: &str = "v1/store/login/user/orders/unsubmitted/items";

/// What every request handler needs.
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) base_url: String,
    pub(crate) storefront_url: String,
    pub(crate) thumbnails: HashMap<&'static str, Bytes>,
}

/// One endpoint of the spec; `label()` is its counter name.
enum Route<'a> {
    Store,
    Currencies,
    LoginByUrl,
    Login,
    Renew,
    User,
    Categories,
    Products(&'a str),
    Search,
    Product(&'a str),
    Thumbnails(&'a str),
    Image(&'a str),
    Draft,
    Item(&'a str),
    PutItem(&'a str),
    DeleteItem(&'a str),
    Form(&'a str),
    State(&'a str),
    SaveForm(&'a str),
    PreviewCreate(&'a str),
    PreviewPoll(&'a str, &'a str),
    PreviewDownload(&'a str, &'a str),
    Proof(&'a str),
    ProofDownload(&'a str),
    Unknown,
}

impl Route<'_> {
    fn label(&self) -> &'static str {
        match self {
            Route::Store => "store",
            Route::Currencies => "currencies",
            Route::LoginByUrl => "loginByUrl",
            Route::Login => "login",
            Route::Renew => "renew",
            Route::User => "user",
            Route::Categories => "categories",
            Route::Products(_) => "products",
            Route::Search => "search",
            Route::Product(_) => "product",
            Route::Thumbnails(_) => "thumbnails",
            Route::Image(_) => "image",
            Route::Draft => "draft",
            Route::Item(_) => "item",
            Route::PutItem(_) => "put-item",
            Route::DeleteItem(_) => "delete-item",
            Route::Form(_) => "form",
            Route::State(_) => "state",
            Route::SaveForm(_) => "save-form",
            Route::PreviewCreate(_) => "preview-create",
            Route::PreviewPoll(..) => "preview-poll",
            Route::PreviewDownload(..) => "preview-download",
            Route::Proof(_) => "proof",
            Route::ProofDownload(_) => "proof-download",
            Route::Unknown => "unknown",
        }
    }

    fn is_catalog(&self) -> bool {
        matches!(
            self,
            Route::Categories | Route::Products(_) | Route::Search | Route::Product(_) | Route::Thumbnails(_)
        )
    }

    fn is_throttled(&self) -> bool {
        matches!(self, Route::PreviewCreate(_) | Route::PreviewPoll(..) | Route::Proof(_))
    }

    fn needs_token(&self) -> bool {
        !matches!(self, Route::LoginByUrl | Route::Login | Route::Image(_) | Route::Unknown)
    }
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if let Some(file) = path.strip_prefix("/uStore/Images/thumb-").and_then(|f| f.strip_suffix(".png")) {
        return if method == Method::GET { Route::Image(file) } else { Route::Unknown };
    }
    // IIS matches paths case-insensitively; the SSO call in XMPie's own client spells it uStoreRestApi.
    let Some(prefix) = path.get(..API_PREFIX.len()) else { return Route::Unknown };
    if !prefix.eq_ignore_ascii_case(API_PREFIX) {
        return Route::Unknown;
    }
    let rest = &path[API_PREFIX.len()..];
    if let Some(item) = rest.strip_prefix(UNSUB).and_then(|r| r.strip_prefix('/')) {
        let segments: Vec<&str> = item.split('/').collect();
        return match (method.clone(), segments.as_slice()) {
            (Method::GET, [oi]) => Route::Item(oi),
            (Method::PUT, [oi]) => Route::PutItem(oi),
            (Method::DELETE, [oi]) => Route::DeleteItem(oi),
            (Method::GET, [oi, "properties", "form"]) => Route::Form(oi),
            (Method::PUT, [oi, "properties", "form"]) => Route::SaveForm(oi),
            (Method::PUT, [oi, "properties", "form", "state"]) => Route::State(oi),
            (Method::POST, [oi, "preview"]) => Route::PreviewCreate(oi),
            (Method::GET, [oi, "preview", pid]) => Route::PreviewPoll(oi, pid),
            (Method::GET, [oi, "preview", pid, "download"]) => Route::PreviewDownload(oi, pid),
            (Method::POST, [oi, "proof"]) => Route::Proof(oi),
            (Method::GET, [oi, "proof", "download"]) => Route::ProofDownload(oi),
            _ => Route::Unknown,
        };
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["v1", "store"]) => Route::Store,
        (Method::GET, ["v1", "store", "currencies"]) => Route::Currencies,
        (Method::POST, ["v1", "store", "loginByUrl"]) => Route::LoginByUrl,
        (Method::POST, ["v1", "store", "login"]) => Route::Login,
        (Method::POST, ["v1", "store", "login", "renew"]) => Route::Renew,
        (Method::GET, ["v1", "store", "login", "user"]) => Route::User,
        (Method::GET, ["v1", "store", "categories", "tree"]) => Route::Categories,
        (Method::GET, ["v1", "store", "categories", id, "products"]) => Route::Products(id),
        (Method::GET, ["v1", "store", "products", "search"]) => Route::Search,
        (Method::GET, ["v1", "store", "products", id]) => Route::Product(id),
        (Method::GET, ["v1", "store", "products", id, "thumbnails"]) => Route::Thumbnails(id),
        (Method::POST, ["v1", "store", "login", "user", "orders", "draft", "items"]) => Route::Draft,
        _ => Route::Unknown,
    }
}

/// Serves one request: count, delay, fail mode, then the endpoint.
pub(crate) async fn handle(ctx: Arc<Ctx>, request: Request<Incoming>) -> Result<Response<Body>, Down> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let route = route(&parts.method, path);
    let settings = {
        let mut inner = ctx.shared.lock();
        *inner.counts.entry(route.label().to_string()).or_default() += 1;
        inner.settings.clone()
    };
    if !settings.latency.is_zero() {
        tokio::time::sleep(settings.latency).await;
    }
    match settings.fail {
        Some(FailMode::Down) => return Err(Down),
        Some(FailMode::Status(code)) if !matches!(route, Route::Image(_)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Ok(error(status, "OperationFailed", "The server is failing on purpose (test double)."));
        }
        _ => {}
    }
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, "OperationFailed", "The request body is too large.")),
    };
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("uStore"))
        .map(|(_, token)| token.trim().to_string());
    Ok(dispatch(&ctx, &route, &settings, token.as_deref(), &query, &body))
}

/// The signed-in user, when the route needs one.
struct Caller {
    user_id: String,
    token: String,
}

fn dispatch(
    ctx: &Ctx,
    route: &Route<'_>,
    settings: &Settings,
    token: Option<&str>,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response<Body> {
    let caller = if route.needs_token() {
        let user = token.and_then(|t| ctx.shared.lock().authenticate(t));
        match (user, token) {
            (Some(user_id), Some(token)) => Some(Caller { user_id, token: token.to_string() }),
            _ => return error(StatusCode::UNAUTHORIZED, "AccessDenied", "Access denied."),
        }
    } else {
        None
    };
    if route.is_throttled() {
        let mut inner = ctx.shared.lock();
        if inner.settings.throttle_next > 0 {
            inner.settings.throttle_next -= 1;
            return error(StatusCode::TOO_MANY_REQUESTS, "OperationFailed", "Too much requests.");
        }
    }
    let answer = match (route, caller) {
        (Route::LoginByUrl, _) => login_by_url(ctx, body),
        (Route::Login, _) => login(ctx, body),
        (Route::Image(id), _) => match ctx.thumbnails.get(id) {
            Some(png) => Ok(bytes_response("image/png", png.clone())),
            None => Err(not_found("ResourceNotAvailable.Image", "No such image.")),
        },
        (Route::Unknown, _) => Err(not_found("ResourceNotAvailable", "No such resource.")),
        (route, Some(caller)) => authenticated(ctx, route, settings, &caller, query, body),
        (_, None) => Err(refuse(StatusCode::UNAUTHORIZED, "AccessDenied", "Access denied.")),
    };
    let answer = answer.unwrap_or_else(|r| error(r.status, r.type_name, &r.message));
    if route.is_catalog() && answer.status() == StatusCode::OK {
        return shape_catalog(settings, answer);
    }
    answer
}

type Answer = Result<Response<Body>, Refusal>;

/// An error answer, kept small until it becomes a response.
pub(crate) struct Refusal {
    status: StatusCode,
    type_name: &'static str,
    message: String,
}

fn refuse(status: StatusCode, type_name: &'static str, message: &str) -> Refusal {
    Refusal { status, type_name, message: message.to_string() }
}

fn authenticated(
    ctx: &Ctx,
    route: &Route<'_>,
    settings: &Settings,
    caller: &Caller,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Answer {
    let user = &caller.user_id;
    match *route {
        Route::Store => Ok(json_response(json!({
            "ID": fixtures::STORE_ID,
            "FriendlyID": fixtures::STORE_FRIENDLY_ID,
            "Name": "Podconnect Print Shop",
            "Description": "The uStore test double's store.",
            "PrimaryCurrencyID": fixtures::CURRENCY_ID,
            "StoreType": 2,
        }))),
        Route::Currencies => Ok(json_response(json!([
            {"ID": fixtures::CURRENCY_ID, "Code": "USD", "Symbol": "$", "Name": "US Dollar"}
        ]))),
        Route::Renew => {
            let mut inner = ctx.shared.lock();
            inner.tokens.remove(&caller.token);
            let token = inner.issue_token(user);
            Ok(json_response(json!({"Token": token})))
        }
        Route::User => {
            let inner = ctx.shared.lock();
            let u = inner.users.get(user).ok_or_else(access_denied)?;
            Ok(json_response(json!({
                "ID": u.id,
                "FirstName": u.first_name,
                "LastName": u.last_name,
                "Email": u.email.unwrap_or(""),
                "IsAnonymous": u.email.is_none(),
            })))
        }
        Route::Categories => {
            let depth = match query.get("depth") {
                Some(d) => d.parse::<u32>().map_err(|_| bad_request("depth must be a number"))?,
                None => 1,
            };
            let trade = is_trade(ctx, user);
            Ok(json_response(json!({"Categories": category_nodes(None, depth, trade)})))
        }
        Route::Products(category) => {
            let trade = is_trade(ctx, user);
            let visible = fixtures::category(category).filter(|c| trade || !c.trade_only);
            if visible.is_none() {
                return Err(not_found("ResourceNotAvailable.Category", "The category is not available."));
            }
            let page = paging(query)?;
            let products: Vec<&Product> =
                fixtures::PRODUCTS.iter().filter(|p| p.categories.contains(&category)).collect();
            Ok(json_response(page_of(&products, page)))
        }
        Route::Search => {
            let trade = is_trade(ctx, user);
            let page = paging(query)?;
            let words: Vec<String> = query
                .get("search")
                .map(|s| s.to_lowercase())
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let products: Vec<&Product> = fixtures::PRODUCTS
                .iter()
                .filter(|p| trade || !p.trade_only())
                .filter(|p| {
                    let text = format!("{} {} {}", p.name, p.short, p.description).to_lowercase();
                    words.iter().all(|w| text.contains(w.as_str()))
                })
                .collect();
            Ok(json_response(page_of(&products, page)))
        }
        Route::Product(id) => Ok(json_response(visible_product(ctx, user, id)?.model())),
        Route::Thumbnails(id) => {
            let product = visible_product(ctx, user, id)?;
            Ok(json_response(json!({"Thumbnails": [{"Url": product.thumbnail_path(), "DisplayName": product.name}]})))
        }
        Route::Draft => {
            let id = query.get("productID").ok_or_else(|| bad_request("productID is required"))?;
            let product = visible_product(ctx, user, id)?;
            let mut inner = ctx.shared.lock();
            if inner.items.len() >= MAX_ITEMS {
                return Err(bad_request("The double holds too many order items."));
            }
            let friendly_id = inner.next_friendly;
            inner.next_friendly += 1;
            let item = OrderItem {
                id: controls::new_guid(),
                friendly_id,
                product,
                owner: user.clone(),
                quantity: product.default_quantity(),
                values: product.dials.iter().map(|d| (d.id, d.default.to_string())).collect(),
                previews: Default::default(),
                proof: None,
            };
            let model = item_model(&item);
            inner.items.insert(item.id.clone(), item);
            Ok(json_response(model))
        }
        Route::Item(oi) => {
            let mut inner = ctx.shared.lock();
            Ok(json_response(item_model(owned(&mut inner, oi, user)?)))
        }
        Route::PutItem(oi) => {
            let body: Value = parse_json(body)?;
            let mut inner = ctx.shared.lock();
            let item = owned(&mut inner, oi, user)?;
            let quantity = match body.get("Quantity") {
                None | Some(Value::Null) => None,
                Some(q) => Some(parse_quantity(item.product, q)?),
            };
            let properties = match body.get("Properties") {
                None | Some(Value::Null) => Vec::new(),
                Some(list) => id_values(item.product, list)?,
            };
            if let Some(q) = quantity {
                item.quantity = q;
            }
            for (id, value) in properties {
                item.values.insert(id, value);
            }
            Ok(json_response(item_model(item)))
        }
        Route::DeleteItem(oi) => {
            let mut inner = ctx.shared.lock();
            owned(&mut inner, oi, user)?;
            inner.items.remove(oi);
            Ok(empty_response())
        }
        Route::Form(oi) => {
            let mut inner = ctx.shared.lock();
            let item = owned(&mut inner, oi, user)?;
            Ok(json_response(form(item.product, &item.values, None)))
        }
        Route::State(oi) => {
            let list: Value = parse_json(body)?;
            let mut inner = ctx.shared.lock();
            let item = owned(&mut inner, oi, user)?;
            let (quantity, values) = split_quantity(&list)?;
            let mut merged = item.values.clone();
            merged.extend(id_values(item.product, &values)?);
            let mut errors = validate(item.product, &merged);
            if let Some(q) = quantity {
                let ok = value_text(&q).trim().parse::<u32>().is_ok_and(|q| item.product.quantity_ok(q));
                if !ok {
                    errors.insert(QUANTITY_KEY.to_string(), vec![quantity_message(item.product)]);
                }
            }
            Ok(json_response(form(item.product, &merged, Some(errors))))
        }
        Route::SaveForm(oi) => {
            let list: Value = parse_json(body)?;
            let mut inner = ctx.shared.lock();
            let item = owned(&mut inner, oi, user)?;
            let (quantity, values) = split_quantity(&list)?;
            let quantity = quantity.map(|q| parse_quantity(item.product, &q)).transpose()?;
            let values = id_values(item.product, &values)?;
            if let Some(q) = quantity {
                item.quantity = q;
            }
            item.values.extend(values);
            Ok(empty_response())
        }
        Route::PreviewCreate(oi) => {
            let body: Value = if body.is_empty() { json!({}) } else { parse_json(body)? };
            let mut inner = ctx.shared.lock();
            let item = owned(&mut inner, oi, user)?;
            let list = body.get("Properties").or_else(|| body.get("properties")).cloned().unwrap_or(json!([]));
            let mut merged = item.values.clone();
            merged.extend(id_values(item.product, &list)?);
            let job = Job {
                id: controls::new_guid(),
                started: Instant::now(),
                values: ordered(item.product, &merged),
                fail: false,
                reported: false,
            };
            let answer = preview_model(ctx, item, &job, settings.preview_delay);
            item.previews.push_back(job);
            if item.previews.len() > MAX_PREVIEWS {
                item.previews.pop_front();
            }
            Ok(json_response(answer))
        }
        Route::PreviewPoll(oi, pid) => {
            let mut inner = ctx.shared.lock();
            let item = owned(&mut inner, oi, user)?;
            let job = item.previews.iter().find(|j| j.id == pid).ok_or_else(no_preview)?;
            Ok(json_response(preview_model(ctx, item, job, settings.preview_delay)))
        }
        Route::PreviewDownload(oi, pid) => {
            let (product, values, page) = {
                let mut inner = ctx.shared.lock();
                let item = owned(&mut inner, oi, user)?;
                let job = item.previews.iter().find(|j| j.id == pid).ok_or_else(no_preview)?;
                if status(job, settings.preview_delay) != 2 {
                    return Err(not_found("ResourceNotAvailable.Preview", "The preview is not ready."));
                }
                let page = query
                    .get("fileName")
                    .and_then(|f| f.strip_prefix("page"))
                    .and_then(|f| f.strip_suffix(".png"))
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| (1..=item.product.pages).contains(n))
                    .ok_or_else(|| not_found("ResourceNotAvailable.File", "No such file."))?;
                (item.product, job.values.clone(), page)
            };
            let png = render::preview_page(product, &with_dials(product, &values), page);
            Ok(bytes_response("image/png", png.into()))
        }
        Route::Proof(oi) => {
            let mut inner = ctx.shared.lock();
            let fail_next = inner.settings.fail_next_proofs > 0;
            let item = owned(&mut inner, oi, user)?;
            let values = ordered(item.product, &item.values);
            let restart = match &item.proof {
                None => true,
                Some(job) => job.values != values || (job.fail && job.reported),
            };
            let mut took_failure = false;
            if restart {
                let invalid = !validate(item.product, &item.values).is_empty();
                took_failure = fail_next;
                item.proof = Some(Job {
                    id: controls::new_guid(),
                    started: Instant::now(),
                    values,
                    fail: fail_next || invalid,
                    reported: false,
                });
            }
            let Some(job) = item.proof.as_mut() else { return Err(no_preview()) };
            let status = status(job, settings.proof_delay);
            if status == 3 {
                job.reported = true;
            }
            let items = if status == 2 {
                json!([{"Url": format!("{}{UNSUB}/{}/proof/download?fileName=proof.pdf", ctx.base_url, item.id), "Title": "Proof"}])
            } else {
                json!([])
            };
            let answer = json!({"ProofID": job.id, "Status": status, "Format": 1, "Items": items});
            if took_failure {
                inner.settings.fail_next_proofs -= 1;
            }
            Ok(json_response(answer))
        }
        Route::ProofDownload(oi) => {
            let (product, values) = {
                let mut inner = ctx.shared.lock();
                let item = owned(&mut inner, oi, user)?;
                let ready = item.proof.as_ref().filter(|job| status(job, settings.proof_delay) == 2);
                let named = query.get("fileName").is_some_and(|f| f == "proof.pdf");
                match ready {
                    Some(job) if named => (item.product, job.values.clone()),
                    _ => return Err(not_found("ResourceNotAvailable.File", "The proof is not ready.")),
                }
            };
            let pdf = render::proof_pdf(product, &with_dials(product, &values));
            Ok(bytes_response("application/pdf", pdf.into()))
        }
        Route::LoginByUrl | Route::Login | Route::Image(_) | Route::Unknown => {
            Err(not_found("ResourceNotAvailable", "No such resource."))
        }
    }
}

fn login_by_url(ctx: &Ctx, body: &[u8]) -> Answer {
    let body: Value = parse_json(body)?;
    let url = body.get("FullURL").and_then(Value::as_str).ok_or_else(|| bad_request("FullURL is required"))?;
    let ours = [ctx.storefront_url.clone(), ctx.storefront_url.replace("127.0.0.1", "localhost")];
    let matches = ours
        .iter()
        .any(|s| url.strip_prefix(s.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#'])));
    if !matches {
        return Err(refuse(StatusCode::BAD_REQUEST, "ResourceNotAvailable.Store", "The store is not available."));
    }
    let wanted = body.get("UserID").and_then(Value::as_str);
    let mut inner = ctx.shared.lock();
    let existing = wanted.filter(|id| inner.users.get(*id).is_some_and(|u| u.email.is_none()));
    let user_id = match existing {
        Some(id) => id.to_string(),
        None => {
            if controls::user_count(&inner) >= MAX_USERS {
                return Err(bad_request("The double holds too many users."));
            }
            let id = controls::new_guid();
            let user = User { id: id.clone(), email: None, first_name: "", last_name: "", trade: false };
            inner.users.insert(id.clone(), user);
            id
        }
    };
    inner.sweep_tokens();
    let token = inner.issue_token(&user_id);
    Ok(json_response(json!({
        "Token": {"Token": token},
        "StoreID": fixtures::STORE_ID,
        "UserID": user_id,
        "URL": null,
    })))
}

fn login(ctx: &Ctx, body: &[u8]) -> Answer {
    let body: Value = parse_json(body)?;
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let store = field("StoreID").ok_or_else(|| bad_request("StoreID is required"))?;
    if !store.eq_ignore_ascii_case(fixtures::STORE_ID) {
        return Err(refuse(StatusCode::BAD_REQUEST, "ResourceNotAvailable.Store", "The store is not available."));
    }
    let account = match (field("Email"), field("Password")) {
        (Some(email), Some(password)) => fixtures::account_by_email(email).filter(|a| a.password == password),
        _ => None,
    };
    let Some(account) = account else {
        return Err(refuse(StatusCode::UNAUTHORIZED, "AuthenticationFailed", "The email or password is incorrect."));
    };
    let mut inner = ctx.shared.lock();
    inner.sweep_tokens();
    Ok(json_response(json!({"Token": inner.issue_token(account.id)})))
}

fn is_trade(ctx: &Ctx, user: &str) -> bool {
    ctx.shared.lock().users.get(user).is_some_and(|u| u.trade)
}

fn visible_product(ctx: &Ctx, user: &str, id: &str) -> Result<&'static Product, Refusal> {
    let trade = is_trade(ctx, user);
    fixtures::product(id)
        .filter(|p| trade || !p.trade_only())
        .ok_or_else(|| not_found("ResourceNotAvailable.Product", "The product is not available."))
}

fn category_nodes(parent: Option<&str>, depth: u32, trade: bool) -> Vec<Value> {
    fixtures::CATEGORIES
        .iter()
        .filter(|c| c.parent == parent && (trade || !c.trade_only))
        .map(|c| {
            let children = fixtures::CATEGORIES.iter().any(|s| s.parent == Some(c.id) && (trade || !s.trade_only));
            let subs = if depth > 1 { category_nodes(Some(c.id), depth - 1, trade) } else { Vec::new() };
            json!({
                "Category": {
                    "ID": c.id,
                    "FriendlyID": c.friendly_id,
                    "Name": c.name,
                    "Description": c.description,
                    "HasProducts": fixtures::PRODUCTS.iter().any(|p| p.categories.contains(&c.id)),
                    "HasSubCategories": children,
                    "ImageUrl": "",
                },
                "SubCategories": subs,
            })
        })
        .collect()
}

/// `(page number, page size)`, both checked.
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), Refusal> {
    let number = |name: &str, default: usize| match query.get(name) {
        Some(v) => v.parse::<usize>().map_err(|_| bad_request(&format!("{name} must be a number"))),
        None => Ok(default),
    };
    let (page, size) = (number("pageNumber", 1)?, number("pageSize", 50)?);
    if !(1..=200).contains(&size) {
        return Err(bad_request("pageSize must be between 1 and 200"));
    }
    if page < 1 {
        return Err(bad_request("pageNumber must be 1 or more"));
    }
    Ok((page, size))
}

fn page_of(products: &[&Product], (page, size): (usize, usize)) -> Value {
    let start = (page - 1).saturating_mul(size);
    let models: Vec<Value> = products.iter().skip(start).take(size).map(|p| p.model()).collect();
    json!({"Products": models, "Count": products.len()})
}

fn owned<'a>(inner: &'a mut Inner, oi: &str, user: &str) -> Result<&'a mut OrderItem, Refusal> {
    inner
        .items
        .get_mut(oi)
        .filter(|item| item.owner == user)
        .ok_or_else(|| not_found("ResourceNotAvailable.OrderItem", "The order item is not available."))
}

fn item_model(item: &OrderItem) -> Value {
    let properties: Vec<Value> = item
        .product
        .dials
        .iter()
        .map(|d| json!({"ID": d.id, "Value": item.values.get(d.id).cloned().unwrap_or_default()}))
        .collect();
    json!({
        "ID": item.id,
        "FriendlyID": item.friendly_id,
        "ProductID": item.product.id,
        "Quantity": item.quantity,
        "Properties": properties,
    })
}

/// A JSON value as a dial value: strings as they are, numbers and booleans printed, null empty.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `[{"id"|"ID", "value"|"Value"}]` → `(dial id, value)`; an id the product lacks is refused.
fn id_values(product: &Product, list: &Value) -> Result<Vec<(&'static str, String)>, Refusal> {
    let list = list.as_array().ok_or_else(|| bad_request("Properties must be a list"))?;
    list.iter()
        .map(|entry| {
            let id = entry.get("id").or_else(|| entry.get("ID")).and_then(Value::as_str);
            let id = id.ok_or_else(|| bad_request("Each property needs an id"))?;
            let dial = product
                .dials
                .iter()
                .find(|d| d.id.eq_ignore_ascii_case(id))
                .ok_or_else(|| bad_request(&format!("Unknown property {id}")))?;
            let value = entry.get("value").or_else(|| entry.get("Value")).unwrap_or(&Value::Null);
            Ok((dial.id, value_text(value)))
        })
        .collect()
}

/// Takes the quantity entry out of a state or save body.
fn split_quantity(list: &Value) -> Result<(Option<Value>, Value), Refusal> {
    let list = list.as_array().ok_or_else(|| bad_request("The body must be a list of {id, value}"))?;
    let mut quantity = None;
    let mut rest = Vec::new();
    for entry in list {
        let id = entry.get("id").or_else(|| entry.get("ID")).and_then(Value::as_str);
        if id == Some(QUANTITY_KEY) {
            quantity = Some(entry.get("value").or_else(|| entry.get("Value")).cloned().unwrap_or(Value::Null));
        } else {
            rest.push(entry.clone());
        }
    }
    Ok((quantity, Value::Array(rest)))
}

fn parse_quantity(product: &Product, value: &Value) -> Result<u32, Refusal> {
    value_text(value)
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|q| product.quantity_ok(*q))
        .ok_or_else(|| bad_request(&quantity_message(product)))
}

fn quantity_message(product: &Product) -> String {
    match product.options {
        Some(options) => {
            let list: Vec<String> = options.iter().map(u32::to_string).collect();
            format!("Quantity must be one of {}.", list.join(", "))
        }
        None => format!("Quantity must be between {} and {}.", product.quantity.0, product.quantity.1),
    }
}

fn value_of<'a>(product: &Product, values: &'a HashMap<&'static str, String>, key: &str) -> &'a str {
    product.dials.iter().find(|d| d.key == key).and_then(|d| values.get(d.id)).map_or("", String::as_str)
}

/// The server-side rules: the schema's own (required, maxLength, pattern, enum) and one it does
/// not express (a reserved Name).
fn validate(product: &Product, values: &HashMap<&'static str, String>) -> BTreeMap<String, Vec<String>> {
    let mut errors = BTreeMap::new();
    for dial in product.dials {
        if let Some((parent, shown)) = dial.shown_when
            && value_of(product, values, parent) != shown
        {
            continue;
        }
        let value = values.get(dial.id).map_or("", String::as_str);
        let mut messages = Vec::new();
        if value.trim().is_empty() {
            if dial.required || dial.shown_when.is_some() {
                messages.push("This field is required.".to_string());
            }
        } else {
            if let Some(max) = dial.max_length
                && value.chars().count() > max
            {
                messages.push(format!("Must be at most {max} characters."));
            }
            if let Some(pattern) = dial.pattern
                && !regex::Regex::new(pattern).is_ok_and(|re| re.is_match(value))
            {
                messages.push("The value is not in the expected format.".to_string());
            }
            if let Some((choices, _)) = dial.choices
                && !choices.contains(&value)
            {
                messages.push("Choose one of the listed values.".to_string());
            }
            if dial.key == "Name" && value.to_lowercase().contains("forbidden") {
                messages.push("This name is reserved; choose another.".to_string());
            }
        }
        if !messages.is_empty() {
            errors.insert(dial.key.to_string(), messages);
        }
    }
    errors
}

/// The PropertiesForm of the product with `values`; `errors` only on state answers.
fn form(
    product: &Product,
    values: &HashMap<&'static str, String>,
    errors: Option<BTreeMap<String, Vec<String>>>,
) -> Value {
    let mut definitions = serde_json::Map::new();
    let mut properties = serde_json::Map::new();
    let mut ui = serde_json::Map::new();
    let mut form_data = serde_json::Map::new();
    let mut required = Vec::new();
    for (order, dial) in product.dials.iter().enumerate() {
        let mut def = json!({
            "type": "string",
            "title": dial.title,
            "description": "",
            "default": dial.default,
            "custom": {
                "id": dial.id,
                "code": dial.key,
                "displayOrder": order + 1,
                "affectPrice": false,
                "affectProof": true,
                "info": "",
            },
        });
        if let Some(max) = dial.max_length {
            def["maxLength"] = json!(max);
        }
        if dial.required {
            def["minLength"] = json!(1);
        }
        if let Some(pattern) = dial.pattern {
            def["pattern"] = json!(pattern);
        }
        if let Some((choices, names)) = dial.choices {
            def["enum"] = json!(choices);
            def["enumNames"] = json!(names);
        }
        definitions.insert(dial.key.to_string(), def);
        if dial.shown_when.is_none() {
            properties.insert(dial.key.to_string(), json!({"$ref": format!("#/definitions/{}", dial.key)}));
            if dial.required {
                required.push(dial.key);
            }
        }
        ui.insert(
            dial.key.to_string(),
            json!({
                "ui:widget": dial.widget,
                "ui:readonly": false,
                "ui:options": {"visible": true, "section": dial.section.0, "sectionId": dial.section.1},
            }),
        );
        form_data.insert(dial.key.to_string(), json!(values.get(dial.id).cloned().unwrap_or_default()));
    }
    let mut dependencies = serde_json::Map::new();
    for parent in
        product.dials.iter().filter(|d| product.dials.iter().any(|c| c.shown_when.is_some_and(|(p, _)| p == d.key)))
    {
        let choices = parent.choices.map_or(&[][..], |(c, _)| c);
        let branches: Vec<Value> = choices
            .iter()
            .map(|choice| {
                let children: Vec<&Dial> =
                    product.dials.iter().filter(|c| c.shown_when == Some((parent.key, *choice))).collect();
                let mut props = serde_json::Map::new();
                props.insert(parent.key.to_string(), json!({"enum": [choice]}));
                for child in &children {
                    props.insert(child.key.to_string(), json!({"$ref": format!("#/definitions/{}", child.key)}));
                }
                if children.is_empty() {
                    json!({"properties": props})
                } else {
                    json!({"properties": props, "required": children.iter().map(|c| c.key).collect::<Vec<_>>()})
                }
            })
            .collect();
        dependencies.insert(parent.key.to_string(), json!({"oneOf": branches}));
    }
    let mut answer = json!({
        "JSONSchema": {
            "type": "object",
            "definitions": definitions,
            "properties": properties,
            "required": required,
            "dependencies": dependencies,
        },
        "UISchema": ui,
        "formData": form_data,
    });
    if let Some(errors) = errors {
        answer["errors"] = json!(errors);
    }
    answer
}

fn ordered(product: &Product, values: &HashMap<&'static str, String>) -> Vec<(&'static str, String)> {
    product.dials.iter().map(|d| (d.id, values.get(d.id).cloned().unwrap_or_default())).collect()
}

/// The values a render shows: hidden children left out.
fn with_dials(product: &'static Product, values: &[(&'static str, String)]) -> Vec<(&'static Dial, String)> {
    let map: HashMap<&'static str, String> = values.iter().cloned().collect();
    values
        .iter()
        .filter_map(|(id, v)| product.dial_by_id(id).map(|d| (d, v.clone())))
        .filter(|(d, _)| d.shown_when.is_none_or(|(parent, shown)| value_of(product, &map, parent) == shown))
        .collect()
}

/// 1 in progress, 2 done, 3 failed.
fn status(job: &Job, delay: Duration) -> u8 {
    match (job.started.elapsed() >= delay, job.fail) {
        (false, _) => 1,
        (true, false) => 2,
        (true, true) => 3,
    }
}

fn preview_model(ctx: &Ctx, item: &OrderItem, job: &Job, delay: Duration) -> Value {
    let status = status(job, delay);
    let items: Vec<Value> = if status == 2 {
        (1..=item.product.pages)
            .map(|n| {
                json!({
                    "Url": format!("{}{UNSUB}/{}/preview/{}/download?fileName=page{n}.png", ctx.base_url, item.id, job.id),
                    "Title": format!("Page {n}"),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    json!({"PreviewID": job.id, "Status": status, "Format": 2, "Items": items})
}

/// Applies the catalog fault switches to a good catalog answer.
fn shape_catalog(settings: &Settings, answer: Response<Body>) -> Response<Body> {
    if let Some(size) = settings.oversized_catalog {
        return oversized(size);
    }
    if !settings.malformed_catalog && settings.slow_catalog.is_none() {
        return answer;
    }
    // Catalog answers are whole in memory (`Full`), so collecting them is ready at once.
    let body = match futures::FutureExt::now_or_never(answer.into_body().collect()) {
        Some(Ok(collected)) => collected.to_bytes(),
        Some(Err(never)) => match never {},
        None => return error(StatusCode::INTERNAL_SERVER_ERROR, "OperationFailed", "The double's body was not ready."),
    };
    let mut bytes = body.to_vec();
    if settings.malformed_catalog {
        bytes.truncate(bytes.len() / 2);
        bytes.extend_from_slice(b"\",,}");
    }
    match settings.slow_catalog {
        Some(rate) => slow(Bytes::from(bytes), rate),
        None => bytes_response("application/json; charset=utf-8", bytes.into()),
    }
}

/// A JSON document of about `size` bytes, streamed in 64 KiB chunks with no length given.
fn oversized(size: usize) -> Response<Body> {
    const CHUNK: usize = 64 * 1024;
    let head = Bytes::from_static(b"{\"Products\":[],\"Count\":0,\"Padding\":\"");
    let tail = Bytes::from_static(b"\"}");
    let pad = Bytes::from(vec![b'x'; CHUNK]);
    let chunks = std::iter::once(head).chain(std::iter::repeat_n(pad, size / CHUNK)).chain(std::iter::once(tail));
    let stream = futures::stream::iter(chunks.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    streamed("application/json; charset=utf-8", StreamBody::new(stream).boxed_unsync())
}

/// The body `bytes_per_second` at a time, one chunk a second, after headers sent at once.
fn slow(body: Bytes, bytes_per_second: usize) -> Response<Body> {
    let stream = futures::stream::unfold((body, true), move |(mut rest, first)| async move {
        if rest.is_empty() {
            return None;
        }
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let chunk = rest.split_to(bytes_per_second.min(rest.len()));
        Some((Ok::<_, Infallible>(Frame::data(chunk)), (rest, false)))
    });
    streamed("application/json; charset=utf-8", StreamBody::new(stream).boxed_unsync())
}

fn streamed(content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn parse_json(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| bad_request(&format!("The request body is not valid JSON: {e}")))
}

/// `a=b&c=d`, percent- and plus-decoded; the first of repeated names wins.
fn parse_query(query: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        map.entry(decode(name)).or_insert_with(|| decode(value));
    }
    map
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(value: Value) -> Response<Body> {
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    bytes_response("application/json; charset=utf-8", bytes.into())
}

fn bytes_response(content_type: &str, bytes: Bytes) -> Response<Body> {
    streamed(content_type, Full::new(bytes).boxed_unsync())
}

fn empty_response() -> Response<Body> {
    Response::new(Empty::new().boxed_unsync())
}

pub(crate) fn error(status: StatusCode, type_name: &str, message: &str) -> Response<Body> {
    let mut response = json_response(json!({"TypeName": type_name, "Message": message}));
    *response.status_mut() = status;
    response
}

fn bad_request(message: &str) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, "OperationFailed", message)
}

fn not_found(type_name: &'static str, message: &str) -> Refusal {
    refuse(StatusCode::NOT_FOUND, type_name, message)
}

fn access_denied() -> Refusal {
    refuse(StatusCode::UNAUTHORIZED, "AccessDenied", "Access denied.")
}

fn no_preview() -> Refusal {
    not_found("ResourceNotAvailable.Preview", "The preview is not available.")
}
