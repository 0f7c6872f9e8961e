//! `fleetmind migrate`: creates the database if needed, brings the schema up
//! to date, and exits.

use super::database::{self, Missing};
use super::{CliError, GlobalArgs};
use crate::store::PoolOptions;

pub(super) async fn run(global: &GlobalArgs, pool: &PoolOptions) -> Result<(), CliError> {
    database::open(&global.database_url, pool, Missing::Create).await?;
    println!(
        "the schema of {} is up to date",
        database::shown(&global.database_url)
    );
    Ok(())
}
