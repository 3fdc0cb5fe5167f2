//! Wiring: validated settings → Honcho client → poller → HTTP server(s). The binary, `demo` and
//! the end-to-end tests all start the exporter through [`Exporter::start`]; callers bind the
//! listeners (tests bind `127.0.0.1:0`). [`Exporter::reload`] applies new settings (SIGHUP)
//! all or nothing, keeping the listeners whose address did not change.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::{Settings, Source};
use crate::honcho::{Client, ClientBuildError};
use crate::publication::{self, SharedPublished};
use crate::server::{self, ServerContext, SharedContext};
use crate::source::api::Poller;
use crate::source::postgres::PostgresSource;
use crate::source::postgres::source::SourceBuildError;
use crate::web_config::{WebConfig, WebConfigError};

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Honcho client could not be built (CA file, token file, TLS setup); API source only.
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    /// `--web.config.file` is invalid. (Its text is in this message, so it is not also a
    /// `source()`: an error chain printed in full would repeat it.)
    #[error("invalid --web.config.file: {0}")]
    WebConfig(WebConfigError),
    /// The database source could not be set up (URL, CA file).
    #[error(transparent)]
    Postgres(#[from] SourceBuildError),
    /// The poller's thread or runtime could not be created.
    #[error("cannot start the poller thread: {0}")]
    Runtime(std::io::Error),
    /// A listen address could not be bound.
    #[error("cannot listen on {address}: {error}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error (in the message, not a `source()`: a full chain would repeat it).
        error: std::io::Error,
    },
}

/// A running exporter.
pub struct Exporter {
    /// The addresses actually bound (port 0 resolved).
    pub addresses: Vec<SocketAddr>,
    /// The poller's publication (tests read it directly). It outlives reloads: the servers
    /// serve the last publication until the restarted poller's first cycle replaces it.
    pub published: SharedPublished,
    context: SharedContext,
    poller: RunningPoller,
    servers: Vec<RunningServer>,
}

/// The poller thread and how to stop it.
struct RunningPoller {
    shutdown: watch::Sender<bool>,
    /// Ends when the poller has stopped.
    stopped: tokio::sync::oneshot::Receiver<()>,
}

/// One listener's server task.
struct RunningServer {
    /// The address as configured (port 0 stays 0): what a reload compares.
    configured: SocketAddr,
    /// The address bound.
    bound: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Binds every `web.listen_addresses` entry, in order.
pub async fn bind(settings: &Settings) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::new();
    for address in &settings.web.listen_addresses {
        listeners.push(bind_one(*address).await?);
    }
    Ok(listeners)
}

async fn bind_one(address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|error| StartError::Bind { address, error })
}

impl Exporter {
    /// Starts the poller and one server per listener (`listeners` in the order of
    /// `web.listen_addresses`, as [`bind`] returns them).
    pub fn start(
        settings: Arc<Settings>,
        listeners: Vec<TcpListener>,
    ) -> Result<Exporter, StartError> {
        let initial = crate::source::initial_publication(&settings);
        let published: SharedPublished = Arc::new(RwLock::new(Arc::new(initial)));
        let poll_loop = PollLoop::build(Arc::clone(&settings), &published)?;
        let web_config = load_web_config(&settings)?;
        let context = SharedContext::new(server_context(&settings, web_config, &published));
        let poller = start_poller(poll_loop)?;
        let mut exporter = Exporter {
            addresses: Vec::new(),
            published,
            context,
            poller,
            servers: Vec::new(),
        };
        for (index, listener) in listeners.into_iter().enumerate() {
            let configured = settings.web.listen_addresses.get(index).copied();
            exporter.start_server(configured, listener);
        }
        exporter.addresses = exporter.servers.iter().map(|server| server.bound).collect();
        Ok(exporter)
    }

    /// Applies `settings` to the running exporter (SIGHUP), or changes nothing and returns why
    /// not. Everything that can fail comes first: the source (for the API, the Honcho client,
    /// built as at start, with the same in-flight cap), `--web.config.file`, and binding the
    /// listen addresses that are new. Then the servers take the new context (for
    /// new connections and requests), the poller is restarted with the new settings, and the
    /// servers of addresses no longer listed stop. Listeners of addresses that did not change
    /// are kept as they are, so scrapes go on across the reload.
    pub async fn reload(&mut self, settings: Arc<Settings>) -> Result<(), StartError> {
        let poll_loop = PollLoop::build(Arc::clone(&settings), &self.published)?;
        let web_config = load_web_config(&settings)?;
        let mut new_listeners = Vec::new();
        for address in &settings.web.listen_addresses {
            let running = self
                .servers
                .iter()
                .any(|server| server.configured == *address);
            let listed = new_listeners.iter().any(|(listed, _)| listed == address);
            if !running && !listed {
                // On error the listeners bound so far are dropped: nothing changed.
                new_listeners.push((*address, bind_one(*address).await?));
            }
        }
        // The new poller starts before the old one stops, so a failure to start it leaves the
        // running one in place; the old one's cycle in flight is abandoned when it stops.
        let poller = start_poller(poll_loop)?;
        self.context
            .replace(server_context(&settings, web_config, &self.published));
        let old_poller = std::mem::replace(&mut self.poller, poller);
        old_poller.stop().await;
        for (address, listener) in new_listeners {
            self.start_server(Some(address), listener);
        }
        let (kept, removed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.servers)
            .into_iter()
            .partition(|server| settings.web.listen_addresses.contains(&server.configured));
        self.servers = kept;
        for server in removed {
            tracing::info!(address = %server.bound, "no longer listed in web.listen_addresses; closing the listener");
            server.stop().await;
        }
        self.addresses = self.servers.iter().map(|server| server.bound).collect();
        Ok(())
    }

    fn start_server(&mut self, configured: Option<SocketAddr>, listener: TcpListener) {
        let bound = match listener.local_addr() {
            Ok(address) => address,
            Err(error) => {
                tracing::error!(%error, "a bound listener has no local address; not serving on it");
                return;
            }
        };
        let (shutdown, signal) = watch::channel(false);
        let context = self.context.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = server::serve(listener, context, wait_for(signal)).await {
                tracing::error!(%error, "HTTP server failed");
            }
        });
        self.servers.push(RunningServer {
            configured: configured.unwrap_or(bound),
            bound,
            shutdown,
            task,
        });
    }

    /// Whether a poll cycle has completed.
    pub fn is_ready(&self) -> bool {
        publication::current(&self.published).ready
    }

    /// Signals shutdown and waits (bounded) for the poller and servers to stop.
    pub async fn stop(self) {
        for server in &self.servers {
            let _ = server.shutdown.send(true);
        }
        self.poller.stop().await;
        for server in self.servers {
            server.stop().await;
        }
    }
}

impl RunningPoller {
    /// Signals the poller and waits (bounded) for it to stop.
    async fn stop(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(Duration::from_secs(10), self.stopped)
            .await
            .is_err()
        {
            tracing::warn!("the poller did not stop within 10 s");
        }
    }
}

impl RunningServer {
    /// Signals the server and waits (bounded) for it to stop.
    async fn stop(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            tracing::warn!(address = %self.bound, "an HTTP server did not stop within 10 s");
        }
    }
}

fn load_web_config(settings: &Settings) -> Result<Option<Arc<WebConfig>>, StartError> {
    match &settings.web.config_file {
        Some(path) => Ok(Some(Arc::new(
            WebConfig::load(path).map_err(StartError::WebConfig)?,
        ))),
        None => Ok(None),
    }
}

fn server_context(
    settings: &Settings,
    web_config: Option<Arc<WebConfig>>,
    published: &SharedPublished,
) -> ServerContext {
    ServerContext {
        published: Arc::clone(published),
        telemetry_path: settings.web.telemetry_path.clone(),
        web_config,
        requests: Arc::new(Semaphore::new(settings.web.max_concurrent_requests.max(1))),
        request_timeout: settings.web.request_timeout,
        upstream: upstream_of(settings),
    }
}

fn start_poller(poll_loop: PollLoop) -> Result<RunningPoller, StartError> {
    let (shutdown, signal) = watch::channel(false);
    let stopped = spawn_poller(poll_loop, wait_for(signal))?;
    Ok(RunningPoller { shutdown, stopped })
}

/// Runs the poller on its own OS thread with a single-threaded runtime, so that a flood of
/// scrapes on the server's runtime cannot delay poll cycles (the OS shares the cores fairly
/// between the threads). The receiver resolves when the poller has stopped.
fn spawn_poller(
    poller: PollLoop,
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

/// The poll loop of the configured source (`poll.source`); both publish into the same
/// [`SharedPublished`].
enum PollLoop {
    /// Honcho's HTTP API.
    Api(Box<Poller>),
    /// Honcho's database.
    Postgres(Box<PostgresSource>),
}

impl PollLoop {
    /// The poll loop of `settings.source`, publishing into `published`. Only the API source
    /// builds a Honcho client (through [`Client::from_settings`], at start and at reload
    /// alike); the database source needs none, so its token and CA file are never read.
    fn build(settings: Arc<Settings>, published: &SharedPublished) -> Result<Self, StartError> {
        Ok(match settings.source {
            Source::Api => {
                let client = Client::from_settings(&settings)?;
                PollLoop::Api(Box::new(Poller::new(
                    settings,
                    client,
                    Arc::clone(published),
                )))
            }
            Source::Postgres => PollLoop::Postgres(Box::new(PostgresSource::new(
                settings,
                Arc::clone(published),
            )?)),
        })
    }

    async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        match self {
            PollLoop::Api(poller) => poller.run(shutdown).await,
            PollLoop::Postgres(source) => source.run(shutdown).await,
        }
    }
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
/// What the exporter reads, for the landing page and the start-up log: Honcho's API URL
/// without credentials, or the database URL (which never holds a password).
pub fn upstream_of(settings: &Settings) -> (&'static str, String) {
    match (settings.source, &settings.postgres.url) {
        (Source::Postgres, Some(url)) => ("Honcho's database", url.as_str().to_string()),
        _ => ("Honcho's API", redacted_url(&settings.honcho.url)),
    }
}

/// [`upstream_of`] as one phrase.
pub fn upstream_description(settings: &Settings) -> String {
    let (kind, address) = upstream_of(settings);
    format!("{kind} {address}")
}

fn redacted_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenSource;

    /// Settings whose Honcho client cannot be built: the token file does not exist.
    fn settings_with_an_unreadable_token(source: Source) -> (tempfile::TempDir, Settings) {
        let directory = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::with_url("http://127.0.0.1:9".parse().expect("test URL"));
        settings.honcho.token = Some(TokenSource::File(directory.path().join("gone")));
        settings.source = source;
        settings.postgres.url = Some(
            crate::config::postgres_url::ConnectOptions::parse(
                "postgres://honcho_exporter@127.0.0.1:9/honcho",
            )
            .expect("a valid URL"),
        );
        (directory, settings)
    }

    fn published(settings: &Settings) -> SharedPublished {
        Arc::new(RwLock::new(Arc::new(crate::source::initial_publication(
            settings,
        ))))
    }

    #[test]
    fn the_api_source_builds_the_honcho_client() {
        let (_directory, settings) = settings_with_an_unreadable_token(Source::Api);
        let published = published(&settings);
        let error = PollLoop::build(Arc::new(settings), &published)
            .err()
            .expect("the token file is missing");
        assert!(
            matches!(error, StartError::Client(ClientBuildError::TokenFile(_))),
            "{error}"
        );
    }

    #[test]
    fn the_database_source_builds_no_honcho_client() {
        let (_directory, settings) = settings_with_an_unreadable_token(Source::Postgres);
        let published = published(&settings);
        let poll_loop = PollLoop::build(Arc::new(settings), &published)
            .unwrap_or_else(|error| panic!("the Honcho token is not read: {error}"));
        assert!(matches!(poll_loop, PollLoop::Postgres(_)));
    }
}
