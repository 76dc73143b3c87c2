//! `JobWatch`: PrintService.WatchJob as a `Stream` of job states that resumes after a dropped
//! connection (it calls WatchJob again, whose first message is the job as it is now) and never
//! yields the same moment of the job twice.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use proto::v1 as pb;
use proto::v1::print_service_client::PrintServiceClient;

use crate::client::{Auth, Client};
use crate::error::{Code, Error, Result};
use crate::types::Job;

/// The states of one job until it ends: each change once, the terminal state last, then the
/// stream ends. A dropped connection (`UNAVAILABLE`) is bridged by calling WatchJob again with
/// backoff, up to the builder's `watch_resumes` times in a row; any other status (the session
/// ended: `UNAUTHENTICATED`; no such job: `NOT_FOUND`) is yielded as the last item.
///
/// ```no_run
/// # async fn run(client: podconnect_client::Client) -> podconnect_client::Result<()> {
/// use futures::StreamExt as _;
///
/// let mut watch = client.watch_job("job-id");
/// while let Some(job) = watch.next().await {
///     let job = job?;
///     println!("{} {:?}", job.state.name(), job.pages_printed);
/// }
/// # Ok(()) }
/// ```
pub struct JobWatch {
    inner: BoxStream<'static, Result<Job>>,
}

impl std::fmt::Debug for JobWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobWatch")
    }
}

struct State {
    client: Client,
    job_id: String,
    stream: Option<tonic::Streaming<pb::WatchJobResponse>>,
    last: Option<Job>,
    failures: u32,
    max_resumes: u32,
    done: bool,
}

impl JobWatch {
    pub(crate) fn new(client: Client, job_id: String, max_resumes: u32) -> JobWatch {
        let state = State { client, job_id, stream: None, last: None, failures: 0, max_resumes, done: false };
        JobWatch { inner: Box::pin(futures::stream::unfold(state, next)) }
    }
}

impl Stream for JobWatch {
    type Item = Result<Job>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Whether a failed stream may be called again: the connection dropped or the core went away.
fn resumable(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled)
}

async fn next(mut st: State) -> Option<(Result<Job>, State)> {
    loop {
        if st.done {
            return None;
        }
        let stream = match st.stream.as_mut() {
            Some(stream) => stream,
            None => {
                let request =
                    match st.client.request(pb::WatchJobRequest { job_id: st.job_id.clone() }, Auth::Session, None) {
                        Ok(request) => request,
                        Err(error) => return finish(st, error),
                    };
                match PrintServiceClient::new(st.client.channel()).watch_job(request).await {
                    Ok(response) => st.stream.insert(response.into_inner()),
                    Err(status) => {
                        if resumable(&status) && st.failures < st.max_resumes {
                            back_off(&mut st).await;
                            continue;
                        }
                        return finish(st, status.into());
                    }
                }
            }
        };
        match stream.message().await {
            Ok(Some(message)) => {
                st.failures = 0;
                let Some(job) = message.job else { continue };
                let job = Job::from(job);
                st.done = job.state.is_terminal();
                if st.last.as_ref().is_some_and(|last| last.same_moment(&job)) {
                    continue;
                }
                st.last = Some(job.clone());
                return Some((Ok(job), st));
            }
            Ok(None) => {
                // The core ends a stream after the terminal state; ending earlier means it went
                // away (e.g. shut down), so ask again.
                st.stream = None;
                if st.failures >= st.max_resumes {
                    let error =
                        Error::Status { code: Code::Unavailable, message: "the job's stream kept ending early".into() };
                    return finish(st, error);
                }
                back_off(&mut st).await;
            }
            Err(status) => {
                st.stream = None;
                if resumable(&status) && st.failures < st.max_resumes {
                    back_off(&mut st).await;
                    continue;
                }
                return finish(st, status.into());
            }
        }
    }
}

async fn back_off(st: &mut State) {
    tokio::time::sleep(st.client.inner.retry.backoff(st.failures)).await;
    st.failures += 1;
}

fn finish(mut st: State, error: Error) -> Option<(Result<Job>, State)> {
    st.done = true;
    Some((Err(error), st))
}
