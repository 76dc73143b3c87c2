//! Several core instances as one system on a shared Redis (a real three-node Redis Cluster, or a
//! standalone server): a session started on one instance continues on the others, a job outlives
//! the instance that followed it, WatchJob on any instance sees every change, Redis outages are
//! UNAVAILABLE and then pass, every key has a time limit and none outlives its session, and Redis
//! never holds a form value in plaintext.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proto::v1 as pb;
use tests::client::{ANA, VALID_CARD, authed, create_draft, customize, print, sessions, start_session};
use tests::core::{CoreBuilder, TestCore};
use tests::postgres::TestDatabase;
use tests::redis::{RedisCluster, RedisServer};
use tests::wait::eventually;
use tonic::Code;
use tonic::transport::Channel;

/// A value a person typed, searched for in everything Redis holds.
const MARKER: &str = "Zephyrine Quillfeather-7Q";

const OPERATOR_TOKEN: &str = "scale-out-operator-token-5d1e8a0c7b3f4962";

/// Cores sharing one Redis, one PostgreSQL database, one session key and one spool folder (the
/// printer they all drive).
struct System {
    cores: Vec<TestCore>,
    channels: Vec<Channel>,
    database: TestDatabase,
    _shared: tempfile::TempDir,
}

impl System {
    async fn start(redis_urls: &str, instances: usize, tune: impl Fn(CoreBuilder) -> CoreBuilder) -> System {
        let shared = tempfile::tempdir().unwrap();
        let database = TestDatabase::create().await.expect("a PostgreSQL database");
        let mut cores = Vec::new();
        let mut channels = Vec::new();
        for i in 0..instances {
            let core = tune(
                TestCore::builder()
                    .ephemeral_store(redis_urls)
                    .database_url(database.url())
                    .operator_token(OPERATOR_TOKEN)
                    .session_key_file(&shared.path().join("session-records.key"))
                    .spool_dir(&shared.path().join("spool"))
                    .instance_id(&format!("core-{i}"))
                    .region("eu")
                    .job_poll(Duration::from_millis(100))
                    .job_lease(Duration::from_secs(1)),
            )
            .spawn()
            .await
            .expect("the core starts on Redis");
            channels.push(core.channel().await);
            cores.push(core);
        }
        System { cores, channels, database, _shared: shared }
    }

    /// Usage counts by kind, asked of instance `i` (all share the database).
    async fn usage(&self, i: usize) -> HashMap<pb::UsageEventKind, i64> {
        let request =
            pb::CountUsageEventsRequest { group_by: vec![pb::UsageGrouping::Kind as i32], ..Default::default() };
        let counts = proto::v1::usage_service_client::UsageServiceClient::new(self.channels[i].clone())
            .count_usage_events(authed(OPERATOR_TOKEN, request))
            .await
            .unwrap()
            .into_inner();
        counts.counts.iter().map(|row| (row.kind(), row.count)).collect()
    }

    /// Every row of every table of the shared database, as text.
    async fn database_rows(&self) -> Vec<String> {
        let pool = sqlx::PgPool::connect(self.database.url()).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_all(&pool)
                .await
                .unwrap();
        let mut rows = Vec::new();
        for table in tables {
            let sql = format!("SELECT t::text FROM \"{table}\" t");
            rows.extend(sqlx::query_scalar::<_, String>(&sql).fetch_all(&pool).await.unwrap());
        }
        rows
    }

    fn spool(&self) -> std::path::PathBuf {
        self._shared.path().join("spool")
    }
}

/// A finalized business card (its values from `pairs`), made on `channel`; its draft id.
async fn card(channel: &Channel, token: &str, pairs: &[(&str, &str)]) -> String {
    let draft = create_draft(channel, token, "classic-business-card", pairs).await.draft.unwrap();
    customize(channel)
        .finalize_draft(authed(token, pb::FinalizeDraftRequest { draft_id: draft.id.clone() }))
        .await
        .expect("the card finalizes");
    draft.id
}

fn submit(draft_id: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft_id.into())),
        copies: 1,
        ..Default::default()
    }
}

/// Every state WatchJob streams until the stream ends by itself.
async fn watch(channel: &Channel, token: &str, job_id: &str) -> Result<Vec<pb::Job>, tonic::Status> {
    let request = authed(token, pb::WatchJobRequest { job_id: job_id.into() });
    let mut stream = print(channel).watch_job(request).await?.into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Some(message) = tokio::time::timeout_at(deadline, stream.message()).await.expect("the watch ends")? {
        seen.push(message.job.unwrap());
    }
    Ok(seen)
}

fn states(jobs: &[pb::Job]) -> Vec<pb::JobState> {
    jobs.iter().map(|j| j.state()).collect()
}

/// The card with the marker as the person's name.
fn card_with_marker() -> Vec<(&'static str, &'static str)> {
    VALID_CARD.iter().map(|&(k, v)| if k == "name" { (k, MARKER) } else { (k, v) }).collect()
}

/// Keys of one session in Redis (its scope's hash tag names it).
fn session_keys<'a>(keys: &'a [(String, i64)], scope_ids: &[String]) -> Vec<&'a String> {
    keys.iter().map(|(k, _)| k).filter(|k| scope_ids.iter().any(|id| k.contains(id.as_str()))).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_session_started_on_one_instance_continues_on_the_others_of_a_redis_cluster() {
    let cluster = RedisCluster::start().await.unwrap();
    let system = System::start(&cluster.urls(), 3, |b| b.spool_print_time(Duration::from_millis(800))).await;
    let [a, b, c] = [&system.channels[0], &system.channels[1], &system.channels[2]];

    // Browse on A, customize on B, preview on C, print on A, watch on B and C.
    let token = start_session(a, "mfd-lobby").await;
    let categories = tests::client::catalog(b)
        .list_categories(authed(&token, pb::ListCategoriesRequest::default()))
        .await
        .expect("B knows A's session")
        .into_inner();
    assert!(!categories.categories.is_empty());
    let draft = create_draft(b, &token, "classic-business-card", &card_with_marker()).await.draft.unwrap();
    let preview = customize(c)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 400, page_numbers: vec![] },
        ))
        .await
        .expect("C renders B's draft")
        .into_inner();
    assert!(!preview.pages.is_empty() && preview.pages[0].data.starts_with(b"\x89PNG"));

    customize(b)
        .finalize_draft(authed(&token, pb::FinalizeDraftRequest { draft_id: draft.id.clone() }))
        .await
        .expect("B finalizes");
    let job = print(a).submit_job(authed(&token, submit(&draft.id))).await.expect("A prints").into_inner().job.unwrap();
    let (on_b, on_c) = tokio::join!(watch(b, &token, &job.id), watch(c, &token, &job.id));
    for seen in [on_b.unwrap(), on_c.unwrap()] {
        assert_eq!(seen.last().unwrap().state(), pb::JobState::Completed, "{:?}", states(&seen));
    }
    let spooled: Vec<_> = std::fs::read_dir(system.spool()).unwrap().flatten().collect();
    assert_eq!(spooled.len(), 1, "printed once");

    // Every key the flow left has a time limit; no value holds what the person typed.
    let keys = cluster.keys_with_ttl().await.unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|(_, ttl)| *ttl > 0), "keys without a time limit: {keys:?}");
    let values = cluster.values().await.unwrap();
    assert!(!values.iter().any(|v| contains(v, MARKER.as_bytes())), "a form value is in Redis in plaintext");
    // The session's keys share one hash tag: one slot, one node, deleted together.
    let scope_ids = session_scopes(&keys);
    assert_eq!(scope_ids.len(), 1);
    let mut holding = 0;
    for node in &cluster.nodes {
        holding += usize::from(!session_keys(&node.keys_with_ttl().await.unwrap(), &scope_ids).is_empty());
    }
    assert_eq!(holding, 1, "the session's keys live on one node");

    // Closed on C: nothing of the session is left on any node.
    sessions(c).close_session(authed(&token, pb::CloseSessionRequest {})).await.unwrap();
    let keys = cluster.keys_with_ttl().await.unwrap();
    assert!(session_keys(&keys, &scope_ids).is_empty(), "left behind: {:?}", session_keys(&keys, &scope_ids));
    let refused = tests::client::catalog(a)
        .list_categories(authed(&token, pb::ListCategoriesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "closed everywhere");

    // One database for all: the session's start and end and the job counted once each, whichever
    // instance saw them; and no row holds what the person typed.
    let counts = eventually("the flow's usage events", Duration::from_secs(10), || async {
        let counts = system.usage(2).await;
        (counts.get(&pb::UsageEventKind::SessionClosed) == Some(&1)
            && counts.get(&pb::UsageEventKind::JobEnded) == Some(&1))
        .then_some(counts.clone())
        .ok_or(counts)
    })
    .await;
    assert_eq!(counts.get(&pb::UsageEventKind::SessionStarted), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&pb::UsageEventKind::JobSubmitted), Some(&1), "{counts:?}");
    let rows = system.database_rows().await;
    let closed: Vec<_> = rows.iter().filter(|r| r.contains("session_closed")).collect();
    assert!(closed.len() == 1 && closed[0].ends_with(",eu)"), "recorded once, in its region: {closed:?}");
    assert!(!rows.iter().any(|r| r.contains(MARKER)), "a form value is in PostgreSQL");
}

/// The `session-<id>` scopes present among the keys.
fn session_scopes(keys: &[(String, i64)]) -> Vec<String> {
    let mut scopes: Vec<String> = keys
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("pc:{session-").and_then(|rest| rest.split('}').next()))
        .filter(|id| id.len() == 32)
        .map(|id| format!("session-{id}"))
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

#[tokio::test]
async fn a_job_followed_by_a_killed_instance_is_taken_over_and_completes() {
    let redis = RedisServer::start().await.unwrap();
    let mut system = System::start(&redis.url(), 2, |b| b.spool_print_time(Duration::from_secs(3))).await;
    let token = start_session(&system.channels[0], "mfd-lobby").await;
    let draft = card(&system.channels[0], &token, VALID_CARD).await;
    let job =
        print(&system.channels[0]).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner().job.unwrap();
    let print_file_key = |keys: &[(String, i64)]| keys.iter().any(|(k, _)| k.contains(":e:file/"));
    assert!(print_file_key(&redis.keys_with_ttl().await.unwrap()), "the print file is stored while the job runs");

    // A dies mid-job; B sees the lease lapse, follows the job, and it completes.
    let killed_at = Instant::now();
    let pid = system.cores[0].pid().unwrap();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    // B holds the job's lease once A's lapses (default lease here: 1 s, looked at every third).
    let lease_key = format!("pc:{{job-leases}}:e:{}", job.id);
    let client = redis::Client::open(redis.url()).unwrap();
    let connection = client.get_multiplexed_async_connection().await.unwrap();
    eventually("B to take the job's lease", Duration::from_secs(10), || {
        let (mut connection, key) = (connection.clone(), lease_key.clone());
        async move {
            let owner: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut connection).await.unwrap();
            (owner.as_deref() == Some("core-1")).then_some(()).ok_or(owner)
        }
    })
    .await;
    eprintln!("lease taken over {:?} after SIGKILL", killed_at.elapsed());
    let b = &system.channels[1];
    let seen = watch(b, &token, &job.id).await.expect("B watches A's job");
    assert_eq!(seen.last().unwrap().state(), pb::JobState::Completed, "{:?}", states(&seen));
    eprintln!("lease takeover to completion after SIGKILL: {:?}", killed_at.elapsed());
    let got = print(b).get_job(authed(&token, pb::GetJobRequest { job_id: job.id.clone() })).await.unwrap();
    assert_eq!(got.into_inner().job.unwrap().state(), pb::JobState::Completed);
    eventually("the ended job's print file to be deleted", Duration::from_secs(10), || async {
        (!print_file_key(&redis.keys_with_ttl().await.unwrap())).then_some(())
    })
    .await;
    system.cores.remove(0);
}

#[tokio::test]
async fn watch_on_one_instance_sees_a_cancel_made_on_another() {
    let redis = RedisServer::start().await.unwrap();
    let system = System::start(&redis.url(), 3, |b| b.spool_print_time(Duration::from_secs(30))).await;
    let [a, b, c] = [&system.channels[0], &system.channels[1], &system.channels[2]];
    let token = start_session(a, "mfd-lobby").await;
    let draft = card(a, &token, VALID_CARD).await;
    let job = print(a).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner().job.unwrap();

    let watching = tokio::spawn({
        let (c, token, id) = (c.clone(), token.clone(), job.id.clone());
        async move { watch(&c, &token, &id).await }
    });
    // Once C's watch is open (it keeps the session alive, so the session is live on C)...
    eventually("C's watch to see the job processing", Duration::from_secs(10), || async {
        let job = print(c).get_job(authed(&token, pb::GetJobRequest { job_id: job.id.clone() })).await.ok()?;
        (job.into_inner().job?.state() == pb::JobState::Processing).then_some(())
    })
    .await;
    print(b).cancel_job(authed(&token, pb::CancelJobRequest { job_id: job.id.clone() })).await.expect("B cancels");
    let seen = watching.await.unwrap().expect("C's watch ends with the job");
    assert_eq!(seen.last().unwrap().state(), pb::JobState::Canceled, "{:?}", states(&seen));
}

#[tokio::test]
async fn a_redis_outage_is_unavailable_and_the_system_recovers_after_it() {
    let mut redis = RedisServer::start().await.unwrap();
    let system = System::start(&redis.url(), 1, |b| b.redis_timeout(Duration::from_secs(1))).await;
    let channel = &system.channels[0];
    let token = start_session(channel, "mfd-lobby").await;

    redis.kill().await;
    let started = Instant::now();
    let refused = tests::client::catalog(channel)
        .list_categories(authed(&token, pb::ListCategoriesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("try again"), "{}", refused.message());
    assert!(started.elapsed() < Duration::from_secs(10), "answered within the Redis timeout, not hung");
    let start = sessions(channel)
        .start_session(pb::StartSessionRequest { device_id: "mfd-lobby".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(start.code(), Code::Unavailable);

    // Back (empty, as Redis without persistence restarts): new sessions work again.
    redis.restart().await.unwrap();
    let token = eventually("the core to reach Redis again", Duration::from_secs(20), || async {
        sessions(channel)
            .start_session(pb::StartSessionRequest { device_id: "mfd-lobby".into(), ..Default::default() })
            .await
            .map(|r| r.into_inner().session_token)
    })
    .await;
    let draft = create_draft(channel, &token, "classic-business-card", VALID_CARD).await;
    assert!(draft.draft.is_some());
    assert!(system.cores[0].pid().is_some(), "the core rode the outage out");
}

#[tokio::test]
async fn an_expired_session_and_an_ended_job_leave_no_key_behind() {
    let redis = RedisServer::start().await.unwrap();
    let system = System::start(&redis.url(), 2, |b| {
        b.spool_print_time(Duration::from_millis(300))
            .session_idle(Duration::from_secs(2))
            .session_sweep(Duration::from_millis(500))
    })
    .await;
    let [a, b] = [&system.channels[0], &system.channels[1]];
    let token = start_session(a, "mfd-lobby").await;
    let draft = card(b, &token, &card_with_marker()).await;
    let job = print(a).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner().job.unwrap();
    let seen = watch(b, &token, &job.id).await.unwrap();
    assert_eq!(seen.last().unwrap().state(), pb::JobState::Completed);

    let mut seen_keys: HashMap<String, i64> = HashMap::new();
    let keys = redis.keys_with_ttl().await.unwrap();
    seen_keys.extend(keys.iter().cloned());
    let scopes = session_scopes(&keys);
    assert_eq!(scopes.len(), 1);
    assert!(!keys.iter().any(|(k, _)| k.contains("job-leases") || k.contains("running-jobs")), "the job let go");

    // Nobody calls: Redis expires the record after the idle limit, and the next sweep (on any
    // instance; the index entry decides which) deletes the rest and counts the end.
    let record = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    eventually("the expired session's keys to be gone", Duration::from_secs(15), || async {
        let keys = redis.keys_with_ttl().await.unwrap();
        let mut left: Vec<String> = session_keys(&keys, &scopes).into_iter().cloned().collect();
        left.extend(keys.iter().map(|(k, _)| k).filter(|k| k.contains(&record)).cloned());
        left.is_empty().then_some(()).ok_or(left)
    })
    .await;
    let refused = tests::client::catalog(b)
        .list_categories(authed(&token, pb::ListCategoriesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(seen_keys.values().all(|ttl| *ttl > 0), "every key had a time limit: {seen_keys:?}");
    let values = redis.values().await.unwrap();
    assert!(!values.iter().any(|v| contains(v, MARKER.as_bytes())));
    // Both instances sweep; the session's end is counted once (by whichever got there first,
    // whose writer may still be gathering its batch).
    eventually("the session's end to be counted", Duration::from_secs(10), || async {
        let counts = system.usage(1).await;
        counts.contains_key(&pb::UsageEventKind::SessionClosed).then_some(()).ok_or(counts)
    })
    .await;
    for i in 0..2 {
        let counts = system.usage(i).await;
        assert_eq!(counts.get(&pb::UsageEventKind::SessionClosed), Some(&1), "counted once: {counts:?}");
    }
}

#[tokio::test]
async fn failed_logins_count_across_instances() {
    let redis = RedisServer::start().await.unwrap();
    let system = System::start(&redis.url(), 3, |b| b).await;
    let login = |channel: &Channel, token: &str, password: &str| {
        let request = pb::LoginRequest { username: ANA.0.into(), password: password.into(), remember: false };
        let (channel, request) = (channel.clone(), authed(token, request));
        async move { sessions(&channel).login(request).await }
    };
    // Five wrong passwords for one account (the default limit), from sessions on three
    // instances and two devices: the account is locked on every instance.
    for i in 0..5 {
        let channel = &system.channels[i % 3];
        let token = start_session(channel, if i % 2 == 0 { "mfd-lobby" } else { "mfd-floor-2" }).await;
        let refused = login(channel, &token, "not-her-password").await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "attempt {i}: {refused:?}");
    }
    let token = start_session(&system.channels[2], "mfd-floor-3").await;
    let locked = login(&system.channels[2], &token, ANA.1).await.unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted, "{locked:?}");
    assert!(locked.message().contains("retry in about"), "{}", locked.message());
}

#[tokio::test]
async fn instances_refuse_to_start_without_redis_and_name_it() {
    let redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    drop(redis);
    let failed = TestCore::builder()
        .ephemeral_store(&url)
        .redis_timeout(Duration::from_millis(500))
        .spawn()
        .await
        .err()
        .expect("no Redis, no start");
    assert!(format!("{failed:#}").contains("Redis"), "{failed:#}");
}

#[tokio::test]
async fn redis_over_tls_is_trusted_by_its_ca_and_refused_without_it() {
    let ca = tests::pki::TestCa::new("redis test CA");
    let redis = RedisServer::start_tls(&ca.server(&["localhost", "127.0.0.1"])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("redis-ca.pem");
    ca.write(&ca_file);

    let core = TestCore::builder().ephemeral_store(&redis.url()).redis_ca(&ca_file).spawn().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    assert!(create_draft(&channel, &token, "classic-business-card", VALID_CARD).await.draft.is_some());

    // The system's roots do not know the private CA: the core says so at start.
    let refused = TestCore::builder()
        .ephemeral_store(&redis.url())
        .redis_timeout(Duration::from_secs(2))
        .spawn()
        .await
        .err()
        .expect("an unknown issuer is refused");
    assert!(format!("{refused:#}").contains("Redis"), "{refused:#}");
}

#[tokio::test]
async fn a_pull_link_made_on_one_instance_is_served_once_by_another() {
    let redis = RedisServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("devices.toml");
    std::fs::write(
        &devices,
        "[[device]]\nid = \"mfd-eip\"\ndisplay_name = \"EIP device\"\nmodel = \"Xerox VersaLink C7130\"\ndelivery = \"device_pull\"\n",
    )
    .unwrap();
    let system = System::start(&redis.url(), 2, |b| b.devices_file(&devices).pull_plaintext()).await;
    let token = start_session(&system.channels[0], "mfd-eip").await;
    let draft = card(&system.channels[0], &token, VALID_CARD).await;
    let submitted = print(&system.channels[0]).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner();
    let link = submitted.pull_delivery.expect("a pulling device gets a link").document_url;

    // The printer fetches the link from the other instance's pull listener (as behind a
    // balancer): the document is there, once.
    let path = link.split_once("/print-files/").map(|(_, rest)| rest).expect("a pull link");
    let on_b = format!("http://{}/print-files/{path}", system.cores[1].pull_addr);
    let (status, body) = tests::raw::plain_get(&on_b, "").await;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"%PDF-"), "the print-ready PDF");
    let on_a = format!("http://{}/print-files/{path}", system.cores[0].pull_addr);
    assert_eq!(tests::raw::plain_get(&on_a, "").await.0, 410, "spent, on every instance");
}
