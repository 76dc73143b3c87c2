//! The key file: created private, refused when others may read it, rotation and the minimum
//! version kept across reopening, a broken file named in a clear error that quotes no key.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use sso::{KeyPolicy, Keyring, Purpose, SsoError};

use crate::support::{KeyDir, owner, read_only_keyring};

fn key_file_json(dir: &KeyDir) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.key_file()).expect("key file")).expect("JSON")
}

fn key_file_error(dir: &KeyDir) -> String {
    match Keyring::load_or_create(dir.key_file(), KeyPolicy::default()) {
        Err(SsoError::KeyFile(message)) => message,
        other => panic!("expected a key file error, got {other:?}"),
    }
}

#[test]
fn key_file_is_created_private_with_version_1() {
    let dir = KeyDir::new();
    let keyring = dir.keyring(KeyPolicy::default());
    let mode = fs::metadata(dir.key_file()).expect("created").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!((keyring.latest_version(), keyring.min_decryption_version()), (1, 1));

    let json = key_file_json(&dir);
    assert_eq!(json["format"], 1);
    assert_eq!(json["min_decryption_version"], 1);
    assert_eq!(json["address_key"].as_str().map(str::len), Some(64));
    let v1 = &json["versions"][0];
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["key"].as_str().map(str::len), Some(64));
    assert_ne!(v1["key"], json["address_key"], "the address key is a key of its own");
    assert!(v1["created"].as_str().is_some_and(|t| t.contains('T')), "RFC 3339 time: {}", v1["created"]);
    // No temporary file is left beside it.
    assert_eq!(fs::read_dir(dir.key_file().parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn key_file_others_can_read_is_refused() {
    let dir = KeyDir::new();
    drop(dir.keyring(KeyPolicy::default()));
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(dir.key_file(), fs::Permissions::from_mode(mode)).unwrap();
        let message = key_file_error(&dir);
        assert!(message.contains(&dir.key_file().display().to_string()), "names the file: {message}");
        assert!(message.contains("chmod 600"), "says how to fix it: {message}");
    }
    fs::set_permissions(dir.key_file(), fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Keyring::load_or_create(dir.key_file(), KeyPolicy::default()).is_ok());
}

#[test]
fn rotation_and_minimum_persist_across_reopen() {
    let dir = KeyDir::new();
    let keyring = dir.keyring(KeyPolicy::default());
    let under_v1 = keyring.seal(Purpose::StorefrontCredentials, &owner(1), b"one").unwrap();
    let v2 = keyring.rotate().unwrap();
    assert_eq!(v2.version, 2);
    let under_v2 = keyring.seal(Purpose::StorefrontCredentials, &owner(1), b"two").unwrap();
    keyring.set_min_decryption_version(2).unwrap();
    let versions = keyring.key_versions();
    drop(keyring);

    let reopened = dir.keyring(KeyPolicy::default());
    assert_eq!((reopened.latest_version(), reopened.min_decryption_version()), (2, 2));
    assert_eq!(reopened.key_versions(), versions, "versions and their created times survive");
    assert_eq!(reopened.open(Purpose::StorefrontCredentials, &owner(1), &under_v2).unwrap().as_slice(), b"two");
    reopened.set_min_decryption_version(1).unwrap();
    assert_eq!(reopened.open(Purpose::StorefrontCredentials, &owner(1), &under_v1).unwrap().as_slice(), b"one");
    assert_eq!(fs::metadata(dir.key_file()).unwrap().permissions().mode() & 0o777, 0o600, "rewritten 0600");
}

#[test]
fn minimum_outside_the_versions_is_refused() {
    let dir = KeyDir::new();
    let keyring = dir.keyring(KeyPolicy::default());
    keyring.rotate().unwrap();
    for bad in [0, 3, u32::MAX] {
        assert!(matches!(keyring.set_min_decryption_version(bad), Err(SsoError::InvalidVersion(_))), "{bad}");
    }
    assert_eq!(keyring.min_decryption_version(), 1);
}

#[test]
fn corrupt_key_file_is_a_clear_error() {
    let dir = KeyDir::new();
    drop(dir.keyring(KeyPolicy::default()));
    let good = key_file_json(&dir);
    let secret = good["versions"][0]["key"].as_str().unwrap().to_string();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not JSON", b"this is not json".to_vec()),
        ("cut short", serde_json::to_vec(&good).unwrap()[..40].to_vec()),
    ];
    let mut edit = |name: &'static str, change: &dyn Fn(&mut serde_json::Value)| {
        let mut doc = good.clone();
        change(&mut doc);
        cases.push((name, serde_json::to_vec(&doc).unwrap()));
    };
    edit("unknown format", &|d| d["format"] = 2.into());
    edit("short key", &|d| d["versions"][0]["key"] = "abcd".into());
    edit("short address key", &|d| d["address_key"] = "00".into());
    edit("version gap", &|d| d["versions"][0]["version"] = 2.into());
    edit("minimum too high", &|d| d["min_decryption_version"] = 2.into());
    edit("no versions", &|d| d["versions"] = serde_json::json!([]));
    edit("bad time", &|d| d["versions"][0]["created"] = "yesterday".into());
    // A key where a number belongs: serde's own message would quote it.
    let secret_in_wrong_place = secret.clone();
    edit("key in a number field", &move |d| d["format"] = secret_in_wrong_place.clone().into());

    for (name, bytes) in cases {
        fs::write(dir.key_file(), bytes).unwrap();
        let message = key_file_error(&dir);
        assert!(message.contains(&dir.key_file().display().to_string()), "{name}: names the file: {message}");
        assert!(!message.contains(&secret), "{name}: quotes no key: {message}");
    }
}

#[test]
fn read_only_keyring_refuses_changes() {
    let keyring = read_only_keyring(2, KeyPolicy::default());
    assert!(keyring.is_read_only());
    assert!(matches!(keyring.rotate(), Err(SsoError::ReadOnly)));
    assert!(matches!(keyring.set_min_decryption_version(2), Err(SsoError::ReadOnly)));
    let sealed = keyring.seal(Purpose::StorefrontCredentials, &owner(1), b"x").unwrap();
    assert_eq!(sso::envelope::key_version(&sealed), Some(2));
    assert_eq!(keyring.open(Purpose::StorefrontCredentials, &owner(1), &sealed).unwrap().as_slice(), b"x");
}

#[test]
fn debug_output_shows_no_key() {
    let dir = KeyDir::new();
    let keyring = dir.keyring(KeyPolicy::default());
    let json = key_file_json(&dir);
    let debug = format!("{keyring:?}");
    for secret in [&json["address_key"], &json["versions"][0]["key"]] {
        assert!(!debug.contains(secret.as_str().unwrap()), "{debug}");
    }
    assert!(debug.contains("redacted"), "{debug}");
}
