//! `oprc cls` and `oprc fn`: the resolved catalogue.

use super::{Ctx, list_all};
use crate::cli::{ClsCmd, FnCmd};
use crate::output::{self, Format};

pub async fn classes(ctx: &Ctx, cmd: ClsCmd) -> anyhow::Result<()> {
    match cmd {
        ClsCmd::List => {
            let list = list_all(ctx, &["classes"]).await?;
            output::print(ctx.format(Format::Table), &list, output::classes)
        }
        ClsCmd::Get { cls } => {
            let class = ctx.client.call(ctx.client.get(&["classes", &cls])).await?;
            output::print(ctx.format(Format::Json), &class, output::classes)
        }
    }
}

pub async fn functions(ctx: &Ctx, cmd: FnCmd) -> anyhow::Result<()> {
    match cmd {
        FnCmd::List => {
            let list = list_all(ctx, &["functions"]).await?;
            output::print(ctx.format(Format::Table), &list, output::functions)
        }
        FnCmd::Get { key } => {
            let f = ctx
                .client
                .call(ctx.client.get(&["functions", &key]))
                .await?;
            output::print(ctx.format(Format::Json), &f, output::functions)
        }
    }
}
