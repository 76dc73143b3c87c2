//! Benchmarks of the SSO manager: seal and open of one stored credential (throughput per core),
//! and a rewrap of 100,000 vault entries after a key rotation.
//! Run: `cargo bench -p sso --bench sso`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sso::{Credentials, KeyPolicy, Keyring, Purpose, SsoManager};
use vault::{MemoryVault, VaultAddress};
use zeroize::Zeroizing;

/// A typical stored credential: an e-mail address and a 20-character password, as JSON.
const PLAINTEXT: &[u8] = br#"{"username":"ana.silva@example.com","password":"correct-horse-battery"}"#;
const REWRAP_ENTRIES: u32 = 100_000;

fn keyring(dir: &tempfile::TempDir) -> Keyring {
    Keyring::load_or_create(dir.path().join("keys.json"), KeyPolicy::default()).expect("a key file")
}

fn address(n: u32) -> VaultAddress {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    VaultAddress::from_bytes(bytes)
}

fn seal_and_open(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = keyring(&dir);
    let owner = address(1);
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal", |b| b.iter(|| keyring.seal(Purpose::StorefrontCredentials, &owner, PLAINTEXT)));
    let sealed = keyring.seal(Purpose::StorefrontCredentials, &owner, PLAINTEXT).unwrap();
    group.bench_function("open", |b| b.iter(|| keyring.open(Purpose::StorefrontCredentials, &owner, &sealed)));
    group.finish();
}

/// Stores `REWRAP_ENTRIES` credentials under version 1, rotates, and times one rewrap of all.
fn rewrap(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut group = c.benchmark_group("rewrap");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(u64::from(REWRAP_ENTRIES)));
    group.bench_function("100k_entries", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let manager = SsoManager::new(Arc::new(keyring(&dir)), Arc::new(MemoryVault::new()));
                let credentials = Credentials {
                    username: "ana.silva@example.com".into(),
                    password: Zeroizing::new("correct-horse-battery".into()),
                };
                runtime.block_on(async {
                    for n in 0..REWRAP_ENTRIES {
                        manager.store(&address(n), &credentials).await.unwrap();
                    }
                    manager.rotate_key().await.unwrap();
                });
                (dir, manager)
            },
            |(_dir, manager)| {
                let started = Instant::now();
                let report = runtime.block_on(manager.rewrap()).unwrap();
                assert_eq!(report.rewrapped, u64::from(REWRAP_ENTRIES));
                started.elapsed()
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, seal_and_open, rewrap);
criterion_main!(benches);
