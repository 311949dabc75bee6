//! A TCP proxy in front of a real service (PostgreSQL, Redis) that a test can
//! cut, pause and restore, to simulate an outage without touching the
//! service itself (other tests keep using it in parallel).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Live connections were closed; new ones are accepted and closed at once.
    Refuse,
    /// Nothing moves: live connections stay open but bytes are swallowed,
    /// new connections are accepted and never answered (a paused server or
    /// a silent network partition).
    Blackhole,
}

struct Ctl {
    mode: Mode,
    /// When the client sends these bytes, switch to this mode (the bytes are
    /// not forwarded).
    trigger: Option<(Vec<u8>, Mode)>,
    fired: bool,
}

struct Inner {
    upstream: SocketAddr,
    ctl: Mutex<Ctl>,
    /// Bumped to close every live connection.
    generation: watch::Sender<u64>,
}

impl Inner {
    fn mode(&self) -> Mode {
        self.ctl.lock().expect("proxy lock").mode
    }

    fn set(&self, mode: Mode, close_live: bool) {
        self.ctl.lock().expect("proxy lock").mode = mode;
        if close_live {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Does `seen` (the previous tail plus this chunk) fire the trigger? If
    /// so, switch modes: the chunk is never forwarded.
    fn fires(&self, seen: &[u8]) -> bool {
        let mut ctl = self.ctl.lock().expect("proxy lock");
        let hit = ctl
            .trigger
            .as_ref()
            .is_some_and(|(p, _)| seen.windows(p.len()).any(|w| w == p.as_slice()));
        if !hit {
            return false;
        }
        let (_, mode) = ctl.trigger.take().expect("armed");
        ctl.fired = true;
        ctl.mode = mode;
        drop(ctl);
        if mode == Mode::Refuse {
            self.generation.send_modify(|g| *g += 1);
        }
        true
    }
}

/// A running proxy; stops (closing every connection) when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listen on an ephemeral loopback port and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let inner = Arc::new(Inner {
            upstream,
            ctl: Mutex::new(Ctl {
                mode: Mode::Open,
                trigger: None,
                fired: false,
            }),
            generation: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(listener, inner.clone()));
        Proxy { addr, inner, task }
    }

    /// Close every live connection and refuse new ones.
    pub fn cut(&self) {
        self.inner.set(Mode::Refuse, true);
    }

    /// Stop moving bytes, keeping connections open.
    pub fn blackhole(&self) {
        self.inner.set(Mode::Blackhole, false);
    }

    /// Forward again. Connections held through a blackhole are closed (the
    /// client has given up on them by now).
    pub fn restore(&self) {
        let was = self.inner.mode();
        self.inner.set(Mode::Open, was == Mode::Blackhole);
    }

    /// Cut (as [`Proxy::cut`]) the moment a client sends `pattern`, without
    /// forwarding it: a failure at an exact point of a protocol exchange.
    pub fn cut_when_client_sends(&self, pattern: &[u8]) {
        self.arm(pattern, Mode::Refuse);
    }

    /// Go silent (as [`Proxy::blackhole`]) the moment a client sends
    /// `pattern`, swallowing it: the server "pauses" mid-exchange.
    pub fn blackhole_when_client_sends(&self, pattern: &[u8]) {
        self.arm(pattern, Mode::Blackhole);
    }

    fn arm(&self, pattern: &[u8], mode: Mode) {
        let mut ctl = self.inner.ctl.lock().expect("proxy lock");
        ctl.trigger = Some((pattern.to_vec(), mode));
        ctl.fired = false;
    }

    /// Has the armed trigger fired?
    pub fn fired(&self) -> bool {
        self.inner.ctl.lock().expect("proxy lock").fired
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    // Owned here: aborting this task drops the set, which ends every connection.
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        conns.spawn(serve(inner.clone(), client));
    }
}

async fn serve(inner: Arc<Inner>, client: TcpStream) {
    // Subscribe before looking at the mode, so a cut in between is seen.
    let mut generation = inner.generation.subscribe();
    generation.mark_unchanged();
    match inner.mode() {
        Mode::Refuse => return,
        Mode::Blackhole => {
            let _ = generation.changed().await;
            return;
        }
        Mode::Open => {}
    }
    let Ok(upstream) = TcpStream::connect(inner.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    tokio::select! {
        _ = pump(&inner, cr, uw, true) => {}
        _ = pump(&inner, ur, cw, false) => {}
        _ = generation.changed() => {}
    }
}

/// Copy one direction until EOF, an error, or the connection is cut.
async fn pump(inner: &Inner, mut from: OwnedReadHalf, mut to: OwnedWriteHalf, from_client: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a trigger split across reads is seen.
    let mut seen: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if inner.mode() == Mode::Blackhole {
            // Swallow everything until the connection is closed by `restore`.
            std::future::pending::<()>().await;
        }
        if from_client {
            seen.extend_from_slice(&buf[..n]);
            if inner.fires(&seen) {
                std::future::pending::<()>().await;
            }
            let keep = seen.len().min(64);
            seen.drain(..seen.len() - keep);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
