//! `oprc export` and `oprc import`: the node's stores, named as `serve`
//! names them, opened without a node; progress bars on stderr (on a
//! terminal) and a summary line.

use std::io::IsTerminal;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use oprc_server::archive::{self, Phase, Summary};
use oprc_server::{Config, Overrides, Stores};

use crate::cli::{ArchiveArgs, Global};

fn config(args: &ArchiveArgs, global: &Global) -> anyhow::Result<Config> {
    let mut config = Config::default();
    if let Some(path) = &args.config {
        config = config.merge(Config::read_file(path)?);
    }
    let config = config.merge(Overrides {
        data_dir: global.data_dir.clone(),
        state: args.state.clone(),
        blobs: args.blobs.clone(),
        ..Default::default()
    });
    config.check()?;
    Ok(config)
}

pub async fn export(args: ArchiveArgs, global: Global) -> anyhow::Result<()> {
    let config = config(&args, &global)?;
    let stores = Stores::open(&config).await?;
    eprintln!(
        "oprc: exporting {} (files in {}) to {}",
        stores.state_place,
        oprc_server::redact_url(&stores.blobs_place),
        args.dir.display()
    );
    let bars = Bars::new();
    let done = archive::export(
        stores.state.as_ref(),
        stores.blobs.as_ref(),
        &args.dir,
        &bars,
    )
    .await
    .with_context(|| format!("the export to {} failed", args.dir.display()));
    bars.clear();
    stores.close().await;
    let summary = done?;
    eprintln!("oprc: exported {}", described(&summary));
    Ok(())
}

pub async fn import(args: ArchiveArgs, global: Global) -> anyhow::Result<()> {
    let config = config(&args, &global)?;
    let stores = Stores::open(&config).await?;
    eprintln!(
        "oprc: importing {} into {} (files into {})",
        args.dir.display(),
        stores.state_place,
        oprc_server::redact_url(&stores.blobs_place)
    );
    let bars = Bars::new();
    let done = archive::import(
        &args.dir,
        stores.state.as_ref(),
        stores.blobs.as_ref(),
        &bars,
    )
    .await
    .with_context(|| format!("the import of {} failed", args.dir.display()));
    bars.clear();
    stores.close().await;
    let summary = done?;
    eprintln!(
        "oprc: imported {}; start the node on these stores (objects start a fresh async log)",
        described(&summary)
    );
    Ok(())
}

fn described(s: &Summary) -> String {
    format!(
        "{} packages, {} objects and {} file versions ({} bytes)",
        s.packages, s.objects, s.files, s.bytes
    )
}

/// One bar per phase, shown only on a terminal.
struct Bars {
    multi: MultiProgress,
    bars: [(Phase, ProgressBar); 5],
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::new();
        if !std::io::stderr().is_terminal() {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let make = |phase: Phase, label: &str, bytes: bool| {
            let template = if bytes {
                "{msg:>9} {bytes} {bytes_per_sec}"
            } else {
                "{msg:>9} {pos}/{len} {per_sec}"
            };
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
            bar.set_message(label.to_owned());
            (phase, bar)
        };
        let bars = [
            make(Phase::Check, "checked", false),
            make(Phase::Packages, "packages", false),
            make(Phase::Objects, "objects", false),
            make(Phase::Files, "files", false),
            make(Phase::Bytes, "bytes", true),
        ];
        Self { multi, bars }
    }

    fn bar(&self, phase: Phase) -> &ProgressBar {
        &self
            .bars
            .iter()
            .find(|(p, _)| *p == phase)
            .expect("a bar per phase")
            .1
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl archive::Progress for Bars {
    fn total(&self, phase: Phase, total: u64) {
        self.bar(phase).set_length(total);
    }

    fn advance(&self, phase: Phase, done: u64) {
        self.bar(phase).inc(done);
    }

    fn finish(&self, phase: Phase) {
        self.bar(phase).finish();
    }
}
