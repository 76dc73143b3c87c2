//! `podctl` run as a process against real cores, as shop staff, operators and scripts use it:
//! the whole shop-and-print flow to the spool printer and to a real IPP printer, `--json` output
//! parsed, an operator session (devices imported and listed, usage counts matching the flow), and
//! bad input answered with one clear line and the exit code of its gRPC status.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tests::client::{ANA, BEN};
use tests::core::TestCore;
use tests::gateway::TestGateway;
use tests::ipp::TestPrinter;

const OPERATOR_TOKEN: &str = "podctl-e2e-operator-token-90b7c3d1e5f24a68";

/// The `podctl` binary next to the test executable (built by `cargo build --workspace --bins`).
fn podctl_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().and_then(Path::parent).unwrap().join("podctl");
    assert!(binary.exists(), "{} is missing: run `cargo build --workspace --bins` first", binary.display());
    binary
}

/// What one podctl run left: exit code and both outputs.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The last line of standard output as JSON.
    fn json(&self) -> Value {
        let line = self.stdout.lines().last().unwrap_or_else(|| panic!("no output: {self:?}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Every line of standard output as JSON.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "podctl failed: {self:?}");
        self
    }

    /// Asserts a failure with this exit code and a one-line message naming `words`.
    #[track_caller]
    fn fails(&self, code: i32, status: &str, words: &str) {
        assert_eq!(self.code, code, "exit code: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line for people: {self:?}");
        assert!(lines[0].starts_with(&format!("podctl: {status}: ")), "{self:?}");
        assert!(lines[0].contains(words), "the line should say {words:?}: {self:?}");
    }
}

/// podctl with a profile for one core and device, in a home folder of its own.
struct Podctl {
    home: tempfile::TempDir,
}

impl Podctl {
    fn new(core: &TestCore, device: &str) -> Podctl {
        let home = tempfile::tempdir().unwrap();
        let token_file = home.path().join("operator.token");
        std::fs::write(&token_file, format!("{OPERATOR_TOKEN}\n")).unwrap();
        let config = format!(
            "default = \"test\"\n\n[profile.test]\nendpoint = \"https://{}\"\nca = \"{}\"\ndevice = \"{device}\"\noperator_token_file = \"{}\"\n",
            core.addr,
            core.dev_ca.as_ref().unwrap().display(),
            token_file.display()
        );
        std::fs::create_dir_all(home.path().join(".config/podctl")).unwrap();
        std::fs::write(home.path().join(".config/podctl/config.toml"), config).unwrap();
        Podctl { home }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn session_file(&self) -> PathBuf {
        self.path(".local/state/podctl/test.session")
    }

    async fn run(&self, args: &[&str]) -> Run {
        let output = tests::process::command(&podctl_binary())
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("podctl runs");
        Run {
            code: output.status.code().expect("podctl exits by itself"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 errors"),
        }
    }

    /// Customizes the classic business card from a values file, with previews, and finalizes it;
    /// returns the draft id.
    async fn finalized_card(&self) -> String {
        let values = self.path("card.toml");
        let toml: String = tests::client::VALID_CARD
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", serde_json::to_string(v).unwrap()))
            .collect();
        std::fs::write(&values, toml).unwrap();
        let previews = self.path("previews");
        let run = self
            .run(&[
                "--json",
                "customize",
                "classic-business-card",
                "--values",
                values.to_str().unwrap(),
                "--set",
                "name=Anna K. Keller",
                "--preview",
                previews.to_str().unwrap(),
                "--finalize",
            ])
            .await
            .ok();
        let out = run.json();
        assert_eq!(out["field_errors"], Value::Array(vec![]), "{out}");
        assert_eq!(out["draft"]["values"]["name"], "Anna K. Keller", "--set wins over the file");
        assert_eq!(out["print_file"]["sha256"].as_str().unwrap().len(), 64, "{out}");
        let pages = out["previews"].as_array().unwrap();
        assert!(!pages.is_empty());
        for page in pages {
            let bytes = std::fs::read(page["file"].as_str().unwrap()).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "previews are PNG files");
        }
        out["draft"]["id"].as_str().unwrap().to_owned()
    }

    /// Prints the draft and follows it with `--watch --json`; returns every job state seen.
    async fn print_and_watch(&self, draft: &str) -> Vec<Value> {
        // `--draft=ID`: a base64url id may start with '-'.
        let draft = format!("--draft={draft}");
        let run = self.run(&["--json", "print", &draft, "--copies", "1", "--watch"]).await.ok();
        run.json_lines().into_iter().map(|line| line["job"].clone()).collect()
    }
}

#[tokio::test]
async fn an_operator_imports_devices_then_a_shop_flow_prints_and_the_usage_counts_it() {
    let spool = tempfile::tempdir().unwrap();
    let core = TestCore::builder().operator_token(OPERATOR_TOKEN).spool_dir(spool.path()).spawn().await.unwrap();
    let podctl = Podctl::new(&core, "mfd-podctl");

    // Operator: import a devices file in the core's own format, list, export.
    let devices = podctl.path("devices.toml");
    std::fs::write(
        &devices,
        "[[device]]\nid = \"mfd-podctl\"\ndisplay_name = \"Podctl test MFD\"\nmodel = \"PodctlTest 1\"\ndelivery = \"spool_folder\"\nlocation = \"Lab\"\n\n\
         [[device]]\nid = \"mfd-spare\"\ndisplay_name = \"Spare\"\ndelivery = \"device_pull\"\n",
    )
    .unwrap();
    let imported = podctl.run(&["--json", "devices", "import", devices.to_str().unwrap()]).await.ok().json();
    assert_eq!(imported["added"], serde_json::json!(["mfd-podctl", "mfd-spare"]));
    let again = podctl.run(&["--json", "devices", "import", devices.to_str().unwrap()]).await.ok().json();
    assert_eq!(again["updated"], serde_json::json!(["mfd-podctl", "mfd-spare"]), "a second import updates");
    let listed = podctl.run(&["--json", "devices", "list"]).await.ok().json();
    let ids: Vec<&str> = listed["devices"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["mfd-podctl", "mfd-spare"]);
    let table = podctl.run(&["devices", "list"]).await.ok();
    assert!(table.stdout.lines().next().unwrap().starts_with("ID"), "a table for people: {table:?}");
    podctl.run(&["devices", "update", "mfd-spare", "--location", "Basement"]).await.ok();
    let shown = podctl.run(&["--json", "devices", "show", "mfd-spare"]).await.ok().json();
    assert_eq!(shown["device"]["location"], "Basement");
    let exported = podctl.run(&["devices", "export"]).await.ok();
    let parsed: toml::Table = toml::from_str(&exported.stdout).expect("the export is a devices file");
    assert_eq!(parsed["device"].as_array().unwrap().len(), 2);
    podctl.run(&["devices", "remove", "mfd-spare"]).await.ok();

    // Shop: browse with sessions of their own, then a saved session for the flow.
    let categories = podctl.run(&["--json", "categories"]).await.ok().json();
    assert!(categories["categories"].as_array().unwrap().iter().any(|c| c["id"] == "business-cards"));
    let page =
        podctl.run(&["--json", "products", "--category", "business-cards", "--page-size", "1"]).await.ok().json();
    assert_eq!(page["products"].as_array().unwrap().len(), 1);
    assert!(page["next_page_token"].is_string() && page["total_size"].as_i64().unwrap() > 1, "{page}");
    let found = podctl.run(&["--json", "products", "--search", "kraft", "--all"]).await.ok().json();
    assert!(
        found["products"].as_array().unwrap().iter().all(|p| p["display_name"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("kraft"))
    );
    let product = podctl.run(&["product", "classic-business-card"]).await.ok();
    assert!(product.stdout.contains("classic-business-card"), "{product:?}");
    let thumb = podctl.path("thumb.png");
    podctl.run(&["thumbnail", "classic-business-card", "-o", thumb.to_str().unwrap()]).await.ok();
    assert!(std::fs::read(&thumb).unwrap().starts_with(b"\x89PNG"));

    let started = podctl.run(&["--json", "session", "start"]).await.ok().json();
    assert_eq!(started["device_id"], "mfd-podctl");
    let mode = std::fs::metadata(podctl.session_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner reads the session file");
    let draft = podctl.finalized_card().await;
    let states = podctl.print_and_watch(&draft).await;
    assert_eq!(states.last().unwrap()["state"], "completed", "{states:?}");
    assert_eq!(states.last().unwrap()["device_id"], "mfd-podctl");
    let job_id = states[0]["id"].as_str().unwrap();
    let job = podctl.run(&["--json", "job", "get", job_id]).await.ok().json();
    assert_eq!(job["job"]["state"], "completed");
    let spooled = std::fs::read_dir(spool.path()).unwrap().count();
    assert!(spooled >= 1, "the spool printer got the PDF");
    podctl.run(&["session", "close"]).await.ok();
    assert!(!podctl.session_file().exists(), "closing forgets the token");

    // Operator: the counts match what was just done on the device's model.
    tests::wait::eventually("the job's usage events", Duration::from_secs(10), || async {
        let run = podctl
            .run(&["--json", "usage", "--group-by", "device_model,kind", "--kind", "job_submitted,job_ended"])
            .await;
        let rows = run.json()["rows"].as_array().cloned().unwrap_or_default();
        let count = |kind: &str| {
            rows.iter()
                .find(|r| r["device_model"] == "PodctlTest 1" && r["kind"] == kind)
                .map(|r| r["count"].as_i64().unwrap())
        };
        if count("job_submitted") == Some(1) && count("job_ended") == Some(1) { Ok(()) } else { Err(rows) }
    })
    .await;
    let csv = podctl.run(&["usage", "--group-by", "kind", "--format", "csv"]).await.ok();
    assert_eq!(csv.stdout.lines().next(), Some("kind,count"));
    assert!(csv.stdout.lines().any(|l| l == "draft_created,1"), "{csv:?}");
    let table = podctl.run(&["usage", "--group-by", "product", "--kind", "draft_finalized"]).await.ok();
    assert!(table.stdout.contains("classic-business-card") && table.stdout.contains("total 1"), "{table:?}");

    let health = podctl.run(&["--json", "health"]).await.ok().json();
    assert_eq!(health["core"], "SERVING");
}

#[tokio::test]
async fn the_shop_flow_prints_on_a_real_ipp_printer() {
    let printer = TestPrinter::start().await.unwrap();
    let core =
        TestCore::builder().operator_token(OPERATOR_TOKEN).job_poll(Duration::from_millis(100)).spawn().await.unwrap();
    let podctl = Podctl::new(&core, "mfd-ipp");
    podctl
        .run(&[
            "devices",
            "add",
            "mfd-ipp",
            "--name",
            "Test printer",
            "--model",
            "ippeveprinter",
            "--delivery",
            "ipp_push",
            "--printer-uri",
            &printer.uri,
        ])
        .await
        .ok();
    podctl.run(&["session", "start"]).await.ok();
    let draft = podctl.finalized_card().await;

    // Options the printer cannot do are refused before anything is submitted.
    let refused = podctl.run(&["print", "--draft", &draft, "--media", "na_ledger_11x17in-not-a-size"]).await;
    refused.fails(3, "INVALID_ARGUMENT", "media");

    let states = podctl.print_and_watch(&draft).await;
    let last = states.last().unwrap();
    assert_eq!(last["state"], "completed", "{states:?}");
    let device_job = last["device_job_id"].as_str().unwrap();
    assert!(!device_job.is_empty(), "the printer's job id is known");
    printer.wait_for_job_file(device_job, 1, Duration::from_secs(10)).await.expect("the printer kept the document");
    podctl.run(&["session", "close"]).await.ok();
}

#[tokio::test]
async fn a_job_is_followed_by_watch_and_canceled_by_job_cancel_from_another_command() {
    let spool = tempfile::tempdir().unwrap();
    let core =
        TestCore::builder().spool_dir(spool.path()).spool_print_time(Duration::from_secs(3600)).spawn().await.unwrap();
    let podctl = Podctl::new(&core, "mfd-podctl");
    podctl.run(&["session", "start"]).await.ok();
    let draft = podctl.finalized_card().await;
    let submitted = podctl.run(&["--json", "print", &format!("--draft={draft}"), "--copies", "1"]).await.ok().json();
    let job_id = submitted["job"]["id"].as_str().expect("print answers with the job").to_owned();

    // One terminal follows the job while another cancels it (ids may start with '-').
    let (watch, cancel) = (["watch", job_id.as_str()], ["--json", "job", "cancel", job_id.as_str()]);
    let (watched, canceled) = tokio::join!(podctl.run(&watch), podctl.run(&cancel));
    let canceled = canceled.ok().json();
    let stopping = canceled["job"]["state_reasons"].as_array().unwrap().iter().any(|r| r == "processing-to-stop-point");
    assert!(
        canceled["job"]["state"] == "canceled" || stopping,
        "the answer says the job is being canceled: {canceled}"
    );
    assert_eq!(watched.code, 1, "a watched job that ends canceled exits 1: {watched:?}");
    let last = watched.stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with(&job_id) && last.contains("canceled"), "the last line says how it ended: {watched:?}");

    let job = podctl.run(&["--json", "job", "get", &job_id]).await.ok().json();
    assert_eq!(job["job"]["state"], "canceled");
    let again = podctl.run(&["job", "cancel", &job_id]).await;
    again.fails(9, "FAILED_PRECONDITION", "already ended");
}

#[tokio::test]
async fn print_pdf_prints_a_local_file_on_the_named_device_byte_for_byte() {
    let spool = tempfile::tempdir().unwrap();
    let core = TestCore::builder().operator_token(OPERATOR_TOKEN).spool_dir(spool.path()).spawn().await.unwrap();
    let podctl = Podctl::new(&core, "mfd-lobby");
    let local = podctl.path("flyer.pdf");
    std::fs::write(&local, tests::pdf::pdf(3)).unwrap();

    // No saved session: podctl starts one on --device and follows the job to its end.
    let run = podctl
        .run(&["--json", "--device", "mfd-podctl-pdf", "print", "--pdf", local.to_str().unwrap(), "--copies", "2"])
        .await
        .ok();
    let last = run.json();
    assert_eq!(last["job"]["state"], "completed", "{run:?}");
    assert_eq!(last["job"]["device_id"], "mfd-podctl-pdf");
    assert_eq!(last["job"]["copies"], 2);
    assert_eq!(last["job"]["page_count"], 3);
    let spooled: Vec<_> = std::fs::read_dir(spool.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    assert_eq!(std::fs::read(&spooled[0]).unwrap(), std::fs::read(&local).unwrap(), "the printer got the local file");
    assert!(!podctl.session_file().exists(), "a session of its own is not saved");
}

#[tokio::test]
async fn bad_input_gets_one_clear_line_and_the_exit_code_of_its_status() {
    let core = TestCore::builder().operator_token(OPERATOR_TOKEN).spawn().await.unwrap();
    let podctl = Podctl::new(&core, "mfd-lobby");

    podctl.run(&["product", "no-such-product"]).await.fails(5, "NOT_FOUND", "");
    let json = podctl.run(&["--json", "product", "no-such-product"]).await;
    assert_eq!(json.code, 5);
    assert_eq!(json.json()["error"]["code"], "NOT_FOUND", "scripts get the status in JSON");

    podctl.run(&["customize", "classic-business-card"]).await.fails(9, "FAILED_PRECONDITION", "podctl session start");
    podctl.run(&["session", "start"]).await.ok();
    let long = format!("company={}", "x".repeat(300));
    let invalid = podctl
        .run(&["customize", "classic-business-card", "--set", "initials=AK", "--set", "name=Anna", "--set", &long])
        .await;
    assert_eq!(invalid.code, 3, "{invalid:?}");
    assert!(invalid.stdout.lines().any(|l| l.starts_with("company ")), "the error is shown on its field: {invalid:?}");
    assert!(invalid.stderr.starts_with("podctl: INVALID_ARGUMENT: company: "), "{invalid:?}");
    podctl.run(&["customize", "classic-business-card", "--set", "no_such_field=1"]).await.fails(
        3,
        "INVALID_ARGUMENT",
        "no_such_field",
    );
    podctl.run(&["customize", "classic-business-card", "--set", "novalue"]).await.fails(
        3,
        "INVALID_ARGUMENT",
        "FIELD=VALUE",
    );
    let text = podctl.path("notes.pdf");
    std::fs::write(&text, b"just some notes, not a PDF\n").unwrap();
    podctl.run(&["print", "--pdf", text.to_str().unwrap()]).await.fails(3, "INVALID_ARGUMENT", "not a PDF");
    podctl.run(&["print", "--pdf", "/nonexistent/flyer.pdf"]).await.fails(
        3,
        "INVALID_ARGUMENT",
        "/nonexistent/flyer.pdf",
    );
    podctl.run(&["print", "--draft", "x", "--sides", "three-sided"]).await.fails(3, "INVALID_ARGUMENT", "--sides");

    podctl.run(&["--ca", "/nonexistent/ca.pem", "categories"]).await.fails(
        3,
        "INVALID_ARGUMENT",
        "/nonexistent/ca.pem",
    );
    let wrong = podctl.run(&["--endpoint", "https://127.0.0.1:1", "categories"]).await;
    wrong.fails(14, "UNAVAILABLE", "127.0.0.1:1");
    podctl.run(&["usage", "--group-by", "colour"]).await.fails(3, "INVALID_ARGUMENT", "--group-by");
    podctl.run(&["usage", "--from", "last tuesday"]).await.fails(3, "INVALID_ARGUMENT", "--from");
    let denied = podctl.run(&["--operator-token-file", "/dev/null", "devices", "list"]).await;
    assert_eq!(denied.code, 3, "an empty token file is refused before any call: {denied:?}");
    assert_eq!(podctl.run(&["no-such-command"]).await.code, 3, "a usage error is INVALID_ARGUMENT");
}

#[tokio::test]
async fn completions_and_the_man_page_come_from_the_command_definition() {
    let core = TestCore::start().await;
    let podctl = Podctl::new(&core, "mfd-lobby");
    let bash = podctl.run(&["completions", "bash"]).await.ok();
    assert!(bash.stdout.contains("podctl") && bash.stdout.contains("customize"), "{bash:?}");
    let man = podctl.run(&["man"]).await.ok();
    assert!(man.stdout.starts_with(".ie") || man.stdout.contains(".TH podctl"), "{}", &man.stdout[..200]);
}

#[tokio::test]
async fn a_login_follows_the_rotated_token_and_operators_check_health_and_keys() {
    let core = TestCore::builder().operator_token(OPERATOR_TOKEN).spawn().await.unwrap();
    let gateway = TestGateway::start(&core).await;
    let podctl = Podctl::new(&core, "mfd-lobby");

    // Ben's login rotates the token; the saved session follows, and shows him his trade category.
    podctl.run(&["session", "start"]).await.ok();
    let before = std::fs::read_to_string(podctl.session_file()).unwrap();
    let password = podctl.path("password");
    std::fs::write(&password, format!("{}\n", BEN.1)).unwrap();
    let login = podctl.run(&["--json", "login", BEN.0, "--password-file", password.to_str().unwrap()]).await.ok();
    assert_eq!(login.json()["display_name"], BEN.2);
    let after = std::fs::read_to_string(podctl.session_file()).unwrap();
    assert_ne!(before, after, "the file holds the new token");
    let categories = podctl.run(&["--json", "categories"]).await.ok().json();
    assert!(categories["categories"].as_array().unwrap().iter().any(|c| c["id"] == "trade-counter"), "{categories}");
    std::fs::write(&password, "wrong-password\n").unwrap();
    let refused = podctl.run(&["login", BEN.0, "--password-file", password.to_str().unwrap()]).await;
    refused.fails(7, "PERMISSION_DENIED", "");
    assert!(!refused.stderr.contains("wrong-password"), "no password in messages");
    podctl.run(&["session", "close"]).await.ok();

    let gateway_url = format!("https://{}", gateway.addr);
    let health = podctl.run(&["--json", "health", "--gateway", &gateway_url]).await.ok().json();
    assert_eq!(health, serde_json::json!({ "core": "SERVING", "gateway": "SERVING" }));
    let down = podctl.run(&["--endpoint", "https://127.0.0.1:1", "health"]).await;
    assert_eq!(down.code, 14, "{down:?}");
    assert!(down.stdout.contains("UNAVAILABLE"), "{down:?}");

    let rotated = podctl.run(&["--json", "sso", "rotate"]).await.ok().json();
    let version = rotated["key_version"].as_u64().unwrap();
    assert!(version >= 2, "a new key version: {rotated}");
    let rewrap = podctl.run(&["--json", "sso", "rewrap"]).await.ok().json();
    assert_eq!(rewrap["key_version"].as_u64(), Some(version));
    assert_eq!(rewrap["failed"], 0);
    let anonymous = podctl.run(&["--operator-token-file", password.to_str().unwrap(), "sso", "rotate"]).await;
    anonymous.fails(16, "UNAUTHENTICATED", "");
}

#[tokio::test]
async fn a_device_user_remembers_a_login_reads_a_form_and_logs_out() {
    let core = TestCore::builder().operator_token(OPERATOR_TOKEN).spawn().await.unwrap();
    let podctl = Podctl::new(&core, "mfd-lobby");
    let assertion = podctl.path("assertion.jwt");
    std::fs::write(&assertion, core.device_assertion("ana.silva").await).unwrap();
    let assertion = assertion.to_str().unwrap();

    // A session for a signed-in device user: nothing is remembered for her yet.
    let started = podctl.run(&["--json", "session", "start", "--assertion-file", assertion]).await.ok().json();
    assert_eq!(started["sso_available"], false, "{started}");

    // The form a person would fill in, field by field.
    let form = podctl.run(&["--json", "form", "classic-business-card"]).await.ok().json();
    let fields = form["fields"].as_array().unwrap();
    let name = fields.iter().find(|f| f["id"] == "name").unwrap_or_else(|| panic!("{form}"));
    assert_eq!(name["required"], true, "{form}");
    assert!(fields.iter().any(|f| f["type"] == "choice" && !f["options"].as_array().unwrap().is_empty()), "{form}");

    // Ana logs in with "remember me", then out; her next session at this printer knows her.
    let password = podctl.path("password");
    std::fs::write(&password, format!("{}\n", ANA.1)).unwrap();
    let login =
        podctl.run(&["--json", "login", ANA.0, "--password-file", password.to_str().unwrap(), "--remember"]).await;
    assert_eq!(login.ok().json()["remembered"], true);
    let out = podctl.run(&["--json", "logout"]).await.ok().json();
    assert_eq!(out, serde_json::json!({ "logged_out": true }));
    podctl.run(&["session", "close"]).await.ok();
    let again = podctl.run(&["--json", "session", "start", "--assertion-file", assertion]).await.ok().json();
    assert_eq!(again["sso_available"], true, "{again}");

    // A missing assertion file is one clear line, not a session without single sign-on.
    let missing = podctl.run(&["session", "start", "--assertion-file", "/no/such/assertion.jwt"]).await;
    assert_ne!(missing.code, 0, "{missing:?}");
    assert!(missing.stderr.contains("cannot read the assertion file"), "{missing:?}");
    assert_eq!(missing.stderr.lines().count(), 1, "{missing:?}");
}

#[tokio::test]
async fn print_plan_shows_how_cards_lay_out_on_sheets_and_writes_the_sheet_images() {
    let core = TestCore::builder().spawn().await.unwrap();
    let podctl = Podctl::new(&core, "mfd-podctl");
    podctl.run(&["session", "start"]).await.ok();
    let draft = podctl.finalized_card().await;
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("sheets");
    let args = ["print", &format!("--draft={draft}"), "--copies", "100", "--plan", "--sheet-previews"];
    let shown = podctl.run(&[&args[..], &[images.to_str().unwrap()]].concat()).await.ok();
    let first = shown.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("100 pieces on ") && first.contains("A4 sheets"), "{shown:?}");
    assert!(first.contains("one per sheet would take 100"), "the saving is shown: {shown:?}");
    for side in ["sheet-front.png", "sheet-back.png"] {
        let png = std::fs::read(images.join(side)).unwrap_or_else(|e| panic!("{side} written: {e} ({shown:?})"));
        assert_eq!(imagesize::blob_size(&png).expect("a PNG").width, 600);
    }

    let json = podctl.run(&["--json", "print", &format!("--draft={draft}"), "--copies", "100", "--plan"]).await.ok();
    let layout = &json.json()["layout"];
    assert_eq!((layout["imposed"].as_bool(), layout["pieces"].as_i64()), (Some(true), Some(100)), "{layout}");
    let per_sheet = layout["pieces_per_sheet"].as_u64().unwrap();
    assert_eq!(layout["sheet_count"].as_u64(), Some(100_u64.div_ceil(per_sheet)), "{layout}");
    podctl.run(&["session", "close"]).await.ok();
}
