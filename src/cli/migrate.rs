//! `fleetmind migrate`: creates the database if needed, brings the schema up
//! to date, and exits.

use super::{CliError, GlobalArgs};
use crate::store::{self, PoolOptions};

pub(super) async fn run(global: &GlobalArgs, pool: &PoolOptions) -> Result<(), CliError> {
    store::open(&global.database_url, pool).await?;
    println!("database schema is up to date");
    Ok(())
}
