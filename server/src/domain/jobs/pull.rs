//! One-time pull links: a pulling printer fetches the sealed document once, within the link's
//! time and a few attempts, and only while the session that printed it is open (the document
//! lives in the session's scope; the link's index keeps only the token's hash).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Job, Jobs, PullLink};
use crate::domain::crypto::{Key256, random_bytes};
use crate::domain::ephemeral::EphemeralStore;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::records::now_ms;
use crate::domain::session::{Session, SessionManager};

/// Scope of one-time pull links, each named by the SHA-256 of its token and pointing to the
/// session that holds the document; the entry expires with the link.
const PULL_SCOPE: &str = "pull-links";
/// A link's document lives this much longer than the link, in the session's scope, so that when
/// the link expires the job can still tell whether it was fetched (gone) or not (still there).
const PULL_DOCUMENT_GRACE: Duration = Duration::from_secs(60);

/// Where a pull link's document is: the session that made it, and that session's record, which
/// must still be open for the link to work.
#[derive(Serialize, Deserialize)]
struct PullIndex {
    scope: String,
    record: String,
    /// Downloads that ended before the whole document was sent.
    attempts: u32,
    /// When the link stops working.
    expires_ms: u64,
}

/// Downloads of a pull link that may end early (a broken connection, a part asked for) before
/// the link is refused: a printer can retry, but not forever.
const MAX_PULL_ATTEMPTS: u32 = 8;

impl Jobs {
    /// Seals the PDF under a key derived from a fresh token and keeps it in the session's scope,
    /// so it goes with the session; the link's index keeps just the token's hash.
    pub(super) async fn create_pull_link(&self, session: &Session, job: &mut Job, pdf: &Bytes) -> CoreResult<PullLink> {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let name = hex::encode(Sha256::digest(token.as_bytes()));
        let ttl = self.deps.policy.pull_link_ttl;
        let sealed = pull_key(&token).seal(name.as_bytes(), pdf);
        self.deps.store.put(&session.scope(), &pull_document(&name), sealed, ttl + PULL_DOCUMENT_GRACE).await?;
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        let index =
            PullIndex { scope: session.scope(), record: session.record_name().to_owned(), attempts: 0, expires_ms };
        let index = postcard::to_allocvec(&index).map_err(|e| CoreError::internal("cannot store a pull link", e))?;
        self.deps.store.put(PULL_SCOPE, &name, index, ttl).await?;
        let expires_at = SystemTime::now() + ttl;
        job.pull_link = Some(name);
        job.pull_expires_ms = Some(expires_ms);
        Ok(PullLink { url: format!("{}/{token}.pdf", self.deps.pull_base_url), expires_at })
    }

    pub(super) async fn delete_pull_link(&self, session: &Session, name: &str) -> CoreResult<()> {
        self.deps.store.delete(PULL_SCOPE, name).await?;
        self.deps.store.delete(&session.scope(), &pull_document(name)).await?;
        Ok(())
    }

    /// For a retried SubmitJob: a new link in place of one that was not fetched yet.
    pub(super) async fn renew_pull_link(&self, session: &Session, job: &mut Job) -> CoreResult<Option<PullLink>> {
        let Some(old) = job.pull_link.clone() else { return Ok(None) };
        let unfetched = self.deps.store.get(&session.scope(), &pull_document(&old)).await?.is_some();
        if job.state.is_terminal() || !unfetched || job.pull_expires_ms.is_some_and(|t| t <= now_ms()) {
            return Ok(None);
        }
        self.delete_pull_link(session, &old).await?;
        let pdf = self.deps.customization.print_file_bytes(session, &job.file_id).await?;
        let link = self.create_pull_link(session, job, &pdf).await?;
        job.updated_ms = now_ms();
        self.save(session, job).await?;
        Ok(Some(link))
    }
}

/// Hands out the document behind a one-time pull link: until one download has sent all of it,
/// within the link's time and a few attempts, and only while the session that printed it is
/// open. One attempt at a time: while a download runs, the link answers nobody else.
pub struct PullLinks {
    store: Arc<dyn EphemeralStore>,
    sessions: Arc<SessionManager>,
}

/// One download attempt: the document, and the ticket `PullLinks::finish` takes to spend or
/// reopen the link.
pub struct PullDownload {
    pub pdf: Bytes,
    pub ticket: PullTicket,
}

/// Which link a download attempt holds.
pub struct PullTicket {
    name: String,
    index: PullIndex,
}

impl PullLinks {
    pub fn new(store: Arc<dyn EphemeralStore>, sessions: Arc<SessionManager>) -> Self {
        PullLinks { store, sessions }
    }

    /// Starts a download of the document behind `token`; `None` for a link that was used,
    /// expired, ran out of attempts, belongs to an ended job or session, or is being downloaded.
    pub async fn open(&self, token: &str) -> CoreResult<Option<PullDownload>> {
        if token.len() != 43 || URL_SAFE_NO_PAD.decode(token).is_err() {
            return Ok(None);
        }
        let name = hex::encode(Sha256::digest(token.as_bytes()));
        let Some(index) = self.store.take(PULL_SCOPE, &name).await? else { return Ok(None) };
        let index: PullIndex =
            postcard::from_bytes(&index).map_err(|e| CoreError::internal("a pull link is unreadable", e))?;
        if !self.sessions.is_record_open(&index.record).await? {
            // The person closed the app (or it expired): their file is no longer to be had.
            self.store.delete(&index.scope, &pull_document(&name)).await?;
            return Ok(None);
        }
        let Some(sealed) = self.store.get(&index.scope, &pull_document(&name)).await? else { return Ok(None) };
        let pdf = pull_key(token)
            .open(name.as_bytes(), &sealed)
            .map_err(|e| CoreError::internal("a pull link's document is unreadable", e))?;
        Ok(Some(PullDownload { pdf: Bytes::from(pdf), ticket: PullTicket { name, index } }))
    }

    /// Ends a download attempt. One that sent the whole document spends the link; another
    /// (the printer's connection broke, or it asked for a part) leaves it usable while attempts
    /// and time remain.
    pub async fn finish(&self, ticket: PullTicket, sent_all: bool) -> CoreResult<()> {
        let PullTicket { name, mut index } = ticket;
        if sent_all {
            self.store.delete(&index.scope, &pull_document(&name)).await?;
            return Ok(());
        }
        index.attempts += 1;
        let left = Duration::from_millis(index.expires_ms.saturating_sub(now_ms()));
        if index.attempts >= MAX_PULL_ATTEMPTS || left.is_zero() {
            // No more tries: the document stays until the link's time is up, so the job is
            // reported as never fetched.
            return Ok(());
        }
        let bytes = postcard::to_allocvec(&index).map_err(|e| CoreError::internal("cannot store a pull link", e))?;
        self.store.put(PULL_SCOPE, &name, bytes, left).await?;
        Ok(())
    }
}

/// The name of a pull link's document in its session's scope.
pub(super) fn pull_document(name: &str) -> String {
    format!("pull/{name}")
}

fn pull_key(token: &str) -> Key256 {
    let mut hasher = Sha256::new();
    hasher.update(b"podconnect/pull-link-key/v1/");
    hasher.update(token.as_bytes());
    Key256::from_bytes(hasher.finalize().into())
}
