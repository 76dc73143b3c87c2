//! The gateway balancing over several real cores (issue 15, item 4): calls spread over the cores,
//! a core killed mid-run leaves the calls to the others, a call is never sent twice once its bytes
//! left the gateway, a restarted core comes back through its health checks, no core at all is a
//! quick UNAVAILABLE, and a host name stands for its addresses. Which core served a StartSession
//! is told by asking each core directly whether it knows the session's token (sessions stay on
//! the core that opened them with the in-memory store).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use proto::v1 as pb;
use tests::client::{authed, catalog};
use tests::core::TestCore;
use tests::gateway::{Http, Mode, TestGateway, WebClient, full};
use tests::proxy::TcpProxy;

const START: &str = "/podconnect.v1.SessionService/StartSession";
/// A bound on waits for the gateway's own bookkeeping (an ejection, a re-admission after a
/// reconnection backoff of up to 5 s); not a measured time.
const BOUND: Duration = Duration::from_secs(30);

/// Cores that share one development CA (the later ones start from a copy of the first one's
/// `tls` folder), so one `--upstream-ca` trusts them all.
struct Cores {
    cores: Vec<TestCore>,
    _data: Vec<tempfile::TempDir>,
}

impl Cores {
    async fn start(count: usize) -> Cores {
        let first = TestCore::start().await;
        let mut cores = Cores { cores: vec![first], _data: Vec::new() };
        for _ in 1..count {
            let core = cores.another().await;
            cores.cores.push(core);
        }
        cores
    }

    /// One more core with the shared CA (not added to the list).
    async fn another(&mut self) -> TestCore {
        let data = tempfile::tempdir().unwrap();
        let tls = data.path().join("tls");
        std::fs::create_dir(&tls).unwrap();
        for file in ["dev-ca.pem", "dev-ca.key", "localhost.pem", "localhost.key"] {
            std::fs::copy(self.cores[0].data_dir.join("tls").join(file), tls.join(file)).unwrap();
        }
        let core = TestCore::builder().data_dir(data.path()).spawn().await.unwrap();
        self._data.push(data);
        core
    }

    fn urls(&self) -> Vec<String> {
        self.cores.iter().map(|core| format!("https://{}", core.addr)).collect()
    }

    /// Which of the cores opened the session of `token` (`None`: none knows it); a core that is
    /// down knows none.
    async fn owner(&self, token: &str) -> Option<usize> {
        for (index, core) in self.cores.iter().enumerate() {
            let Ok(channel) = core.channel_with(None).await else { continue };
            let known =
                catalog(&channel).list_categories(authed(token, pb::ListCategoriesRequest::default())).await.is_ok();
            if known {
                return Some(index);
            }
        }
        None
    }
}

async fn signal(core: &TestCore, signal: &str) {
    let pid = core.pid().expect("the core runs as a process").to_string();
    let status = tokio::process::Command::new("kill").args([signal, &pid]).status().await.unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// StartSession through the gateway for a device of its own (so no session pushes out another).
async fn start_session(client: &mut WebClient, device: &str) -> tests::gateway::WebReply {
    let start = pb::StartSessionRequest { device_id: device.into(), ..Default::default() };
    client.call(START, None, &start, Mode::Binary).await.unwrap()
}

fn token_of(reply: &tests::gateway::WebReply) -> String {
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    reply.message::<pb::StartSessionResponse>().session_token
}

async fn healthz(client: &mut WebClient) -> (StatusCode, String, String) {
    let request = client.request(Method::GET, "/healthz").body(full(Bytes::new())).unwrap();
    let (status, headers, body) = client.fetch(request).await.unwrap();
    let count = headers.get("podconnect-cores-serving").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned(), count)
}

#[tokio::test]
async fn calls_spread_over_three_cores() {
    let cores = Cores::start(3).await;
    // Generous health checks: a slow answer on a busy machine must not eject a core here.
    let gateway = TestGateway::builder()
        .cores(&cores.urls())
        .health_checks(Duration::from_secs(1), Duration::from_secs(5))
        .spawn(&cores.cores[0])
        .await
        .unwrap();
    let mut client = gateway.client(Http::H2).await;
    assert_eq!(healthz(&mut client).await, (StatusCode::OK, "SERVING\n".into(), "3/3".into()));

    let mut per_core = [0; 3];
    for call in 0..30 {
        let token = token_of(&start_session(&mut client, &format!("spread-{call}")).await);
        per_core[cores.owner(&token).await.expect("a core knows the session")] += 1;
    }
    // Sequential calls tie at zero outstanding, and ties go round in turn.
    assert!(per_core.iter().all(|count| *count >= 5), "every core takes a share: {per_core:?}");
    let serving = gateway.core_metric("serving").await.unwrap();
    assert_eq!(serving.values().sum::<i64>(), 3, "{serving:?}");
    let outstanding = gateway.core_metric("calls_outstanding").await.unwrap();
    assert!(outstanding.values().all(|calls| *calls == 0), "every call ended: {outstanding:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_killed_mid_run_leaves_the_calls_to_the_others_and_nothing_hangs() {
    let cores = Cores::start(3).await;
    let gateway = TestGateway::builder()
        .cores(&cores.urls())
        .health_checks(Duration::from_millis(500), Duration::from_secs(5))
        .spawn(&cores.cores[0])
        .await
        .unwrap();
    let client = gateway.client(Http::H2).await;
    // Four callers keep calling while core 1 is killed.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let done = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for caller in 0..4 {
        let mut handle = client.multiplexed().unwrap();
        let (mut stopped, done) = (stopped.clone(), done.clone());
        callers.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            for call in 0.. {
                if *stopped.borrow_and_update() {
                    break;
                }
                let reply = start_session(&mut handle, &format!("kill-{caller}-{call}")).await;
                codes.push(reply.grpc_status().or(reply.header_status()));
                done.fetch_add(1, Ordering::Relaxed);
            }
            codes
        }));
    }
    tests::wait::eventually("calls under way", BOUND, || async { (done.load(Ordering::Relaxed) >= 12).then_some(()) })
        .await;
    signal(&cores.cores[1], "-KILL").await;
    let killed = cores.cores[1].addr.to_string();
    gateway.wait_core_serving(&killed, false, BOUND).await;
    stop.send_replace(true);
    for caller in callers {
        let codes = tokio::time::timeout(BOUND, caller).await.expect("no call hangs").unwrap();
        // A call on the killed core's connection when it died gets UNAVAILABLE; all others work.
        assert!(codes.iter().all(|code| matches!(code, Some(0) | Some(14))), "{codes:?}");
        assert!(codes.contains(&Some(0)), "{codes:?}");
    }

    // Ejected: every call now goes to the two others.
    let mut handle = client.multiplexed().unwrap();
    let mut per_core = [0; 3];
    for call in 0..12 {
        let token = token_of(&start_session(&mut handle, &format!("after-{call}")).await);
        per_core[cores.owner(&token).await.expect("a live core knows the session")] += 1;
    }
    assert_eq!(per_core[1], 0, "{per_core:?}");
    assert!(per_core[0] > 0 && per_core[2] > 0, "{per_core:?}");
    let (status, body, count) = healthz(&mut handle).await;
    assert_eq!((status, body.as_str(), count.as_str()), (StatusCode::OK, "SERVING\n", "2/3"));
    assert!(gateway.log().contains("core ejected"), "{}", gateway.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_never_sent_to_another_core_once_its_bytes_left() {
    let cores = Cores::start(2).await;
    // Health checks far apart: only the lost connection may eject the stopped core here.
    let gateway = TestGateway::builder()
        .cores(&cores.urls())
        .health_checks(Duration::from_secs(3600), Duration::from_secs(5))
        .spawn(&cores.cores[0])
        .await
        .unwrap();
    let stopped = cores.cores[0].addr.to_string();
    cores.cores[0].freeze().await;
    // Two calls at once: at least one goes to the stopped core (it is still serving to the
    // gateway, and ties go round in turn), and hangs there with its bytes sent.
    let client = gateway.client(Http::H2).await;
    let mut calls = Vec::new();
    for call in 0..2 {
        let mut handle = client.multiplexed().unwrap();
        calls.push(tokio::spawn(async move { start_session(&mut handle, &format!("once-{call}")).await }));
    }
    let on_stopped = tests::wait::eventually("a call outstanding on the stopped core", BOUND, || async {
        let outstanding = gateway.core_metric("calls_outstanding").await.unwrap();
        outstanding.get(&stopped).copied().filter(|calls| *calls > 0)
    })
    .await;
    // SIGKILL reaches a stopped process: its connection drops with the calls unanswered.
    signal(&cores.cores[0], "-KILL").await;
    let mut unavailable: i64 = 0;
    for call in calls {
        let reply = tokio::time::timeout(BOUND, call).await.expect("no call hangs").unwrap();
        match reply.grpc_status() {
            Some(0) => assert_eq!(cores.owner(&token_of(&reply)).await, Some(1), "{reply:?}"),
            Some(14) => unavailable += 1,
            other => panic!("unexpected status {other:?}: {reply:?}"),
        }
    }
    // Had the gateway sent them again to the live core, they would have succeeded there.
    assert_eq!(unavailable, on_stopped, "each call sent to the killed core failed, none was repeated");
}

#[tokio::test]
async fn a_restarted_core_is_admitted_again_by_its_health_checks() {
    let mut cores = Cores::start(2).await;
    // The gateway reaches core 0 through a relay, so the restarted core (on a new port) can take
    // its old address.
    let relay = TcpProxy::start(cores.cores[0].addr).await.unwrap();
    let urls = [format!("https://{}", relay.addr), format!("https://{}", cores.cores[1].addr)];
    let gateway = TestGateway::builder()
        .cores(&urls)
        .health_checks(Duration::from_millis(200), Duration::from_secs(5))
        .spawn(&cores.cores[1])
        .await
        .unwrap();
    let relayed = relay.addr.to_string();
    gateway.wait_core_serving(&relayed, true, BOUND).await;

    signal(&cores.cores[0], "-KILL").await;
    gateway.wait_core_serving(&relayed, false, BOUND).await;
    let mut client = gateway.client(Http::H2).await;
    token_of(&start_session(&mut client, "while-down").await);

    let restarted = cores.another().await;
    relay.set_target(restarted.addr);
    cores.cores[0] = restarted;
    gateway.wait_core_serving(&relayed, true, BOUND).await;
    let mut per_core = [0; 2];
    for call in 0..10 {
        let token = token_of(&start_session(&mut client, &format!("restarted-{call}")).await);
        per_core[cores.owner(&token).await.expect("a core knows the session")] += 1;
    }
    assert!(per_core[0] > 0 && per_core[1] > 0, "the restarted core takes calls again: {per_core:?}");
    assert!(gateway.log().contains("core admitted"), "{}", gateway.log());
}

#[tokio::test]
async fn with_every_core_down_a_call_gets_unavailable_at_once_with_a_clear_message() {
    let cores = Cores::start(2).await;
    let gateway = TestGateway::builder()
        .cores(&cores.urls())
        .health_checks(Duration::from_millis(200), Duration::from_secs(5))
        .spawn(&cores.cores[0])
        .await
        .unwrap();
    let mut client = gateway.client(Http::H2).await;
    token_of(&start_session(&mut client, "before").await);
    for core in &cores.cores {
        signal(core, "-KILL").await;
    }
    for core in &cores.cores {
        gateway.wait_core_serving(&core.addr.to_string(), false, BOUND).await;
    }
    for mode in [Mode::Binary, Mode::Text] {
        let start = pb::StartSessionRequest { device_id: "down".into(), ..Default::default() };
        let reply =
            tokio::time::timeout(BOUND, client.call(START, None, &start, mode)).await.expect("answered").unwrap();
        assert_eq!(reply.header_status(), Some(14), "{reply:?}");
        assert_eq!(reply.grpc_status(), Some(14), "{reply:?}");
        let message = reply.grpc_message().unwrap();
        assert!(message.contains("unavailable") && !message.contains("127.0.0.1"), "{message}");
    }
    assert_eq!(healthz(&mut client).await, (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE\n".into(), "0/2".into()));
    assert!(gateway.log().contains("every core is unreachable or unhealthy"), "{}", gateway.log());

    // A gateway started with no core up starts anyway, and answers the same.
    let gateway = TestGateway::builder().cores(&cores.urls()).spawn(&cores.cores[0]).await.unwrap();
    let mut client = gateway.client(Http::H1).await;
    let reply = start_session(&mut client, "never").await;
    assert_eq!(reply.grpc_status(), Some(14), "{reply:?}");
}

#[tokio::test]
async fn a_core_given_by_host_name_is_reached_at_its_address_with_the_name_for_tls() {
    let cores = Cores::start(1).await;
    let port = cores.cores[0].addr.port();
    // The development certificate is for localhost; /etc/hosts resolves it to 127.0.0.1.
    let gateway =
        TestGateway::builder().cores(&[format!("https://localhost:{port}")]).spawn(&cores.cores[0]).await.unwrap();
    let mut client = gateway.client(Http::H2).await;
    let token = token_of(&start_session(&mut client, "by-name").await);
    assert_eq!(cores.owner(&token).await, Some(0));
    let serving = gateway.core_metric("serving").await.unwrap();
    assert_eq!(serving.get(&format!("localhost (127.0.0.1:{port})")), Some(&1), "{serving:?}");
}
