//! Starting and stopping a broker process: the control thread, the
//! registrar, and one pinned executor per shard.

use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::BrokerConfig;
use crate::control::{self, ControlHandle, ControlRequest, Registrar};
use crate::metadata::Metadata;
use crate::shard::{self, ShardSetup};

pub struct Broker {
    control_tx: flume::Sender<ControlRequest>,
    control_thread: Option<std::thread::JoinHandle<()>>,
    shards: Vec<std::thread::JoinHandle<()>>,
}

impl Broker {
    /// Starts every shard and returns once all listen (or one failed).
    pub fn start(config: BrokerConfig) -> Result<Self, String> {
        let config = Arc::new(config);
        let metadata = Metadata::load(&config)?;
        let (control_tx, control_rx) = flume::bounded::<ControlRequest>(1024);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut shard_events = Vec::new();
        let mut shards = Vec::new();
        let mut ready = Vec::new();
        let (metrics_hub, mut scrapes) = crate::metrics::channels(config.shards);
        for id in 0..config.shards {
            let (event_tx, event_rx) = flume::unbounded();
            shard_events.push(event_tx);
            let (ready_tx, ready_rx) = flume::bounded(1);
            ready.push(ready_rx);
            let setup = ShardSetup {
                id,
                config: config.clone(),
                metadata: metadata.clone(),
                control: ControlHandle::new(control_tx.clone()),
                events: event_rx,
                ready: ready_tx,
                metrics: scrapes.remove(0),
                services: crate::handlers::start_services,
            };
            let placement = match cores.get(id % cores.len().max(1)) {
                Some(core) if config.pin_cores => Placement::Fixed(core.id),
                _ => Placement::Unbound,
            };
            let builder = LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{id}"))
                .io_memory(config.io_memory)
                .spin_before_park(config.spin_before_park);
            let handle = builder
                .spawn(move || shard::run(setup))
                .map_err(|e| format!("cannot start shard {id}: {e}"))?;
            shards.push(std::thread::spawn(move || {
                let _ = handle.join();
            }));
        }
        for (id, r) in ready.into_iter().enumerate() {
            match r.recv_timeout(Duration::from_secs(120)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(format!("shard {id} did not start")),
            }
        }
        if config.metrics_prom {
            crate::metrics::start_http(&config, metrics_hub)?;
        }
        let registrar = Registrar::start(config.clone());
        let control_thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                control::run_control(metadata, control_rx, shard_events, registrar);
            })
            .map_err(|e| format!("cannot start control thread: {e}"))?;
        Ok(Self {
            control_tx,
            control_thread: Some(control_thread),
            shards,
        })
    }

    /// Unregisters from the name servers, stops every shard (flushing its
    /// store and persisting offsets) and waits for them.
    pub fn shutdown(mut self) {
        let _ = self.control_tx.send(ControlRequest::Shutdown);
        if let Some(t) = self.control_thread.take() {
            let _ = t.join();
        }
        for s in self.shards.drain(..) {
            let _ = s.join();
        }
    }
}
