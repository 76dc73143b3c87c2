//! The composition root: builds every service from the configuration, wires the dependencies
//! once, and serves gRPC on a listener until shutdown. `main` and the integration tests both
//! start the core through `run`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::body::Incoming;
use proto::v1::catalog_service_server::CatalogServiceServer;
use proto::v1::customization_service_server::CustomizationServiceServer;
use proto::v1::device_service_server::DeviceServiceServer;
use proto::v1::print_service_server::PrintServiceServer;
use proto::v1::session_service_server::SessionServiceServer;
use proto::v1::sso_service_server::SsoServiceServer;
use proto::v1::usage_service_server::UsageServiceServer;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tower::{Layer as _, ServiceExt as _};

use crate::config::{ClientAuth, Config, EphemeralBackend, SsoSettings, TlsSettings, Transport, VaultBackend};
use crate::domain::catalog::{Catalog, Storefront};
use crate::domain::clock::Clock;
use crate::domain::crypto::Key256;
use crate::domain::customization::{Customization, Customizer};
use crate::domain::devices::{DeliveryMode, Device, DeviceStore, Devices};
use crate::domain::ephemeral::EphemeralStore;
use crate::domain::events::EventBus;
use crate::domain::ids::DeviceId;
use crate::domain::jobs::{JobPolicy, Jobs, JobsDeps, Printers, PullLinks, RunningJobs, UnregisteredDevices};
use crate::domain::session::SessionManager;
use crate::domain::signin::{SignIn, SignInDeps};
use crate::domain::usage::{UsageRecorder, UsageStore};
use crate::grpc::catalog::CatalogAdapter;
use crate::grpc::customization::CustomizationAdapter;
use crate::grpc::gate::{CallLimits, GateLayer, GateState};
use crate::grpc::print::{DeviceAdapter, PrintAdapter};
use crate::grpc::session::SessionAdapter;
use crate::grpc::sso::SsoAdapter;
use crate::grpc::usage::UsageAdapter;
use crate::printing::imposition::SheetImposer;
use crate::printing::ipp::IppPrinter;
use crate::printing::spool::SpoolPrinter;
use crate::serve::Protocol;
use crate::store::memory::{LocalBus, MemoryStore};
use crate::store::postgres::PostgresStore;
use crate::store::redis::RedisStore;
use crate::store::sqlite::SqliteStore;
use crate::storefront::customizer::{EmbeddedCustomizer, RenderPool};
use crate::storefront::embedded::EmbeddedStorefront;
use crate::storefront::ustore::UstoreStorefront;
use crate::tls;

/// What `run` reports once the core answers health checks with SERVING.
#[derive(Debug, Clone)]
pub struct Ready {
    pub addr: SocketAddr,
    pub tls: bool,
    /// The development CA certificate, when the core made its own.
    pub dev_ca: Option<PathBuf>,
    pub storefront: String,
    pub products: usize,
    /// Where printers download pulled documents.
    pub pull_addr: SocketAddr,
    /// Whether the pull-link listener speaks TLS.
    pub pull_tls: bool,
    /// From the call of `run` to SERVING.
    pub startup: std::time::Duration,
    /// The running services, for in-process tests that must look behind the wire.
    pub services: Services,
}

/// The domain services `run` wired.
#[derive(Clone)]
pub struct Services {
    pub sessions: Arc<SessionManager>,
    pub customization: Arc<Customization>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Services")
    }
}

/// The ephemeral store the core runs on, its event bus, and the key that seals session records.
pub struct Ephemeral {
    pub store: Arc<dyn EphemeralStore>,
    pub bus: Arc<dyn EventBus>,
    pub record_key: Key256,
}

impl Ephemeral {
    /// One instance in memory: nothing outlives the process, so a per-process key is enough.
    pub fn memory(store: Arc<MemoryStore>) -> Self {
        Ephemeral { store, bus: LocalBus::new(), record_key: Key256::generate() }
    }

    /// The store the configuration names: memory (swept every 30 s), or Redis with the session
    /// record key every instance reads from the same file.
    pub async fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.ephemeral {
            EphemeralBackend::Memory => {
                let store = MemoryStore::new();
                store.spawn_sweeper(Duration::from_secs(30));
                Ok(Ephemeral::memory(store))
            }
            EphemeralBackend::Redis { settings, key_file } => {
                let key_file = key_file.clone();
                let record_key =
                    tokio::task::spawn_blocking(move || crate::store::load_or_create_key(&key_file)).await??;
                let redis = RedisStore::connect(settings.clone()).await?;
                tracing::info!(cluster = redis.is_cluster(), "the ephemeral store is Redis");
                Ok(Ephemeral { bus: redis.bus(), store: redis, record_key })
            }
        }
    }
}

/// Serves the core on `listener` until `shutdown` completes, then drains calls in flight for at
/// most the shutdown grace period, closes what is left, and writes out pending usage events.
/// Session limits are measured by `clock`, which must be the one the ephemeral store expires
/// entries by. `on_ready` runs once the core is SERVING.
pub async fn run(
    config: Config,
    listener: TcpListener,
    ephemeral: Ephemeral,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&Ready),
) -> anyhow::Result<()> {
    let started = Instant::now();
    let addr = listener.local_addr()?;
    let Ephemeral { store: ephemeral, bus, record_key } = ephemeral;
    crate::store::private_dir(&config.data_dir)
        .with_context(|| format!("cannot create the data folder {}", config.data_dir.display()))?;

    let backend = load_storefront(&config).await?;
    let (storefront_name, products) = (backend.name.clone(), backend.products);
    let persistent = Persistent::open(&config.database_url).await?;
    let (usage, usage_writer) = UsageRecorder::spawn(persistent.usage());
    let usage = usage.in_region(config.region.clone());
    let devices: Arc<dyn DeviceStore> = persistent.devices();
    let running = persistent.running();
    // With a shared store, jobs outlive any one instance: another (or this one, restarted)
    // takes them over through their leases, so only a store that died with the process leaves
    // jobs that can only be reported aborted.
    if matches!(config.ephemeral, EphemeralBackend::Memory) {
        crate::domain::jobs::recover_interrupted(running.as_ref(), &usage)
            .await
            .context("cannot recover jobs interrupted by the last stop")?;
    }
    if let Some(file) = &config.printing.devices_file {
        for device in crate::printing::devices_file::load(file)? {
            devices.upsert(&device).await.with_context(|| format!("cannot register device {}", device.id.as_str()))?;
        }
    }

    let sessions = Arc::new(
        SessionManager::new(ephemeral.clone(), record_key, config.sessions, Arc::new(usage.clone()))
            .with_clock(clock.clone()),
    );
    let sweeper = tokio::spawn(sweep_sessions(sessions.clone(), config.session_sweep));
    let storefront = backend.storefront;
    let sign_in = Arc::new(SignIn::new(SignInDeps {
        sessions: sessions.clone(),
        storefront: storefront.clone(),
        verifier: crate::identity::verifier_with_clock(&config.assertions, &config.data_dir, clock.clone()).await?,
        sso: Arc::new(sso_manager(&config.sso, &persistent).await?),
        store: ephemeral.clone(),
        usage: Arc::new(usage.clone()),
        clock,
        limits: config.login,
    }));
    let catalog_storefront = storefront.clone();
    let catalog = Arc::new(Catalog::new(storefront.clone(), Arc::new(usage.clone())));
    let customization =
        Arc::new(Customization::new(storefront.clone(), backend.customizer, sessions.clone(), Arc::new(usage.clone())));
    let printing = &config.printing;
    let unregistered = if printing.require_registered_devices {
        UnregisteredDevices::Refuse
    } else {
        UnregisteredDevices::Use(Box::new(Device {
            id: DeviceId::parse("unregistered").expect("a valid id"),
            display_name: "Spool folder".into(),
            model: String::new(),
            delivery: DeliveryMode::SpoolFolder,
            printer_uri: None,
            pinned_certificate_sha256: None,
            location: String::new(),
            capabilities: None,
            registered_at: None,
            updated_at: None,
        }))
    };
    let pull_listener = TcpListener::bind(printing.pull_listen)
        .await
        .with_context(|| format!("cannot listen for pull links on {}", printing.pull_listen))?;
    let pull_addr = pull_listener.local_addr()?;
    let pull_base_url = printing.pull_base_url.clone().unwrap_or_else(|| {
        let scheme = if printing.pull_plaintext { "http" } else { "https" };
        format!("{scheme}://{pull_addr}{}", crate::pull::PATH_PREFIX.trim_end_matches('/'))
    });
    let jobs = Arc::new(Jobs::new(JobsDeps {
        sessions: sessions.clone(),
        customization: customization.clone(),
        devices: devices.clone(),
        unregistered,
        printers: Printers {
            ipp: Arc::new(IppPrinter::new(printing.printer_timeout)),
            spool: Arc::new(SpoolPrinter::new(printing.spool_dir.clone(), printing.spool_print_time)),
        },
        store: ephemeral.clone(),
        bus,
        instance: config.instance_id.clone(),
        running: running.clone(),
        usage: Arc::new(usage.clone()),
        policy: JobPolicy {
            poll_every: printing.job_poll,
            deadline: printing.job_deadline,
            pull_link_ttl: printing.pull_link_ttl,
            lease: printing.job_lease,
        },
        imposer: Arc::new(SheetImposer::new(RenderPool::new(config.render))),
        sheets: printing.sheets.clone(),
        pull_base_url,
    }));

    let takeover = jobs.spawn_takeover();
    let abandoned = match config.ephemeral {
        EphemeralBackend::Memory => None,
        EphemeralBackend::Redis { .. } => {
            let forgotten_after = printing.job_deadline + printing.job_lease * 4 + Duration::from_secs(120);
            Some(tokio::spawn(report_abandoned_jobs(running.clone(), usage.clone(), forgotten_after)))
        }
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let gate = GateLayer::new(GateState::new(
        sessions.clone(),
        config.operators.clone(),
        CallLimits {
            max_in_flight: config.max_concurrent_calls,
            max_per_peer: config.connections.max_calls_per_peer,
            request_timeout: config.connections.request_timeout,
        },
    ));
    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(SessionServiceServer::new(SessionAdapter {
            sessions: sessions.clone(),
            jobs: jobs.clone(),
            sign_in: sign_in.clone(),
        }))
        .add_service(CatalogServiceServer::new(CatalogAdapter { catalog, sessions: sessions.clone() }))
        .add_service(UsageServiceServer::new(UsageAdapter(usage.clone())))
        .add_service(CustomizationServiceServer::new(CustomizationAdapter(customization.clone())))
        .add_service(PrintServiceServer::new(PrintAdapter(jobs)))
        .add_service(DeviceServiceServer::new(DeviceAdapter(Arc::new(Devices::new(devices)))))
        .add_service(SsoServiceServer::new(SsoAdapter(sign_in)))
        .prepare();
    let grpc = gate.layer(routes).map_request(|request: http::Request<Incoming>| request.map(Body::new));

    let tls_config = match &config.transport {
        Transport::Tls(settings) => Some(tls::server_config(settings, &config.data_dir)?),
        Transport::Plaintext => None,
    };
    // Printers cannot present client certificates: on the pull-link listener the link itself is
    // the credential, so it asks for none even when the gRPC listener requires them.
    let pull_tls = match (&config.transport, printing.pull_plaintext) {
        (Transport::Tls(settings), false) => {
            let settings = TlsSettings { client_auth: ClientAuth::None, client_ca: None, ..settings.clone() };
            let (server_config, _) = tls::server_config(&settings, &config.data_dir)?;
            let mut http1 = (*server_config).clone();
            http1.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(http1))
        }
        _ => None,
    };
    // The pull-link listener stops with the gRPC listener (and drains with the same grace).
    let (pull_stop, pull_stopped) = tokio::sync::oneshot::channel::<()>();
    let pull_server = tokio::spawn(crate::pull::serve(
        pull_listener,
        pull_tls,
        Arc::new(PullLinks::new(ephemeral.clone(), sessions.clone())),
        config.connections,
        async move {
            let _ = pull_stopped.await;
        },
    ));

    for name in SERVICES {
        health.set_service_status(*name, ServingStatus::Serving).await;
    }
    let storefront_watch = tokio::spawn(watch_storefront(catalog_storefront, health.clone()));
    let ready = Ready {
        addr,
        tls: tls_config.is_some(),
        dev_ca: tls_config.as_ref().and_then(|(_, dev)| dev.as_ref().map(|d| d.ca_cert.clone())),
        storefront: storefront_name,
        products,
        pull_addr,
        pull_tls: tls_config.is_some() && !printing.pull_plaintext,
        startup: started.elapsed(),
        services: Services { sessions: sessions.clone(), customization },
    };
    on_ready(&ready);

    let tls = tls_config.map(|(server_config, _)| server_config);
    crate::serve::serve(listener, tls, Protocol::Http2, config.connections, grpc, shutdown).await;
    let _ = pull_stop.send(());
    storefront_watch.abort();
    for name in SERVICES {
        health.set_service_status(*name, ServingStatus::NotServing).await;
    }
    sweeper.abort();
    takeover.abort();
    if let Some(abandoned) = abandoned {
        abandoned.abort();
    }
    let _ = pull_server.await;
    usage.flush().await;
    drop(usage);
    usage_writer.abort();
    Ok(())
}

/// The storefront backend the configuration names, with its customization side.
struct Backend {
    storefront: Arc<dyn Storefront>,
    customizer: Arc<dyn Customizer>,
    name: String,
    /// Products it holds, when known at start (the embedded shop).
    products: usize,
}

async fn load_storefront(config: &Config) -> anyhow::Result<Backend> {
    if let Some(settings) = &config.ustore {
        let ustore = Arc::new(UstoreStorefront::new(settings.clone()).context("cannot set up the uStore client")?);
        return Ok(Backend { name: ustore.describe(), products: 0, storefront: ustore.clone(), customizer: ustore });
    }
    let storefront_dir = config.storefront_dir.clone();
    let storefront = tokio::task::spawn_blocking(move || match storefront_dir {
        Some(dir) => EmbeddedStorefront::load(&dir),
        None => EmbeddedStorefront::built_in_sample(),
    })
    .await?
    .context("the storefront could not be loaded")?;
    let (name, products) = (storefront.name().to_owned(), storefront.product_count());
    let storefront = Arc::new(storefront);
    Ok(Backend {
        customizer: Arc::new(EmbeddedCustomizer::new(storefront.clone(), config.render)),
        storefront,
        name,
        products,
    })
}

/// The SSO manager: its keyring from the key file (made on first start) and its vault, a table
/// in the persistent store or the vault service.
async fn sso_manager(settings: &SsoSettings, persistent: &Persistent) -> anyhow::Result<sso::SsoManager> {
    let policy = sso::KeyPolicy { rotate_after_seals: settings.rotate_after_seals };
    let key_file = settings.key_file.clone();
    let keyring = tokio::task::spawn_blocking(move || sso::Keyring::load_or_create(&key_file, policy))
        .await?
        .with_context(|| format!("cannot load the SSO key file {}", settings.key_file.display()))?;
    let vault: Arc<dyn vault::VaultStore> = match &settings.vault {
        VaultBackend::Database => {
            persistent.vault().await.context("cannot open the SSO vault table in the database")?
        }
        VaultBackend::Service { url, ca, client_cert, client_key, timeout } => {
            let read =
                |path: &std::path::Path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
            Arc::new(
                vault::GrpcVault::connect(vault::GrpcVaultConfig {
                    endpoint: url.clone(),
                    ca_pem: read(ca)?,
                    client_cert_pem: read(client_cert)?,
                    client_key_pem: read(client_key)?,
                    timeout: *timeout,
                })
                .with_context(|| format!("cannot set up the vault service at {url}"))?,
            )
        }
    };
    Ok(sso::SsoManager::new(Arc::new(keyring), vault))
}

/// The persistent store the database URL names: SQLite (one instance) or PostgreSQL (shared).
enum Persistent {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PostgresStore>),
}

impl Persistent {
    async fn open(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let store = SqliteStore::open(url).await.with_context(|| format!("cannot open the database {url}"))?;
            return Ok(Persistent::Sqlite(Arc::new(store)));
        }
        // The URL may carry a password: the store's own errors name the server without it.
        let store = PostgresStore::open(url).await.context("cannot open the PostgreSQL database")?;
        Ok(Persistent::Postgres(Arc::new(store)))
    }

    fn usage(&self) -> Arc<dyn UsageStore> {
        match self {
            Persistent::Sqlite(store) => store.clone(),
            Persistent::Postgres(store) => store.clone(),
        }
    }

    fn devices(&self) -> Arc<dyn DeviceStore> {
        match self {
            Persistent::Sqlite(store) => store.clone(),
            Persistent::Postgres(store) => store.clone(),
        }
    }

    fn running(&self) -> Arc<dyn RunningJobs> {
        match self {
            Persistent::Sqlite(store) => store.clone(),
            Persistent::Postgres(store) => store.clone(),
        }
    }

    /// The SSO vault as a table of the same database.
    async fn vault(&self) -> anyhow::Result<Arc<dyn vault::VaultStore>> {
        Ok(match self {
            Persistent::Sqlite(store) => Arc::new(vault::SqliteVault::with_pool(store.pool()).await?),
            Persistent::Postgres(store) => Arc::new(vault::PgVault::with_pool(store.pool()).await?),
        })
    }
}

/// With shared stores, reports jobs nobody followed to their end (see `recover_abandoned`) once
/// they are `forgotten_after` old, looking every minute.
async fn report_abandoned_jobs(running: Arc<dyn RunningJobs>, usage: UsageRecorder, forgotten_after: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let before = crate::domain::records::now_ms().saturating_sub(forgotten_after.as_millis() as u64);
        if let Err(err) = crate::domain::jobs::recover_abandoned(running.as_ref(), &usage, before).await {
            tracing::warn!(error = %err, "cannot look for abandoned jobs");
        }
    }
}

/// Cleans up and counts sessions that ended by their time limits, every `every`.
async fn sweep_sessions(sessions: Arc<SessionManager>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match sessions.sweep().await {
            Ok(0) => {}
            Ok(ended) => tracing::debug!(ended, "ended expired sessions"),
            Err(err) => tracing::warn!(error = %err, "session sweep failed"),
        }
    }
}

/// Names the health service reports on ("" is the whole server).
/// How often the storefront is asked whether it is reachable, for the health service.
const STOREFRONT_CHECK_EVERY: Duration = Duration::from_secs(5);
/// The services that need the storefront: NOT_SERVING while it cannot be reached.
pub const STOREFRONT_SERVICES: &[&str] = &["podconnect.v1.CatalogService", "podconnect.v1.CustomizationService"];

/// Keeps the health of the services that need the storefront in step with whether it answers.
async fn watch_storefront(storefront: Arc<dyn Storefront>, health: tonic_health::server::HealthReporter) {
    let mut reachable = true;
    loop {
        let now = match tokio::time::timeout(STOREFRONT_CHECK_EVERY, storefront.check_reachable()).await {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                if reachable {
                    tracing::warn!(error = %err, "the storefront cannot be reached");
                }
                false
            }
            Err(_) => false,
        };
        if now != reachable {
            let status = if now { ServingStatus::Serving } else { ServingStatus::NotServing };
            for name in STOREFRONT_SERVICES {
                health.set_service_status(*name, status).await;
            }
            reachable = now;
        }
        tokio::time::sleep(STOREFRONT_CHECK_EVERY).await;
    }
}

const SERVICES: &[&str] = &[
    "",
    "podconnect.v1.SessionService",
    "podconnect.v1.CatalogService",
    "podconnect.v1.CustomizationService",
    "podconnect.v1.PrintService",
    "podconnect.v1.DeviceService",
    "podconnect.v1.SsoService",
    "podconnect.v1.UsageService",
];
