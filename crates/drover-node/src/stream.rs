//! Byte streams multiplexed over one connection, with credit-based flow control.
//!
//! A sender may have [`WINDOW`] chunks of a stream in flight; the receiver grants one more with
//! a [`Frame::Credit`] each time its reader takes a chunk. The receiver's queue holds exactly the
//! window (and the stream's end), so a peer that sends past its credit has the stream cut off
//! instead of blocking the connection or growing memory: a multi-GiB image never sits in memory.

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
        // The queue has room for a window of data and one last chunk: data that would take
        // that last place is beyond the credit the peer was given.
        let overrun = !last && tx.capacity() <= 1;
        if overrun || tx.try_send(chunk).is_err() {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    use super::*;

    /// Frames sent so far, without waiting.
    fn drain(rx: &mut UnboundedReceiver<Frame>) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        frames
    }

    fn data(n: u8) -> Chunk {
        Chunk::Data(vec![n; 4])
    }

    fn is_open(streams: &Streams, id: u64) -> bool {
        streams.lock().contains_key(&id)
    }

    #[tokio::test]
    async fn a_peer_overrunning_its_window_has_the_stream_cut() {
        let streams = Streams::default();
        let (rx, credit) = streams.open(7);
        for n in 0..WINDOW {
            streams.deliver(7, data(n as u8));
        }
        assert!(is_open(&streams, 7), "a full window is within credit");
        // One chunk more than the credit it was given.
        streams.deliver(7, data(0xff));
        assert!(!is_open(&streams, 7), "the overrun stream is forgotten");
        assert!(credit.is_closed(), "its sender here stops");
        // Later chunks of the stream are dropped, not queued.
        streams.deliver(7, data(0xee));
        streams.deliver(7, Chunk::End);

        // The reader gets the window it was granted, then sees the stream cut off, not an end.
        let (out, mut sent) = unbounded_channel();
        let mut reader = ChunkReader::new(7, rx, out);
        let mut got = Vec::new();
        let err = reader.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(got.len(), WINDOW as usize * 4);
        assert!(!got.contains(&0xff) && !got.contains(&0xee));
        let credits = drain(&mut sent);
        assert_eq!(credits.len(), WINDOW as usize);
        assert!(credits.iter().all(|f| matches!(
            f,
            Frame::Credit {
                stream: 7,
                chunks: 1
            }
        )));
    }

    #[tokio::test]
    async fn a_full_window_may_still_be_ended_or_aborted() {
        for abort in [false, true] {
            let streams = Streams::default();
            let (rx, _credit) = streams.open(1);
            for n in 0..WINDOW {
                streams.deliver(1, data(n as u8));
            }
            let last = if abort {
                Chunk::Abort("disk on fire".into())
            } else {
                Chunk::End
            };
            streams.deliver(1, last);
            assert!(!is_open(&streams, 1), "forgotten after its last chunk");
            let (out, _sent) = unbounded_channel();
            let mut got = Vec::new();
            let r = ChunkReader::new(1, rx, out).read_to_end(&mut got).await;
            assert_eq!(got.len(), WINDOW as usize * 4);
            match r {
                Ok(n) => assert!(!abort && n == got.len()),
                Err(e) => assert!(abort && e.to_string() == "disk on fire", "{e}"),
            }
        }
    }

    #[tokio::test]
    async fn end_and_abort_finish_a_stream() {
        let streams = Streams::default();
        let (out, mut sent) = unbounded_channel();

        // End: the data, then a clean end of file; the stream is forgotten.
        let (rx, _) = streams.open(1);
        streams.deliver(1, Chunk::Data(b"hello ".to_vec()));
        streams.deliver(1, Chunk::Data(b"world".to_vec()));
        streams.deliver(1, Chunk::End);
        assert!(!is_open(&streams, 1));
        streams.deliver(1, Chunk::Data(b"late".to_vec()));
        let mut reader = ChunkReader::new(1, rx, out.clone());
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello world");
        // Reading past the end keeps answering end of file.
        assert_eq!(reader.read(&mut [0; 8]).await.unwrap(), 0);
        assert_eq!(drain(&mut sent).len(), 2, "one credit per chunk taken");

        // Abort: the data, then the sender's reason as an error.
        let (rx, _) = streams.open(2);
        streams.deliver(2, Chunk::Data(b"partial".to_vec()));
        streams.deliver(2, Chunk::Abort("source failed".into()));
        assert!(!is_open(&streams, 2));
        let mut got = Vec::new();
        let err = ChunkReader::new(2, rx, out.clone())
            .read_to_end(&mut got)
            .await
            .unwrap_err();
        assert_eq!(got, b"partial");
        assert_eq!(err.to_string(), "source failed");

        // Closed here (the request failed, the connection went): the reader sees it cut off.
        let (rx, credit) = streams.open(3);
        streams.deliver(3, Chunk::Data(b"x".to_vec()));
        streams.close(3);
        assert!(credit.is_closed());
        let mut got = Vec::new();
        let err = ChunkReader::new(3, rx, out.clone())
            .read_to_end(&mut got)
            .await
            .unwrap_err();
        assert_eq!(
            (got.as_slice(), err.kind()),
            (&b"x"[..], io::ErrorKind::UnexpectedEof)
        );

        // Chunks of streams never opened are dropped.
        streams.deliver(99, Chunk::Data(b"stray".to_vec()));
        streams.credit(99, 1);
        assert!(!is_open(&streams, 99));

        // A lost connection cuts every stream.
        let (_rx4, c4) = streams.open(4);
        let (_rx5, c5) = streams.open(5);
        streams.clear();
        assert!(c4.is_closed() && c5.is_closed());
        assert!(streams.lock().is_empty());
    }

    #[tokio::test]
    async fn a_failing_source_aborts_its_stream() {
        struct Failing;
        impl AsyncRead for Failing {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Err(io::Error::other("read error")))
            }
        }
        let (out, mut sent) = unbounded_channel();
        let credit = Semaphore::new(WINDOW as usize);
        let err = send_all(3, Failing, &out, &credit).await.unwrap_err();
        assert_eq!(err.to_string(), "read error");
        let frames = drain(&mut sent);
        assert!(
            matches!(&frames[..], [Frame::Abort { stream: 3, reason }] if reason == "read error"),
            "{frames:?}"
        );
    }

    #[tokio::test]
    async fn an_empty_stream_is_just_its_end() {
        let (out, mut sent) = unbounded_channel();
        let credit = Semaphore::new(WINDOW as usize);
        send_all(5, tokio::io::empty(), &out, &credit)
            .await
            .unwrap();
        let frames = drain(&mut sent);
        assert!(
            matches!(&frames[..], [Frame::End { stream: 5 }]),
            "{frames:?}"
        );
        assert_eq!(
            credit.available_permits(),
            WINDOW as usize,
            "no credit used"
        );

        let streams = Streams::default();
        let (rx, _) = streams.open(5);
        streams.deliver(5, Chunk::End);
        let mut got = Vec::new();
        let n = ChunkReader::new(5, rx, out).read_to_end(&mut got).await;
        assert_eq!(n.unwrap(), 0);
        assert!(drain(&mut sent).is_empty(), "no credit granted for nothing");
    }

    #[tokio::test]
    async fn a_sender_without_credit_waits_and_credit_never_exceeds_the_window() {
        let (out, mut sent) = unbounded_channel();
        let streams = Streams::default();
        let (_rx, credit) = streams.open(9);
        let src = std::io::Cursor::new(vec![1u8; CHUNK * (WINDOW as usize + 4)]);
        let task = {
            let (out, credit) = (out.clone(), credit.clone());
            tokio::spawn(async move { send_all(9, src, &out, &credit).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let frames = drain(&mut sent);
        assert_eq!(frames.len(), WINDOW as usize, "a window, then it waits");
        assert!(frames
            .iter()
            .all(|f| matches!(f, Frame::Data { stream: 9, bytes } if bytes.len() == CHUNK)));
        assert!(!task.is_finished());

        // Two credits, two chunks more.
        streams.credit(9, 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(drain(&mut sent).len(), 2);

        // However much a peer grants, the sender never has more than a window of credit.
        task.abort();
        let _ = task.await;
        streams.credit(9, 1_000);
        assert_eq!(credit.available_permits(), WINDOW as usize);

        // Closing the stream stops a waiting sender.
        let (_rx, credit) = streams.open(10);
        let held = credit.acquire_many(WINDOW).await.unwrap();
        held.forget();
        let src = std::io::Cursor::new(vec![1u8; 10]);
        let task = tokio::spawn(async move { send_all(10, src, &out, &credit).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        streams.close(10);
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    /// Carries frames between two sides as a connection would: `Data`/`End`/`Abort` to the
    /// receiving side's streams, `Credit` to the sending side's.
    fn link(
        mut frames: UnboundedReceiver<Frame>,
        sender: Arc<Streams>,
        receiver: Arc<Streams>,
        max_data_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    ) -> tokio::task::JoinHandle<()> {
        use std::sync::atomic::Ordering;
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                match frame {
                    Frame::Data { stream, bytes } => {
                        let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max_data_in_flight.fetch_max(n, Ordering::SeqCst);
                        receiver.deliver(stream, Chunk::Data(bytes));
                    }
                    Frame::End { stream } => receiver.deliver(stream, Chunk::End),
                    Frame::Abort { stream, reason } => {
                        receiver.deliver(stream, Chunk::Abort(reason))
                    }
                    Frame::Credit { stream, chunks } => {
                        in_flight.fetch_sub(chunks as usize, Ordering::SeqCst);
                        sender.credit(stream, chunks);
                    }
                    other => panic!("unexpected frame {other:?}"),
                }
            }
        })
    }

    #[tokio::test]
    async fn a_stream_larger_than_the_window_flows_end_to_end() {
        let (a, b) = (Arc::new(Streams::default()), Arc::new(Streams::default()));
        // One channel for both directions, as one connection's frames.
        let (out, frames) = unbounded_channel();
        let max = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let _link = link(frames, a.clone(), b.clone(), max.clone());

        let (_, credit) = a.open(42);
        let (rx, _) = b.open(42);
        let len = CHUNK * (WINDOW as usize * 4) + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sender = {
            let (out, data) = (out.clone(), data.clone());
            tokio::spawn(
                async move { send_all(42, std::io::Cursor::new(data), &out, &credit).await },
            )
        };
        let mut reader = ChunkReader::new(42, rx, out);
        let mut got = Vec::new();
        // A slow reader: small reads with pauses, so the sender fills its window and waits.
        let mut buf = vec![0; 10_000];
        loop {
            let n = reader.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        sender.await.unwrap().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the bytes arrive intact and in order");
        let max = max.load(std::sync::atomic::Ordering::SeqCst);
        assert!(max <= WINDOW as usize, "{max} chunks in flight");
        assert!(
            !b.lock().contains_key(&42),
            "the receiver forgot the ended stream"
        );
    }
}
