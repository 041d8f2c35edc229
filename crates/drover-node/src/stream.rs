//! Byte streams multiplexed over one connection, with credit-based flow control.
//!
//! A sender may have [`WINDOW`] chunks of a stream in flight; the receiver grants one more with
//! a [`Frame::Credit`] each time its reader takes a chunk. The receiver's queue holds exactly the
//! window, so a peer that sends past its credit has the stream cut off instead of blocking the
//! connection or growing memory: a multi-GiB image never sits in memory.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, Semaphore};

use crate::wire::{Frame, CHUNK, WINDOW};

/// The sending half of a connection's outgoing frames.
pub(crate) type Out = mpsc::UnboundedSender<Frame>;

/// What a stream's receiver gets.
pub(crate) enum Chunk {
    /// Bytes.
    Data(Vec<u8>),
    /// The sender's side ended cleanly.
    End,
    /// The sender's side failed.
    Abort(String),
}

struct Entry {
    incoming: mpsc::Sender<Chunk>,
    credit: Arc<Semaphore>,
}

/// The open streams of one connection.
#[derive(Default)]
pub(crate) struct Streams {
    map: Mutex<HashMap<u64, Entry>>,
}

impl Streams {
    /// Opens stream `id`: the receiver of its incoming chunks and the credit for sending on it.
    pub(crate) fn open(&self, id: u64) -> (mpsc::Receiver<Chunk>, Arc<Semaphore>) {
        let (tx, rx) = mpsc::channel(WINDOW as usize + 1);
        let credit = Arc::new(Semaphore::new(WINDOW as usize));
        let entry = Entry {
            incoming: tx,
            credit: credit.clone(),
        };
        self.lock().insert(id, entry);
        (rx, credit)
    }

    /// Forgets stream `id`; its sender stops and its reader sees the stream cut off.
    pub(crate) fn close(&self, id: u64) {
        if let Some(e) = self.lock().remove(&id) {
            e.credit.close();
        }
    }

    /// Forgets every stream (the connection is gone).
    pub(crate) fn clear(&self) {
        for (_, e) in self.lock().drain() {
            e.credit.close();
        }
    }

    /// Delivers a chunk from the peer. Chunks of unknown streams are dropped (the stream was
    /// closed here); the stream is forgotten after its last chunk; a peer that overruns its
    /// window has the stream closed.
    pub(crate) fn deliver(&self, id: u64, chunk: Chunk) {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(&id) else {
            return;
        };
        let tx = &entry.incoming;
        let last = !matches!(chunk, Chunk::Data(_));
        if tx.try_send(chunk).is_err() {
            tracing::warn!(stream = id, "peer overran its stream window; stream closed");
            if let Some(e) = map.remove(&id) {
                e.credit.close();
            }
            return;
        }
        if last {
            map.remove(&id);
        }
    }

    /// Grants the sender of stream `id` more chunks, never more than a window in all.
    pub(crate) fn credit(&self, id: u64, chunks: u32) {
        if let Some(e) = self.lock().get(&id) {
            let room = (WINDOW as usize).saturating_sub(e.credit.available_permits());
            e.credit.add_permits(room.min(chunks as usize));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends everything `src` yields as stream `id`, waiting for credit, then ends the stream
/// ([`Frame::End`], or [`Frame::Abort`] when `src` fails).
pub(crate) async fn send_all(
    id: u64,
    mut src: impl AsyncRead + Unpin,
    out: &Out,
    credit: &Semaphore,
) -> io::Result<()> {
    let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "stream closed");
    let mut buf = vec![0; CHUNK];
    loop {
        let n = match src.read(&mut buf).await {
            Ok(0) => {
                out.send(Frame::End { stream: id }).map_err(|_| gone())?;
                return Ok(());
            }
            Ok(n) => n,
            Err(e) => {
                let reason = e.to_string();
                let _ = out.send(Frame::Abort { stream: id, reason });
                return Err(e);
            }
        };
        credit.acquire().await.map_err(|_| gone())?.forget();
        let bytes = buf[..n].to_vec();
        out.send(Frame::Data { stream: id, bytes })
            .map_err(|_| gone())?;
    }
}

/// The reading end of an incoming stream: yields its chunks and grants credit for each.
pub(crate) struct ChunkReader {
    id: u64,
    rx: mpsc::Receiver<Chunk>,
    out: Out,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl ChunkReader {
    /// A reader of stream `id`, granting credit through `out`.
    pub(crate) fn new(id: u64, rx: mpsc::Receiver<Chunk>, out: Out) -> Self {
        ChunkReader {
            id,
            rx,
            out,
            buf: Vec::new(),
            pos: 0,
            ended: false,
        }
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.buf.len() {
                let n = dst.remaining().min(this.buf.len() - this.pos);
                dst.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.rx.poll_recv(cx)) {
                Some(Chunk::Data(bytes)) => {
                    this.buf = bytes;
                    this.pos = 0;
                    let grant = Frame::Credit {
                        stream: this.id,
                        chunks: 1,
                    };
                    // A closed connection shows up as the stream's end on the next poll.
                    let _ = this.out.send(grant);
                }
                Some(Chunk::End) => this.ended = true,
                Some(Chunk::Abort(reason)) => return Poll::Ready(Err(io::Error::other(reason))),
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream cut off",
                    )))
                }
            }
        }
    }
}

/// Joins a local bidirectional stream to stream `id` until either direction ends or fails,
/// then closes the stream.
pub(crate) async fn bridge(
    id: u64,
    local: impl AsyncRead + AsyncWrite + Send + 'static,
    streams: Arc<Streams>,
    rx: mpsc::Receiver<Chunk>,
    credit: Arc<Semaphore>,
    out: Out,
) {
    let (read, mut write) = tokio::io::split(local);
    let mut incoming = ChunkReader::new(id, rx, out.clone());
    tokio::select! {
        _ = send_all(id, read, &out, &credit) => {}
        _ = tokio::io::copy(&mut incoming, &mut write) => {
            let _ = out.send(Frame::End { stream: id });
        }
    }
    streams.close(id);
}
