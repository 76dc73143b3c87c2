//! The embedded storefront's accounts: `accounts.toml` with argon2id password hashes, and the
//! groups that give an account its own assortment and prices. Passwords are checked off the async
//! threads, a bounded number at a time, and an unknown user name costs as much as a wrong password.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::domain::catalog::Account;
use crate::domain::error::{CoreError, CoreResult};
use crate::storefront::embedded::read_toml;
use crate::storefront::files::StorefrontFiles;

/// The accounts file inside a storefront folder; optional (no file, no accounts).
pub const ACCOUNTS_FILE: &str = "accounts.toml";

/// Password checks running at once: each takes about 20 MiB and tens of milliseconds of one core,
/// so a burst of logins must not starve rendering or exhaust memory.
const MAX_CONCURRENT_CHECKS: usize = 2;
/// How long a login waits for a free check before it is refused as busy.
const CHECK_WAIT: Duration = Duration::from_secs(5);
/// The weakest hash accepted: OWASP's argon2id minimum (19 MiB, 2 passes).
const MIN_MEMORY_KIB: u32 = 19 * 1024;
const MIN_PASSES: u32 = 2;

/// The one answer to a wrong user name or password: it never says which was wrong.
pub const REFUSED: &str = "the user name or password is not right; check both and try again";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    #[serde(default, rename = "account")]
    accounts: Vec<AccountFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    id: String,
    username: String,
    display_name: String,
    /// An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    password_hash: String,
    #[serde(default)]
    groups: Vec<String>,
}

struct Entry {
    account: Account,
    password_hash: String,
}

/// The storefront's accounts, loaded and checked once at start-up.
pub struct Accounts {
    /// By lower-cased user name (user names are e-mail addresses, compared without case).
    by_username: HashMap<String, Entry>,
    /// Group ids by account id.
    groups: HashMap<String, Vec<String>>,
    /// Checked against when the user name is unknown, so both cost the same.
    decoy_hash: String,
    checks: Arc<Semaphore>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").field("count", &self.by_username.len()).finish_non_exhaustive()
    }
}

impl Accounts {
    /// Reads `accounts.toml` (if the storefront has one). `known_groups` are the group ids the
    /// storefront declares; an account naming another is an error naming the file.
    pub fn load(files: &StorefrontFiles, known_groups: &[String]) -> anyhow::Result<Self> {
        let shown = files.shown(ACCOUNTS_FILE);
        let file: AccountsFile = if files.exists(ACCOUNTS_FILE) {
            read_toml(files, ACCOUNTS_FILE)?
        } else {
            AccountsFile { accounts: Vec::new() }
        };
        let mut by_username = HashMap::new();
        let mut groups = HashMap::new();
        for account in file.accounts {
            let at = format!("{shown}: account \"{}\"", account.id);
            ensure!(
                !account.id.is_empty()
                    && account.id.len() <= 64
                    && account.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
                "{at}: id must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'"
            );
            let username = account.username.trim().to_lowercase();
            ensure!(
                !username.is_empty() && username.chars().count() <= 256,
                "{at}: username must be 1 to 256 characters"
            );
            ensure!(!account.display_name.trim().is_empty(), "{at}: display_name must not be empty");
            check_hash(&account.password_hash).with_context(|| format!("{at}: password_hash"))?;
            for group in &account.groups {
                ensure!(known_groups.contains(group), "{at}: group \"{group}\" is not declared in storefront.toml");
            }
            ensure!(!groups.contains_key(&account.id), "{at}: id declared twice");
            groups.insert(account.id.clone(), account.groups);
            let entry = Entry {
                account: Account { id: account.id, display_name: account.display_name },
                password_hash: account.password_hash,
            };
            ensure!(by_username.insert(username, entry).is_none(), "{at}: username used by another account");
        }
        Ok(Accounts {
            by_username,
            groups,
            decoy_hash: decoy_hash(),
            checks: Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS)),
        })
    }

    pub fn len(&self) -> usize {
        self.by_username.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_username.is_empty()
    }

    /// The groups of an account (empty for an unknown one).
    pub fn groups(&self, account_id: &str) -> &[String] {
        self.groups.get(account_id).map_or(&[], Vec::as_slice)
    }

    /// Checks a user name and password.
    pub async fn login(&self, username: &str, password: &str) -> CoreResult<Account> {
        let entry = self.by_username.get(&username.trim().to_lowercase());
        let hash = entry.map_or(self.decoy_hash.clone(), |e| e.password_hash.clone());
        let password = zeroize::Zeroizing::new(password.to_owned());
        let permit = tokio::time::timeout(CHECK_WAIT, self.checks.clone().acquire_owned())
            .await
            .map_err(|_| {
                CoreError::Unavailable(
                    "the storefront is busy checking other logins; try again in a few seconds".into(),
                )
            })?
            .map_err(|e| CoreError::internal("the password checks stopped", e))?;
        let matches = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify(&hash, password.as_bytes())
        })
        .await
        .map_err(|e| CoreError::internal("a password check failed", e))?;
        match (entry, matches) {
            (Some(entry), true) => Ok(entry.account.clone()),
            _ => Err(CoreError::PermissionDenied(REFUSED.into())),
        }
    }
}

fn verify(hash: &str, password: &[u8]) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
}

/// Accepts only argon2id hashes at least as strong as OWASP's minimum.
fn check_hash(hash: &str) -> anyhow::Result<()> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| anyhow::anyhow!("not a PHC string ({e}); make one with `podconnect-server hash-password`"))?;
    ensure!(
        parsed.algorithm.as_str() == Algorithm::Argon2id.ident().as_str(),
        "must be argon2id, not {}",
        parsed.algorithm
    );
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("unreadable argon2 parameters: {e}"))?;
    ensure!(
        params.m_cost() >= MIN_MEMORY_KIB && params.t_cost() >= MIN_PASSES,
        "too weak: at least m={MIN_MEMORY_KIB} (KiB) and t={MIN_PASSES} are required"
    );
    ensure!(parsed.hash.is_some() && parsed.salt.is_some(), "has no salt or no hash");
    Ok(())
}

/// An argon2id hash of a random password, with the default (OWASP) parameters the sample's
/// hashes use, so an unknown user name takes as long to refuse as a wrong password.
fn decoy_hash() -> String {
    hash_password(&crate::domain::crypto::random_bytes::<16>()).expect("argon2 hashing of 16 bytes cannot fail")
}

/// An argon2id PHC string for `password` with a fresh salt (the `hash-password` command).
pub fn hash_password(password: &[u8]) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(toml: &str) -> anyhow::Result<Accounts> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ACCOUNTS_FILE), toml).unwrap();
        Accounts::load(&StorefrontFiles::Folder(dir.path().to_path_buf()), &["trade".to_owned()])
    }

    fn one_account(hash: &str, groups: &str) -> String {
        format!(
            "[[account]]\nid = \"ana\"\nusername = \"Ana@Example.com\"\ndisplay_name = \"Ana Silva\"\n\
             password_hash = \"{hash}\"\ngroups = {groups}\n"
        )
    }

    #[tokio::test]
    async fn right_password_logs_in_and_user_names_ignore_case() {
        let hash = hash_password(b"correct horse").unwrap();
        let accounts = accounts(&one_account(&hash, "[\"trade\"]")).unwrap();
        let account = accounts.login("  ana@EXAMPLE.com ", "correct horse").await.unwrap();
        assert_eq!(account.display_name, "Ana Silva");
        assert_eq!(accounts.groups(&account.id), ["trade".to_owned()]);
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_get_the_same_answer() {
        let hash = hash_password(b"correct horse").unwrap();
        let accounts = accounts(&one_account(&hash, "[]")).unwrap();
        let wrong = accounts.login("ana@example.com", "battery staple").await.unwrap_err();
        let unknown = accounts.login("bob@example.com", "correct horse").await.unwrap_err();
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert!(matches!(wrong, CoreError::PermissionDenied(_)), "{wrong:?}");
        assert!(!wrong.to_string().contains("ana"), "the message names nobody");
    }

    #[test]
    fn weak_or_foreign_hashes_and_unknown_groups_are_refused_at_start() {
        // argon2i, and argon2id below the minimum memory.
        let argon2i =
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let weak = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for (hash, says) in [(argon2i, "argon2id"), (weak, "too weak"), ("plaintext", "PHC")] {
            let err = format!("{:#}", accounts(&one_account(hash, "[]")).expect_err("refused"));
            assert!(err.contains(says) && err.contains("account \"ana\""), "{err}");
        }
        let hash = hash_password(b"x").unwrap();
        let err = format!("{:#}", accounts(&one_account(&hash, "[\"vip\"]")).expect_err("refused"));
        assert!(err.contains("group \"vip\""), "{err}");
    }
}
