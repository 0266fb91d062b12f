//! The HTTP side: `POST` (any path) runs a task, `GET /healthz` and
//! `GET /readyz` answer 200. Served on TCP, or on the Unix socket the
//! node's process engine names in `OPRC_SOCKET`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use oprc_core::Task;
use tokio::net::TcpListener;
#[cfg(unix)]
use tokio::net::UnixListener;

use crate::App;
use crate::app::failure;

impl App {
    /// The app as an axum [`Router`], to embed it in a larger server.
    pub fn into_router(self) -> Router {
        let limit = self.body_limit;
        Router::new()
            .route("/healthz", get(health))
            .route("/readyz", get(health))
            .fallback(task)
            .layer(DefaultBodyLimit::max(limit))
            .with_state(Arc::new(self))
    }

    /// Serves tasks on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves tasks on `listener` until `shutdown` completes, then finishes
    /// the requests in flight.
    pub async fn serve_with_shutdown<F>(self, listener: TcpListener, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "failed to set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.into_router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves tasks on the Unix socket `listener` until the process ends.
    #[cfg(unix)]
    pub async fn serve_unix(self, listener: UnixListener) -> io::Result<()> {
        self.serve_unix_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves tasks on the Unix socket `listener` until `shutdown`
    /// completes, then finishes the requests in flight.
    #[cfg(unix)]
    pub async fn serve_unix_with_shutdown<F>(
        self,
        listener: UnixListener,
        shutdown: F,
    ) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        axum::serve(listener, self.into_router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Serves tasks until SIGINT or SIGTERM: on the Unix socket `OPRC_SOCKET`
    /// when it is set (the node's process engine sets it; the socket file is
    /// removed at the end), else on port `PORT` (default 8080) of address
    /// `HOST` (default `0.0.0.0`). This is what a process function's `main`
    /// calls.
    pub async fn run(self) -> io::Result<()> {
        #[cfg(unix)]
        if let Some(path) = std::env::var_os("OPRC_SOCKET").filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            let listener = bind_unix(&path)?;
            tracing::info!(socket = %path.display(), functions = ?self.names(), "serving");
            let served = self
                .serve_unix_with_shutdown(listener, shutdown_signal())
                .await;
            let _ = std::fs::remove_file(&path);
            return served;
        }
        let addr = addr_from_env(
            std::env::var("HOST").ok().as_deref(),
            std::env::var("PORT").ok().as_deref(),
        )?;
        let listener = TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, functions = ?self.names(), "serving");
        self.serve_with_shutdown(listener, shutdown_signal()).await
    }

    /// [`run`](Self::run) on a new multi-threaded Tokio runtime, for a plain
    /// `fn main`.
    pub fn run_blocking(self) -> io::Result<()> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(self.run())
    }
}

/// Binds a Unix socket at `path`, replacing a socket left there (never
/// another kind of file).
#[cfg(unix)]
pub(crate) fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

fn addr_from_env(host: Option<&str>, port: Option<&str>) -> io::Result<SocketAddr> {
    let host = host.unwrap_or("0.0.0.0");
    let port: u16 = match port {
        None => 8080,
        Some(p) => p.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("PORT must be a port number, got {p:?}"),
            )
        })?,
    };
    let ip = host.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("HOST must be an IP address, got {host:?}"),
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
        () = node_gone() => {}
    }
}

/// Completes when the node that started this worker (`OPRC_NODE_PID`, set
/// by the platform's process engine) is gone, so a node that dies without
/// stopping its workers does not leave them running. Never completes when
/// the variable is unset or the platform has no `/proc`.
async fn node_gone() {
    let Some(pid) = std::env::var("OPRC_NODE_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return std::future::pending().await;
    };
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        return std::future::pending().await;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !proc_dir.exists() {
            tracing::warn!(node = pid, "the node is gone; stopping");
            return;
        }
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn task(State(app): State<Arc<App>>, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        let answer = failure(None, "method not allowed; POST a task".to_owned());
        return (StatusCode::METHOD_NOT_ALLOWED, Json(answer)).into_response();
    }
    match serde_json::from_slice::<Task>(&body) {
        Ok(task) => Json(app.call(task).await).into_response(),
        Err(e) => {
            let answer = failure(None, format!("malformed task: {e}"));
            (StatusCode::BAD_REQUEST, Json(answer)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn unix_socket_replaces_a_stale_socket_but_no_other_file() {
        let dir = std::env::temp_dir().join(format!("oprc-sdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.sock");
        drop(bind_unix(&path).unwrap());
        assert!(path.exists(), "a stale socket is left");
        drop(bind_unix(&path).expect("the stale socket is replaced"));
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "data").unwrap();
        assert!(bind_unix(&path).is_err(), "a regular file is not removed");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn address_comes_from_env_with_defaults() {
        assert_eq!(
            addr_from_env(None, None).unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            addr_from_env(Some("127.0.0.1"), Some("9001")).unwrap(),
            "127.0.0.1:9001".parse().unwrap()
        );
        assert_eq!(
            addr_from_env(None, Some("x")).unwrap_err().to_string(),
            r#"PORT must be a port number, got "x""#
        );
    }
}
