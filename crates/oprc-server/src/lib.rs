//! Wiring of one node: storage, FaaS engines, registry, invoker and the
//! HTTP API, started in dependency order and stopped in reverse.
//!
//! [`run`] takes a bound listener and a shutdown future (so tests start a
//! real node on port 0). Shutdown order: stop accepting and drain HTTP
//! requests, stop consuming the async log and drain running invocations,
//! stop function workers, close storage.

pub mod archive;
mod backends;
mod config;
mod engine;
#[cfg(feature = "fault-injection")]
mod faults;
mod files;
mod layout;
mod metrics;
mod token;

use std::future::{Future, IntoFuture};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use backends::Stores;
pub use backends::redact as redact_url;
pub use config::Config;
pub use config::Overrides;
pub use files::{FilesConfig, parse_duration};
pub use oprc_ingress::{parse_origin, parse_public_host};
pub use token::admin_token_path;

/// Runs a node on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backends = backends::Backends::open(&config).await?;
    let layout = match layout::check(
        backends.state.as_ref(),
        &config,
        &backends.state_place,
        &backends.log_identity,
    )
    .await
    {
        Ok(layout) => layout,
        Err(refused) => {
            // The data directory is free again once a refused start returns.
            let closed = backends.closed();
            drop(backends);
            closed.await;
            return Err(refused);
        }
    };
    let backends_closed = backends.closed();
    let store_metrics = crate::metrics::StoreCollector::new(&backends);
    #[cfg(feature = "fault-injection")]
    let state = faults::wrap(backends.state.clone())?;
    #[cfg(not(feature = "fault-injection"))]
    let state = backends.state.clone();
    let log = backends.log.clone();
    let files = files::open(
        &config.files,
        &config.data_dir,
        public_url(&config, &listener)?,
    )
    .await?;
    layout.record(state.as_ref()).await?;

    let engine = oprc_engine::Service::new(config.engine.clone());
    let engine_handle = engine.handle();
    let engine_cancel = CancellationToken::new();
    let engine_task = tokio::spawn(engine.run(engine_cancel.clone()));

    let registry_options = oprc_registry::Options {
        process_functions: config.process_functions,
    };
    let registry =
        oprc_registry::Registry::open_with(state.clone(), engine_handle.clone(), registry_options)
            .await
            .context("failed to load the stored packages")?;
    for path in &config.apply {
        let source = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read package {}", path.display()))?;
        match registry.apply(&source).await {
            Ok(applied) => {
                for w in &applied.warnings {
                    tracing::warn!(file = %path.display(), warning = %w, "package warning");
                }
                tracing::info!(file = %path.display(), package = %applied.package.name, "package applied");
            }
            Err(oprc_registry::Error::Invalid(diags)) => {
                let text: Vec<String> = diags
                    .iter()
                    .map(|d| format!("{}:{d}", path.display()))
                    .collect();
                anyhow::bail!(
                    "package {} is invalid:\n{}",
                    path.display(),
                    text.join("\n")
                );
            }
            Err(e) => return Err(e).with_context(|| format!("failed to apply {}", path.display())),
        }
    }

    let shared_packages = registry.follows_a_shared_store();
    let mut metrics = prometheus_client::registry::Registry::default();
    let invoker_metrics = oprc_invoker::Metrics::new(&mut metrics);
    metrics.register_collector(Box::new(store_metrics));
    metrics.register_collector(Box::new(crate::metrics::EngineCollector(
        engine_handle.clone(),
    )));
    let invoker = oprc_invoker::Invoker::new(
        config.invoker.clone(),
        oprc_invoker::Parts {
            catalog: registry.shared_catalog(),
            state: state.clone(),
            log,
            engine: Arc::new(engine::Engine(engine_handle)),
            router: Arc::new(oprc_invoker::LocalRouter),
            files: files::invoker_files(&config.files, &files),
            calls: Some(calls(&config, &listener)?),
            metrics: invoker_metrics,
        },
    );
    let invoker_handle = invoker.handle();
    metrics.register_collector(Box::new(crate::metrics::InvokerCollector(
        invoker_handle.clone(),
    )));
    let invoker_cancel = CancellationToken::new();
    let invoker_task = tokio::spawn(invoker.run(invoker_cancel.clone()));
    // The collector takes the last handle of the store here: the store
    // closes once every holder is gone.
    let collector = oprc_adapter::collector::Collector::new(
        files.store.clone(),
        state,
        oprc_adapter::collector::Options {
            interval: config.files.gc_interval,
            grace: config.files.gc_grace,
            ..Default::default()
        },
    );
    metrics.register_collector(Box::new(crate::metrics::FilesCollector(collector.stats())));
    let collector_cancel = CancellationToken::new();
    let collector_task = tokio::spawn(collector.run(collector_cancel.clone()));
    let adapter = files::adapter(&config.files, &files);

    let health = Arc::new(oprc_ingress::Health::default());
    let (watched_pg, watched_nats) = backends.watched(&config);
    let monitor_cancel = CancellationToken::new();
    let monitor_task = tokio::spawn(backends::monitor(
        watched_pg,
        watched_nats,
        backends
            .nats_metrics()
            .map(|m| (m, config.invoker.partitions)),
        health.clone(),
        monitor_cancel.clone(),
    ));
    // A store several nodes share: follow the packages other nodes change.
    let feed_cancel = CancellationToken::new();
    let feed_task = shared_packages.then(|| {
        tokio::spawn(
            registry
                .clone()
                .watch(config.package_poll, feed_cancel.clone()),
        )
    });
    let app = Arc::new(oprc_ingress::AppState {
        invoker: invoker_handle,
        registry,
        metrics: Arc::new(metrics),
        options: api_options(&config, &listener)?,
        files: adapter.clone(),
        relay: config.files.relay,
        health: health.clone(),
    });
    let router = oprc_ingress::router(app.clone()).merge(oprc_adapter::router(adapter));
    let addr = listener.local_addr().context("listener has no address")?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "node ready");

    // Small answers go out at once: without TCP_NODELAY a client that keeps
    // its connection waits ~40 ms (Nagle and delayed ACKs) for a relayed
    // file's body after its headers.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // The API stays up while the invoker drains: running tasks still call
    // other objects and move their files through it (the invoker refuses
    // new calls from clients meanwhile, and /readyz says so).
    let stop_http = CancellationToken::new();
    let mut http = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(stop_http.clone().cancelled_owned())
            .into_future(),
    );
    tokio::select! {
        () = shutdown => {}
        served = &mut http => {
            served.context("http server task failed")?.context("http server failed")?;
            anyhow::bail!("the http server stopped by itself");
        }
    }
    health.stop();
    tracing::info!("shutting down: draining invocations");
    collector_cancel.cancel();
    feed_cancel.cancel();
    if let Some(task) = feed_task {
        task.await.context("package feed task failed")?;
    }
    invoker_cancel.cancel();
    invoker_task.await.context("invoker task failed")?;
    tracing::info!("draining http requests");
    stop_http.cancel();
    http.await
        .context("http server task failed")?
        .context("http server failed")?;
    collector_task.await.context("file collector task failed")?;
    monitor_cancel.cancel();
    monitor_task.await.context("storage monitor task failed")?;
    tracing::info!("stopping function workers");
    engine_cancel.cancel();
    engine_task.await.context("engine task failed")?;
    // The last holders of the store: once they are gone, it commits what is
    // queued and closes the database.
    drop(app);
    drop(backends);
    backends_closed.await;
    tracing::info!("node stopped");
    Ok(())
}

/// The base of the node's own URLs: the configured public URL, else the
/// listen address (loopback for an unspecified one).
fn public_url(config: &Config, listener: &TcpListener) -> anyhow::Result<String> {
    if let Some(url) = &config.files.public_url {
        return Ok(url.clone());
    }
    let mut addr = listener.local_addr().context("listener has no address")?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        tracing::warn!(
            url = %format!("http://{addr}"),
            "file URLs point at the loopback address; set --public-url for clients on other machines"
        );
    }
    Ok(format!("http://{addr}"))
}

/// How tasks call other objects: at the node's public URL, with tokens
/// signed by a key kept in the data directory (so tokens of tasks still
/// running when the node restarts stay valid).
fn calls(config: &Config, listener: &TcpListener) -> anyhow::Result<oprc_invoker::Calls> {
    let key = token::secret(&config.data_dir.join("call-token-key"), "call token key")?;
    Ok(oprc_invoker::Calls::new(
        public_url(config, listener)?,
        key.into_bytes(),
    ))
}

/// The API's options: the configured ones, the listen address (for the
/// `Host` check) and, without `--token`, the admin token from the data
/// directory (created on first start).
fn api_options(config: &Config, listener: &TcpListener) -> anyhow::Result<oprc_ingress::Options> {
    let mut api = config.api.clone();
    api.listen = Some(listener.local_addr().context("listener has no address")?);
    if api.token.is_none() {
        api.admin_token = Some(token::load_or_create(&config.data_dir)?);
        tracing::info!(
            file = %admin_token_path(&config.data_dir).display(),
            "changing packages needs the admin token in this file"
        );
    }
    Ok(api)
}
