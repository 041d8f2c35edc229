//! The node's server: answers every [`HostDriver`] method for the engine over mutual TLS, or
//! only enrolment before the node has its certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use drover_host::{HostDriver, HostError};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_util::codec::Framed;

use crate::identity::{Mode, NodeIdentity};
use crate::stream::{bridge, send_all, Chunk, ChunkReader, Out, Streams};
use crate::wire::{codec, decode, encode, Call, Frame, Reply, WireError};
use crate::NodeError;

/// How long a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Requests one connection may have in progress.
const MAX_IN_FLIGHT: usize = 256;

/// Serves `driver` on `listener` as the node `identity`: enrolment until the node is enrolled,
/// then mutual TLS with the engine only. Runs until dropped.
pub async fn serve(
    listener: TcpListener,
    driver: Arc<dyn HostDriver>,
    identity: Arc<NodeIdentity>,
) -> Result<(), NodeError> {
    // Dropping this future (or the task running it) ends every connection with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = connections.join_next() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (driver, identity) = (driver.clone(), identity.clone());
        connections.spawn(async move {
            if let Err(e) = connection(tcp, peer, driver, &identity).await {
                tracing::info!(%peer, "node connection ended: {e}");
            }
        });
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    driver: Arc<dyn HostDriver>,
    identity: &NodeIdentity,
) -> Result<(), NodeError> {
    let _ = tcp.set_nodelay(true);
    let (config, enrolled) = match identity.mode() {
        Mode::Enrolled(c) => (c, true),
        Mode::Enrolling(c) => (c, false),
        Mode::Locked => return Err(NodeError::Refused("enrolment locked".into())),
    };
    let tls = tokio::time::timeout(
        HANDSHAKE,
        tokio_rustls::TlsAcceptor::from(config).accept(tcp),
    )
    .await
    .map_err(|_| NodeError::Timeout("TLS handshake"))?
    .map_err(|e| NodeError::Tls(e.to_string()))?;
    if !enrolled {
        crate::enrol::answer(tls, identity).await?;
        tracing::info!(%peer, "enrolled by the engine; serving mutual TLS only from now on");
        return Ok(());
    }
    tracing::info!(%peer, "engine connected");
    session(Framed::new(tls, codec()), driver).await
}

/// What one connection shares between its reader, writer and request tasks.
struct Session {
    driver: Arc<dyn HostDriver>,
    out: Out,
    streams: Arc<Streams>,
    in_flight: Arc<Semaphore>,
}

async fn session<S>(
    framed: Framed<S, tokio_util::codec::LengthDelimitedCodec>,
    driver: Arc<dyn HostDriver>,
) -> Result<(), NodeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut sink, mut frames) = framed.split();
    let (out, mut outgoing) = mpsc::unbounded_channel::<Frame>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            let Ok(bytes) = encode(&frame) else { continue };
            if sink
                .send(tokio_util::bytes::Bytes::from(bytes))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let events = tokio::spawn(forward_events(driver.subscribe(), out.clone()));
    let session = Arc::new(Session {
        driver,
        out,
        streams: Arc::default(),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
    });
    let _guard = Guard {
        tasks: vec![writer.abort_handle(), events.abort_handle()],
        streams: session.streams.clone(),
    };
    let result = loop {
        let frame = match frames.next().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(NodeError::Protocol(e.to_string())),
            Some(Ok(bytes)) => match decode::<Frame>(&bytes) {
                Ok(f) => f,
                Err(e) => break Err(NodeError::Protocol(format!("bad frame: {e}"))),
            },
        };
        match frame {
            Frame::Request { id, call } => request(&session, id, call),
            Frame::Data { stream, bytes } => session.streams.deliver(stream, Chunk::Data(bytes)),
            Frame::End { stream } => session.streams.deliver(stream, Chunk::End),
            Frame::Abort { stream, reason } => {
                session.streams.deliver(stream, Chunk::Abort(reason))
            }
            Frame::Credit { stream, chunks } => session.streams.credit(stream, chunks),
            Frame::Response { .. } | Frame::Event(_) => {
                break Err(NodeError::Protocol("engine sent a node-only frame".into()))
            }
        }
    };
    result
}

/// Ends a connection's writer, event forwarder and streams when its reader stops or is
/// dropped. Requests in progress finish: a driver call is not cut in half.
struct Guard {
    tasks: Vec<tokio::task::AbortHandle>,
    streams: Arc<Streams>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.streams.clear();
    }
}

async fn forward_events(mut events: broadcast::Receiver<drover_host::GuestEvent>, out: Out) {
    loop {
        match events.recv().await {
            Ok(e) => {
                if out.send(Frame::Event(e)).is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} guest events dropped for a slow engine connection");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Starts request `id` as a task of its own.
fn request(session: &Arc<Session>, id: u64, call: Call) {
    let Ok(permit) = session.in_flight.clone().try_acquire_owned() else {
        let err = WireError::Failed("too many requests in progress on this connection".into());
        let _ = session.out.send(Frame::Response {
            id,
            result: Err(err),
        });
        return;
    };
    // The stream is registered before the next frame is read, so its data finds it.
    let stream = matches!(call, Call::ImageImport { .. } | Call::ConsoleOpen { .. })
        .then(|| session.streams.open(id));
    let s = session.clone();
    tokio::spawn(async move {
        let result = dispatch(&s, id, call, stream).await;
        let result = result.map_err(|e| WireError::from(&e));
        let _ = s.out.send(Frame::Response { id, result });
        drop(permit);
    });
}

type Incoming = Option<(mpsc::Receiver<Chunk>, Arc<Semaphore>)>;

async fn dispatch(s: &Session, id: u64, call: Call, stream: Incoming) -> Result<Reply, HostError> {
    let d = &*s.driver;
    let unit = |r: Result<(), HostError>| r.map(|()| Reply::Unit);
    Ok(match call {
        Call::Info => Reply::Info(d.info().into()),
        Call::Metrics => Reply::Metrics(d.metrics().await),
        Call::Ping => {
            d.ping().await?;
            Reply::Unit
        }
        Call::Guests => Reply::Guests(d.guests().await),
        Call::MigrateReceive { spec, listen_ip } => {
            Reply::Uri(d.migrate_receive(&spec, &listen_ip).await?)
        }
        Call::MigrateSend {
            uuid,
            uri,
            max_downtime_ms,
        } => Reply::Migrated(d.migrate_send(&uuid, &uri, max_downtime_ms).await?),
        Call::MigrateCancel { uuid } => return unit(d.migrate_cancel(&uuid).await),
        Call::MigrateIncomingFinish { uuid, commit } => {
            return unit(d.migrate_incoming_finish(&uuid, commit).await)
        }
        Call::MigrateRelease { uuid } => return unit(d.migrate_release(&uuid).await),
        Call::Start { spec, paused } => return unit(d.start(&spec, paused).await),
        Call::Shutdown { uuid, hard } => return unit(d.shutdown(&uuid, hard).await),
        Call::Reboot { uuid, hard } => return unit(d.reboot(&uuid, hard).await),
        Call::Pause { uuid } => return unit(d.pause(&uuid).await),
        Call::Unpause { uuid } => return unit(d.unpause(&uuid).await),
        Call::Suspend {
            uuid,
            sr,
            state_image,
        } => return unit(d.suspend(&uuid, &sr, &state_image).await),
        Call::Resume {
            spec,
            sr,
            state_image,
            paused,
        } => return unit(d.resume(&spec, &sr, &state_image, paused).await),
        Call::DiskAttach { uuid, disk } => return unit(d.disk_attach(&uuid, &disk).await),
        Call::DiskDetach { uuid, device } => return unit(d.disk_detach(&uuid, &device).await),
        Call::MediaChange {
            uuid,
            device,
            media,
        } => {
            let media = media.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
            return unit(d.media_change(&uuid, &device, media).await);
        }
        Call::ConsoleLog { uuid } => Reply::Bytes(d.console_log(&uuid).await?),
        Call::ConsoleOpen { uuid, kind } => {
            let (rx, credit) = stream.ok_or_else(|| HostError::Failed("no stream".into()))?;
            match d.console_open(&uuid, kind).await {
                Ok(console) => {
                    let (streams, out) = (s.streams.clone(), s.out.clone());
                    tokio::spawn(bridge(id, console, streams, rx, credit, out));
                    Reply::Stream
                }
                Err(e) => {
                    s.streams.close(id);
                    return Err(e);
                }
            }
        }
        Call::SetMemory { uuid, bytes } => return unit(d.set_memory(&uuid, bytes).await),
        Call::SetVcpus { uuid, count } => return unit(d.set_vcpus(&uuid, count).await),
        Call::GuestMetrics { uuid } => Reply::GuestMetrics(d.guest_metrics(&uuid).await?),
        Call::NicAttach { uuid, nic } => return unit(d.nic_attach(&uuid, &nic).await),
        Call::NicDetach { uuid, device } => return unit(d.nic_detach(&uuid, &device).await),
        Call::NicMove {
            uuid,
            device,
            bridge,
            mtu,
        } => return unit(d.nic_move(&uuid, &device, &bridge, mtu).await),
        Call::SrAttach { sr, location } => Reply::StorageInfo(d.sr_attach(&sr, &location).await?),
        Call::SrDetach { sr } => return unit(d.sr_detach(&sr).await),
        Call::SrScan { sr } => Reply::Images(d.sr_scan(&sr).await?),
        Call::StorageInfo { sr } => Reply::StorageInfo(d.storage_info(&sr).await?),
        Call::ImageCreate {
            sr,
            name,
            size,
            format,
        } => Reply::Image(d.image_create(&sr, &name, size, format.into()).await?),
        Call::ImageDestroy { sr, image } => return unit(d.image_destroy(&sr, &image).await),
        Call::ImageClone { sr, src, dst } => Reply::Image(d.image_clone(&sr, &src, &dst).await?),
        Call::ImageCopy {
            sr,
            src,
            dst_sr,
            dst,
        } => Reply::Image(d.image_copy(&sr, &src, &dst_sr, &dst).await?),
        Call::ImageResize { sr, image, size } => {
            Reply::Image(d.image_resize(&sr, &image, size).await?)
        }
        Call::ImageInfo { sr, image } => Reply::Image(d.image_info(&sr, &image).await?),
        Call::ImageImport { sr, image, format } => {
            let (rx, _) = stream.ok_or_else(|| HostError::Failed("no stream".into()))?;
            let data = Box::new(ChunkReader::new(id, rx, s.out.clone()));
            let result = d.image_import(&sr, &image, &format, data).await;
            s.streams.close(id);
            Reply::Image(result?)
        }
        Call::ImageFromFiles {
            sr,
            name,
            label,
            files,
        } => Reply::Image(d.image_from_files(&sr, &name, &label, &files).await?),
        Call::ImageExport { sr, image } => {
            let src = d.image_export(&sr, &image).await?;
            let (_, credit) = s.streams.open(id);
            let (streams, out) = (s.streams.clone(), s.out.clone());
            tokio::spawn(async move {
                if let Err(e) = send_all(id, src, &out, &credit).await {
                    tracing::warn!(stream = id, "image export stopped: {e}");
                }
                streams.close(id);
            });
            Reply::Stream
        }
        Call::NetCapabilities => Reply::NetCapabilities(d.net_capabilities().await),
        Call::NetworkEnsure { spec } => return unit(d.network_ensure(&spec).await),
        Call::NetworkRemove { bridge } => return unit(d.network_remove(&bridge).await),
        Call::NetworkPrune { keep } => return unit(d.network_prune(&keep).await),
        Call::PifScan => Reply::Pifs(d.pif_scan().await?),
        Call::PifCounters { device } => Reply::PifCounters(d.pif_counters(&device).await?),
        Call::PifConfigureIp { bridge, config } => {
            return unit(d.pif_configure_ip(&bridge, &config).await)
        }
        Call::PifConfigureIpv6 { bridge, config } => {
            return unit(d.pif_configure_ipv6(&bridge, &config).await)
        }
        Call::BondCreate { spec } => return unit(d.bond_create(&spec).await),
        Call::BondDestroy { name } => return unit(d.bond_destroy(&name).await),
    })
}

#[cfg(test)]
mod tests {
    use drover_host::sim::{SimConfig, SimHost};
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::wire::MAX_FRAME;

    /// Runs a session over an in-memory pipe, writes `bytes` as the engine, and returns how the
    /// session ended.
    async fn session_after(bytes: &[u8]) -> Result<(), NodeError> {
        let (node, mut engine) = tokio::io::duplex(1 << 16);
        let driver: Arc<dyn HostDriver> = Arc::new(SimHost::new(SimConfig::default()));
        let task = tokio::spawn(session(Framed::new(node, codec()), driver));
        engine.write_all(bytes).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the session ends")
            .expect("without a panic")
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[tokio::test]
    async fn garbage_from_the_engine_ends_the_session_with_a_protocol_error() {
        for bad in [&[0x7f_u8][..], &[0xff; 32], &[], &[0, 1]] {
            let r = session_after(&framed(bad)).await;
            assert!(matches!(r, Err(NodeError::Protocol(_))), "{bad:?}: {r:?}");
        }
        // A header announcing a frame over the bound.
        let mut huge = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        huge.extend_from_slice(b"abc");
        let r = session_after(&huge).await;
        assert!(matches!(r, Err(NodeError::Protocol(_))), "{r:?}");
        // A frame only the node may send.
        let event = encode(&Frame::Event(drover_host::GuestEvent::Exited {
            uuid: "u".into(),
            reason: "r".into(),
        }))
        .unwrap();
        let r = session_after(&framed(&event)).await;
        assert!(matches!(r, Err(NodeError::Protocol(_))), "{r:?}");
    }
}
