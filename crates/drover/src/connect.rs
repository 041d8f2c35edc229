//! How the engine reaches host agents: `drover node` processes over mutual TLS with
//! certificates of the engine's CA, and, when the engine runs simulated hosts, more simulated
//! hosts in this process (`sim:NAME` addresses), for scale tests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use drover_core::HostConnector;
use drover_host::sim::{SimConfig, SimHost};
use drover_host::{HostDriver, HostError};
use drover_node::{Ca, RemoteHost};

/// The engine's connector.
pub struct Connector {
    ca: Ca,
    /// Simulated hosts by name, when the engine runs the simulator.
    sims: Option<Mutex<HashMap<String, Arc<SimHost>>>>,
    /// What a new simulated host is like.
    sim_config: SimConfig,
    /// Where simulated hosts keep their state.
    data_dir: PathBuf,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("ca", &self.ca)
            .field("sim", &self.sims.is_some())
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector with the engine's CA in `data_dir`; with `sim`, every address is a
    /// simulated host like `sim` (its secret is not checked: it has none).
    pub fn new(data_dir: PathBuf, sim: Option<SimConfig>) -> Result<Connector, String> {
        let ca = Ca::load_or_create(&data_dir).map_err(|e| e.to_string())?;
        Ok(Connector {
            ca,
            sims: sim.as_ref().map(|_| Mutex::new(HashMap::new())),
            sim_config: sim.unwrap_or_default(),
            data_dir,
        })
    }

    /// The simulated host at address `name`, made at its first use.
    fn sim(
        &self,
        sims: &Mutex<HashMap<String, Arc<SimHost>>>,
        name: &str,
    ) -> Result<Arc<dyn HostDriver>, HostError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !valid {
            return Err(HostError::Failed(format!(
                "{name:?} is not a simulated host name"
            )));
        }
        let mut sims = sims.lock().unwrap_or_else(|e| e.into_inner());
        let host = sims.entry(name.to_string()).or_insert_with(|| {
            Arc::new(SimHost::new(SimConfig {
                hostname: name.to_string(),
                state_file: Some(
                    self.data_dir
                        .join(format!("sim-host-{}.json", name.replace(':', "_"))),
                ),
                ..self.sim_config.clone()
            }))
        });
        Ok(host.clone())
    }
}

fn failed(e: drover_node::NodeError) -> HostError {
    HostError::Failed(e.to_string())
}

#[async_trait]
impl HostConnector for Connector {
    async fn enrol(
        &self,
        address: &str,
        secret: &str,
        name: &str,
    ) -> Result<Arc<dyn HostDriver>, HostError> {
        if let Some(sims) = &self.sims {
            return self.sim(sims, address);
        }
        drover_node::enrol(address, &self.ca, secret, name)
            .await
            .map_err(failed)?;
        self.connect(address, name).await
    }

    async fn connect(&self, address: &str, name: &str) -> Result<Arc<dyn HostDriver>, HostError> {
        if let Some(sims) = &self.sims {
            return self.sim(sims, address);
        }
        let host = RemoteHost::connect(address, &self.ca, name)
            .await
            .map_err(failed)?;
        Ok(Arc::new(host))
    }
}
