//! `TcpProxy`: a TCP relay in front of a core, for faults a client must survive: refuse the next
//! connections (accepted, then closed at once), cut every open connection, or point at another
//! core (a restart on a new port). It counts the connections it accepted and refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct State {
    target: Mutex<SocketAddr>,
    accepted: AtomicUsize,
    refused: AtomicUsize,
    to_refuse: AtomicUsize,
    relays: Mutex<Vec<JoinHandle<()>>>,
}

/// A running relay; dropping it stops it and every connection through it.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Relays from a new loopback port to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            target: Mutex::new(target),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            to_refuse: AtomicUsize::new(0),
            relays: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(TcpProxy { addr, state, accept })
    }

    /// Accepts and at once closes the next `count` connections.
    pub fn refuse_next(&self, count: usize) {
        self.state.to_refuse.store(count, Ordering::SeqCst);
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Closes every connection relayed so far (both sides see it drop).
    pub fn cut(&self) {
        for relay in self.state.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    /// Relays new connections to another address.
    pub fn set_target(&self, target: SocketAddr) {
        *self.state.target.lock().unwrap() = target;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((inbound, _)) = listener.accept().await {
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let refuse = state.to_refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if refuse {
            state.refused.fetch_add(1, Ordering::SeqCst);
            drop(inbound);
            continue;
        }
        let target = *state.target.lock().unwrap();
        let relay = tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else { return };
            let mut inbound = inbound;
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
        state.relays.lock().unwrap().push(relay);
    }
}
