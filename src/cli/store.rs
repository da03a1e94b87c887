//! Opening the store the options name (`--db FILE` or `--postgres URL`),
//! and reading `--org`.

use std::path::Path;

use segments_engine::{OrgId, SegmentStore, Segments, SqliteStore};

use crate::args::Target;
use crate::failure::{Failure, chain};

/// The service on whichever store the command line names.
pub(crate) type Service = Segments<Box<dyn SegmentStore>>;

/// Whether a command may create a SQLite database that does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Open {
    /// `import` and `migrate`: a missing file is created.
    CreateIfMissing,
    /// Commands that only read: a missing file is a mistake (a typo in the
    /// path), not an empty database.
    MustExist,
}

/// Opens (and so migrates) the store the options name.
///
/// # Errors
/// A usage error when neither or both of `--db` and `--postgres` are
/// given, or `--postgres` in a build without PostgreSQL; a failure when
/// the store cannot be opened.
pub(crate) fn open(target: &Target, open: Open) -> Result<Service, Failure> {
    let store: Box<dyn SegmentStore> = match (&target.db, &target.postgres) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "--db and --postgres name two stores: pass one of them",
            ));
        }
        (None, None) => {
            return Err(Failure::usage(
                "no store given: pass --db FILE (SQLite) or --postgres URL",
            ));
        }
        (Some(path), None) => Box::new(sqlite(path, open)?),
        (None, Some(url)) => postgres(url)?,
    };
    Ok(Segments::new(store))
}

fn sqlite(path: &Path, open: Open) -> Result<SqliteStore, Failure> {
    if open == Open::MustExist && !path.exists() {
        return Err(Failure::failed(format!(
            "{}: no such database file (`segments import` or `segments migrate` creates one)",
            path.display()
        )));
    }
    SqliteStore::open(path)
        .map_err(|e| Failure::failed(format!("{}: {}", path.display(), chain(&e))))
}

#[cfg(feature = "postgres")]
fn postgres(url: &str) -> Result<Box<dyn SegmentStore>, Failure> {
    // The URL may hold a password: the message does not repeat it.
    segments_engine::PostgresStore::connect(url)
        .map(|store| Box::new(store) as Box<dyn SegmentStore>)
        .map_err(|e| Failure::failed(format!("PostgreSQL (--postgres): {}", chain(&e))))
}

#[cfg(not(feature = "postgres"))]
fn postgres(_url: &str) -> Result<Box<dyn SegmentStore>, Failure> {
    Err(Failure::usage(
        "--postgres: this `segments` was built without PostgreSQL; install it with \
         `cargo install segments-engine --features cli,postgres`",
    ))
}

/// The org `--org` names.
///
/// # Errors
/// A usage error when `--org` is missing or not a valid org id.
pub(crate) fn org(target: &Target) -> Result<OrgId, Failure> {
    let org = target
        .org
        .as_deref()
        .ok_or_else(|| Failure::usage("--org ORG is required"))?;
    OrgId::new(org).map_err(|e| Failure::usage(format!("--org: {e}")))
}
