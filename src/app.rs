//! Wiring: validated settings → Honcho client → poller → HTTP server(s), sharing one shutdown
//! signal. The binary, `demo` and the end-to-end tests all start the exporter through
//! [`Exporter::start`]; callers bind the listeners (tests bind `127.0.0.1:0`).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::honcho::{Client, ClientBuildError};
use crate::poller::Poller;
use crate::publication::{self, Published, SharedPublished};
use crate::server::{self, ServerContext};
use crate::web_config::{WebConfig, WebConfigError};

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Honcho client could not be built (CA file, token file, TLS setup).
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    /// `--web.config.file` is invalid.
    #[error("invalid --web.config.file: {0}")]
    WebConfig(#[from] WebConfigError),
    /// The poller's thread or runtime could not be created.
    #[error("cannot start the poller thread: {0}")]
    Runtime(std::io::Error),
    /// A listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A running exporter.
pub struct Exporter {
    /// The addresses actually bound (port 0 resolved).
    pub addresses: Vec<SocketAddr>,
    /// The poller's publication (tests read it directly).
    pub published: SharedPublished,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Ends when the poller has stopped.
    poller_thread: tokio::sync::oneshot::Receiver<()>,
}

/// Binds every `web.listen_addresses` entry.
pub async fn bind(settings: &Settings) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::new();
    for address in &settings.web.listen_addresses {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind {
                address: *address,
                source,
            })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

impl Exporter {
    /// Starts the poller and one server per listener.
    pub fn start(
        settings: Arc<Settings>,
        listeners: Vec<TcpListener>,
    ) -> Result<Exporter, StartError> {
        let client = Client::with_in_flight_cap(
            &settings.honcho,
            settings.poll.timeout,
            settings.poll.concurrency,
        )?;
        let web_config = match &settings.web.config_file {
            Some(path) => Some(Arc::new(WebConfig::load(path)?)),
            None => None,
        };
        let published: SharedPublished =
            Arc::new(RwLock::new(Arc::new(Published::initial(&settings))));
        let (shutdown, shutdown_signal) = watch::channel(false);
        let mut tasks = Vec::new();
        let poller = Poller::new(Arc::clone(&settings), client, Arc::clone(&published));
        let poller_thread = spawn_poller(poller, wait_for(shutdown_signal.clone()))?;
        let context = Arc::new(ServerContext {
            published: Arc::clone(&published),
            telemetry_path: settings.web.telemetry_path.clone(),
            web_config,
            requests: Arc::new(Semaphore::new(settings.web.max_concurrent_requests.max(1))),
            request_timeout: settings.web.request_timeout,
            honcho_url: redacted_url(&settings.honcho.url),
        });
        let mut addresses = Vec::new();
        for listener in listeners {
            if let Ok(address) = listener.local_addr() {
                addresses.push(address);
            }
            let context = Arc::clone(&context);
            let signal = wait_for(shutdown_signal.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(error) = server::serve(listener, context, signal).await {
                    tracing::error!(%error, "HTTP server failed");
                }
            }));
        }
        Ok(Exporter {
            addresses,
            published,
            shutdown,
            tasks,
            poller_thread,
        })
    }

    /// Whether a poll cycle has completed.
    pub fn is_ready(&self) -> bool {
        publication::current(&self.published).ready
    }

    /// Signals shutdown and waits (bounded) for the poller and servers to stop.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(Duration::from_secs(10), self.poller_thread)
            .await
            .is_err()
        {
            tracing::warn!("the poller did not stop within 10 s");
        }
        for task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                tracing::warn!("a task did not stop within 10 s");
            }
        }
    }
}

/// Runs the poller on its own OS thread with a single-threaded runtime, so that a flood of
/// scrapes on the server's runtime cannot delay poll cycles (the OS shares the cores fairly
/// between the threads). The receiver resolves when the poller has stopped.
fn spawn_poller(
    poller: Poller,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<()>, StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let (stopped, poller_stopped) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("honcho-poller".to_string())
        .spawn(move || {
            runtime.block_on(poller.run(shutdown));
            let _ = stopped.send(());
        })
        .map_err(StartError::Runtime)?;
    Ok(poller_stopped)
}

/// Resolves once the watch flips to `true` (or its sender is gone).
async fn wait_for(mut signal: watch::Receiver<bool>) {
    while !*signal.borrow() {
        if signal.changed().await.is_err() {
            return;
        }
    }
}

/// The URL without user info (for display).
fn redacted_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}
