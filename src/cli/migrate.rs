//! `segments migrate`: creates or upgrades the schema, for operators who
//! run migrations apart from the application. Opening a store migrates
//! it (under a lock, so servers starting at the same time are safe); a
//! database from a newer version is refused, untouched.

use crate::args::Target;
use crate::failure::Failure;
use crate::store::{self, Open};

/// Runs `segments migrate`.
///
/// # Errors
/// A usage error without a store; a failure when the store cannot be
/// opened or migrated (a newer schema among them).
pub(crate) fn run(target: &Target) -> Result<(), Failure> {
    drop(store::open(target, Open::CreateIfMissing)?);
    let place = match (&target.db, &target.postgres) {
        (Some(path), _) => path.display().to_string(),
        _ => "PostgreSQL".to_owned(),
    };
    println!("{place}: schema up to date");
    Ok(())
}
