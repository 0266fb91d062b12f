//! The package manager and class registry of a node (the paper's class
//! module and class runtime manager).
//!
//! Applying a package: parse and validate it against the whole catalog
//! (`oprc-package`), hand its task functions to the FaaS engine (each at
//! the revision `ResolvedFunction::fingerprint`, so the engine refuses a
//! call planned against another definition), store its source durably,
//! then swap in the new catalog atomically, so readers see either the old
//! or the new classes, never a mix. Nothing is stored or
//! changed when anything is invalid. At start, the stored packages are
//! loaded and deployed again.
//!
//! On a store that several nodes share, [`Registry::watch`] follows the
//! store's packages' change counter and reloads the catalog when another
//! node changed a package (the change feed).
//!
//! It does not run invocations and does not speak HTTP.

mod deploy;

use std::sync::Arc;

use arc_swap::ArcSwap;
use oprc_package::{Catalog, Diagnostic, ResolvedPackage};
use oprc_store::StateStore;

pub use deploy::deployment_of;

/// Why a registry operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The package is invalid; every problem is listed.
    #[error("the package is invalid")]
    Invalid(Vec<Diagnostic>),
    #[error("package `{0}` does not exist")]
    NotFound(String),
    /// The operation would break the catalog (e.g. deleting a package that
    /// others depend on).
    #[error("{0}")]
    Refused(String),
    #[error("storage failed")]
    Storage(#[from] oprc_store::Error),
}

/// The outcome of applying a package.
#[derive(Debug)]
pub struct Applied {
    pub package: ResolvedPackage,
    pub warnings: Vec<Diagnostic>,
    /// `false` when it replaced a package of the same name.
    pub created: bool,
}

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// Options of the registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// `false`: functions with `provision.process` are refused when a
    /// package is applied, and not started when stored (the node then
    /// runs no command a package names).
    pub process_functions: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            process_functions: true,
        }
    }
}

struct Inner {
    options: Options,
    catalog: Arc<ArcSwap<Catalog>>,
    state: Arc<dyn StateStore>,
    engine: oprc_engine::Handle,
    /// Applies, deletes and reloads run one at a time.
    write: tokio::sync::Mutex<()>,
    /// The store's packages' change counter as of the catalog in use.
    seen: parking_lot::Mutex<Option<u64>>,
}

impl Registry {
    /// Loads the stored packages and deploys their functions.
    pub async fn open(
        state: Arc<dyn StateStore>,
        engine: oprc_engine::Handle,
    ) -> Result<Self, Error> {
        Self::open_with(state, engine, Options::default()).await
    }

    /// [`Registry::open`] with options.
    pub async fn open_with(
        state: Arc<dyn StateStore>,
        engine: oprc_engine::Handle,
        options: Options,
    ) -> Result<Self, Error> {
        let version = state.packages_version().await?;
        let catalog = load_stored(state.as_ref()).await?;
        deploy_all(&catalog, &engine, &options);
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                catalog: Arc::new(ArcSwap::from_pointee(catalog)),
                state,
                engine,
                write: tokio::sync::Mutex::new(()),
                seen: parking_lot::Mutex::new(version),
            }),
        })
    }

    /// Loads the stored packages again if the store's change counter moved
    /// since this node last saw it (another node applied or deleted a
    /// package): the catalog is swapped, new and changed functions are
    /// deployed, removed ones undeployed. Returns whether it reloaded. A
    /// store only one node opens has no counter: nothing to do.
    pub async fn reload_if_changed(&self) -> Result<bool, Error> {
        let _write = self.inner.write.lock().await;
        let Some(version) = self.inner.state.packages_version().await? else {
            return Ok(false);
        };
        if *self.inner.seen.lock() == Some(version) {
            return Ok(false);
        }
        let next = load_stored(self.inner.state.as_ref()).await?;
        let current = self.inner.catalog.load_full();
        let keep: std::collections::HashSet<_> = next.functions().map(|f| f.key.clone()).collect();
        for f in current.functions() {
            if !keep.contains(&f.key) {
                self.inner.engine.undeploy(&f.key);
            }
        }
        deploy_all(&next, &self.inner.engine, &self.inner.options);
        self.inner.catalog.store(Arc::new(next));
        *self.inner.seen.lock() = Some(version);
        tracing::info!(
            version,
            "packages changed by another node; catalog reloaded"
        );
        Ok(true)
    }

    /// Follows the change feed every `every` until `cancel`: see
    /// [`Registry::reload_if_changed`]. Storage failures are logged and
    /// retried at the next tick.
    pub async fn watch(
        self,
        every: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.reload_if_changed().await {
                tracing::warn!(error = %e, "cannot follow the packages' change feed; retrying");
            }
        }
    }

    /// Whether the store has a packages' change counter (several nodes may
    /// share it): then [`Registry::watch`] has something to follow.
    pub fn follows_a_shared_store(&self) -> bool {
        self.inner.seen.lock().is_some()
    }

    /// The live catalog, shared with the invoker.
    pub fn shared_catalog(&self) -> Arc<ArcSwap<Catalog>> {
        self.inner.catalog.clone()
    }

    /// A snapshot of the catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.load_full()
    }

    /// Where the deployed functions run now: workers, calls, counters.
    pub fn deployments(&self) -> oprc_engine::Status {
        self.inner.engine.status()
    }

    /// Creates or replaces a package from its YAML or JSON source.
    pub async fn apply(&self, source: &str) -> Result<Applied, Error> {
        // Parsing and resolving are CPU work (milliseconds for a big
        // package): off the async runtime.
        let text = source.to_owned();
        let doc = blocking(move || oprc_package::parse(&text)).await??;
        let _write = self.inner.write.lock().await;
        let current = self.inner.catalog.load_full();
        let created = current.package(doc.name()).is_none();
        let (doc, applied) = blocking(move || {
            let applied = current.apply(&doc);
            applied.map(|a| (doc, a))
        })
        .await??;
        let current = self.inner.catalog.load_full();
        let package = applied.package.clone();
        // Check every deployment before changing anything.
        let mut deployments = Vec::new();
        let mut problems = Vec::new();
        let mut warnings = applied.warnings;
        for f in package_functions(&applied.catalog, doc.name()) {
            if !self.inner.options.process_functions && deploy::is_process(f) {
                problems.push(deploy::process_refused(&doc, f));
                continue;
            }
            match deploy::deployment_of(f) {
                Some(d) => deployments.push((f.key.clone(), d, f.revision())),
                None if deploy::needs_deployment(f) => problems.push(deploy::missing(&doc, f)),
                None => warnings.extend(deploy::cluster_only(&doc, f)),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        warnings.extend(deploy::node_level_settings(&doc));
        self.inner.state.put_package(doc.name(), source).await?;
        // Functions the new version no longer has.
        let keep: Vec<_> = deployments.iter().map(|(k, _, _)| k.clone()).collect();
        for f in package_functions(&current, doc.name()) {
            if !keep.contains(&f.key) {
                self.inner.engine.undeploy(&f.key);
            }
        }
        // Each at its function's fingerprint: a call planned against the
        // previous definition is then refused by the engine
        // (`InvokeError::Changed`) instead of running on the new one.
        for (key, d, revision) in deployments {
            if let Err(e) = self.inner.engine.deploy(key.clone(), d, revision) {
                // Validated above, so this is an engine-side refusal; the
                // package is stored, calls to this function will fail.
                tracing::error!(function = %key, error = %e, "deploy failed");
            }
        }
        self.inner.catalog.store(Arc::new(applied.catalog));
        tracing::info!(package = %doc.name(), created, "package applied");
        Ok(Applied {
            package,
            warnings,
            created,
        })
    }

    /// Deletes a package and stops its functions. Objects of its classes
    /// stay stored (re-applying the package makes them reachable again).
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let _write = self.inner.write.lock().await;
        let current = self.inner.catalog.load_full();
        if current.package(name).is_none() {
            return Err(Error::NotFound(name.to_owned()));
        }
        let next = current
            .remove(name)
            .map_err(|e| Error::Refused(e.to_string()))?;
        self.inner.state.delete_package(name).await?;
        for f in package_functions(&current, name) {
            self.inner.engine.undeploy(&f.key);
        }
        self.inner.catalog.store(Arc::new(next));
        tracing::info!(package = %name, "package deleted");
        Ok(())
    }
}

/// The catalog of the stored packages.
async fn load_stored(state: &dyn StateStore) -> Result<Catalog, Error> {
    let mut docs = Vec::new();
    for (name, source) in state.list_packages().await? {
        match oprc_package::parse(&source) {
            Ok(doc) => docs.push(doc),
            Err(diags) => {
                // Stored sources were valid when applied; a newer
                // version of the format may disagree. Keep the node up.
                tracing::error!(package = %name, problems = diags.len(), first = %diags[0], "stored package no longer parses; skipped");
            }
        }
    }
    Catalog::load(docs).map_err(|e| Error::Refused(format!("stored packages do not load: {e}")))
}

/// Deploys every function of `catalog` (an equal deployment already
/// running is kept).
fn deploy_all(catalog: &Catalog, engine: &oprc_engine::Handle, options: &Options) {
    for f in catalog.functions() {
        if !options.process_functions && deploy::is_process(f) {
            tracing::warn!(function = %f.key, "process functions are disabled on this node; stored function not started");
            continue;
        }
        if let Some(d) = deploy::deployment_of(f)
            && let Err(e) = engine.deploy(f.key.clone(), d, f.revision())
        {
            tracing::error!(function = %f.key, error = %e, "cannot deploy stored function");
        }
    }
}

/// Runs CPU work on a blocking thread; a panic there is a refusal, not a
/// crash of the node.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Vec<Diagnostic>> + Send + 'static,
) -> Result<Result<T, Error>, Error> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result.map_err(Error::Invalid)),
        Err(e) => Err(Error::Refused(format!(
            "the package could not be processed: {e}"
        ))),
    }
}

fn package_functions<'a>(
    catalog: &'a Catalog,
    name: &str,
) -> impl Iterator<Item = &'a oprc_package::ResolvedFunction> {
    catalog
        .package(name)
        .into_iter()
        .flat_map(|p| p.functions.iter().map(|f| f.as_ref()))
}
