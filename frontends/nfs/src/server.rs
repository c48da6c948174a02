//! The TCP server: one listener, and per connection a reader thread (records in, calls
//! dispatched to the session without waiting for their answers) and a writer thread (replies
//! out, in whatever order core answers them, matched by xid). A slow call never holds up the
//! others on its connection; the number of calls in flight per connection is bounded, so a
//! client that never reads its replies cannot grow the server's memory without limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Condvar, Mutex};

use hfm_core::Caller;

use crate::mount::{self, MountCall};
use crate::nfs3::{self, BadCall, Call};
use crate::portmap;
use crate::rpc::{self, Credential, Incoming, ReplyStat};
use crate::session::{Session, MAX_IO};
use crate::xdr::{decode_all, Xdr};

/// Largest record accepted: a full-size WRITE and its headers.
pub const MAX_RECORD: usize = MAX_IO as usize + 64 * 1024;
/// Calls one connection may have in flight.
const MAX_IN_FLIGHT: usize = 256;

pub struct ServerConfig {
    /// Serve clients whose source port is not privileged (below 1024).
    pub insecure_ports: bool,
    /// The caller of AUTH_NONE calls.
    pub anonymous: Caller,
}

pub struct Server {
    listener: TcpListener,
    session: Arc<Session>,
    config: Arc<ServerConfig>,
}

impl Server {
    pub fn bind(addr: SocketAddr, session: Arc<Session>, config: ServerConfig) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        Ok(Server { listener, session, config: Arc::new(config) })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept connections until the process ends.
    pub fn serve(self) {
        let port = self.local_addr().map_or(0, |a| a.port());
        for stream in self.listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("nfs: accept: {e}");
                    continue;
                }
            };
            let peer = match stream.peer_addr() {
                Ok(p) => p,
                Err(_) => continue,
            };
            if !self.config.insecure_ports && peer.port() >= 1024 {
                tracing::warn!(
                    "nfs: refused a connection from {peer}: not a privileged port (--nfs-insecure-port serves such clients)"
                );
                continue;
            }
            let (session, config) = (self.session.clone(), self.config.clone());
            let spawned = std::thread::Builder::new()
                .name("nfs-conn".into())
                .spawn(move || Connection::run(stream, peer, port, session, config));
            if let Err(e) = spawned {
                tracing::warn!("nfs: cannot start a connection thread: {e}");
            }
        }
    }
}

/// Counts calls in flight; the reader waits while the bound is reached.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    freed: Condvar,
}

impl InFlight {
    fn acquire(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_IN_FLIGHT {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    fn release(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.freed.notify_one();
    }
}

struct Connection {
    peer: SocketAddr,
    port: u16,
    session: Arc<Session>,
    config: Arc<ServerConfig>,
    replies: mpsc::Sender<Vec<u8>>,
    in_flight: Arc<InFlight>,
}

impl Connection {
    fn run(stream: TcpStream, peer: SocketAddr, port: u16, session: Arc<Session>, config: Arc<ServerConfig>) {
        let _ = stream.set_nodelay(true);
        let Ok(mut writer) = stream.try_clone() else { return };
        let (replies, outbox) = mpsc::channel::<Vec<u8>>();
        let in_flight = Arc::new(InFlight::default());
        let written = in_flight.clone();
        let writer_thread = std::thread::Builder::new().name("nfs-reply".into()).spawn(move || {
            for reply in outbox {
                let ok = writer.write_all(&rpc::frame(&reply)).is_ok();
                written.release();
                if !ok {
                    break;
                }
            }
            let _ = writer.shutdown(std::net::Shutdown::Both);
        });
        if writer_thread.is_err() {
            return;
        }
        tracing::debug!("nfs: connection from {peer}");
        let conn = Connection { peer, port, session, config, replies, in_flight };
        conn.read_loop(stream);
        tracing::debug!("nfs: {peer} disconnected");
    }

    fn read_loop(&self, mut stream: TcpStream) {
        let mut records = rpc::Records::new(MAX_RECORD);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            records.feed(&buf[..n]);
            loop {
                match records.next_record() {
                    Ok(Some(record)) => {
                        if !self.call(&record) {
                            tracing::warn!("nfs: {} sent something that is not RPC; closing", self.peer);
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(rpc::RecordTooLarge(n)) => {
                        tracing::warn!("nfs: {} sent a record of {n} bytes (limit {MAX_RECORD}); closing", self.peer);
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
            }
        }
    }

    /// Dispatch one record; false if it is not RPC at all.
    fn call(&self, record: &[u8]) -> bool {
        let (xid, body, args) = match rpc::parse_incoming(record) {
            Incoming::Call { xid, body, args } => (xid, body, args),
            Incoming::NotACall => return true,
            Incoming::Garbage => return false,
        };
        self.in_flight.acquire();
        let refuse = |stat: ReplyStat| self.send(rpc::reply(xid, stat));
        if body.rpcvers != rpc::RPC_VERSION {
            refuse(ReplyStat::RpcMismatch { low: 2, high: 2 });
            return true;
        }
        let caller = match body.cred.credential() {
            Ok(Credential::Sys(sys)) => Caller { uid: sys.uid, gid: sys.gid, groups: sys.gids },
            Ok(Credential::None) => self.config.anonymous.clone(),
            Err(stat) => {
                refuse(ReplyStat::AuthError(stat));
                return true;
            }
        };
        let (prog, vers, procedure) = (body.prog, body.vers, body.proc_);
        tracing::debug!("nfs: {} xid {xid:#x}: program {prog} v{vers} procedure {procedure}", self.peer);
        match prog {
            nfs3::PROGRAM if vers != nfs3::VERSION => refuse(ReplyStat::ProgMismatch { low: 3, high: 3 }),
            nfs3::PROGRAM => match Call::decode(procedure, args) {
                Ok(call) => self.session.nfs(caller, call, self.responder(xid)),
                Err(BadCall::NoSuchProcedure) => refuse(ReplyStat::ProcUnavail),
                Err(BadCall::Garbage) => refuse(ReplyStat::GarbageArgs),
            },
            mount::PROGRAM if vers != mount::VERSION => refuse(ReplyStat::ProgMismatch { low: 3, high: 3 }),
            mount::PROGRAM => match MountCall::decode(procedure, args) {
                Ok(call) => {
                    tracing::debug!("nfs: {} mount call {call:?}", self.peer);
                    let respond = self.responder(xid);
                    self.session.mount(caller, &self.peer.ip().to_string(), call, respond);
                }
                Err(BadCall::NoSuchProcedure) => refuse(ReplyStat::ProcUnavail),
                Err(BadCall::Garbage) => refuse(ReplyStat::GarbageArgs),
            },
            portmap::PROGRAM if vers != portmap::VERSION => refuse(ReplyStat::ProgMismatch { low: 2, high: 2 }),
            portmap::PROGRAM => match procedure {
                portmap::PROC_NULL if args.is_empty() => self.success(xid, &[]),
                portmap::PROC_GETPORT => match decode_all::<portmap::Mapping>(args) {
                    Some(m) => self.success(xid, &portmap::getport(&m, self.port).to_bytes()),
                    None => refuse(ReplyStat::GarbageArgs),
                },
                portmap::PROC_NULL => refuse(ReplyStat::GarbageArgs),
                _ => refuse(ReplyStat::ProcUnavail),
            },
            _ => refuse(ReplyStat::ProgUnavail),
        }
        true
    }

    /// Where the session puts the results of call `xid`, from whichever thread answers it.
    fn responder(&self, xid: u32) -> crate::session::Respond {
        let replies = self.replies.clone();
        let in_flight = self.in_flight.clone();
        Box::new(move |results: Vec<u8>| {
            let mut out = rpc::reply(xid, ReplyStat::Success);
            out.extend_from_slice(&results);
            if replies.send(out).is_err() {
                in_flight.release();
            }
        })
    }

    fn success(&self, xid: u32, results: &[u8]) {
        let mut out = rpc::reply(xid, ReplyStat::Success);
        out.extend_from_slice(results);
        self.send(out);
    }

    fn send(&self, reply: Vec<u8>) {
        if self.replies.send(reply).is_err() {
            self.in_flight.release();
        }
    }
}
