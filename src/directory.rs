//! Who counts as a person: the [`PersonDirectory`] a host may plug in.

use std::collections::HashSet;
use std::fmt;

use crate::{OrgId, Pid, Result};

/// Decides which well-formed PIDs are real people, for
/// [`Segments::add_members`](crate::Segments::add_members).
///
/// The documented API reports PIDs "not found in the database" in
/// `invalid_minerva_pids` and skips them. A host with its own people
/// database plugs it in here with
/// [`Segments::with_person_directory`](crate::Segments::with_person_directory).
/// Without one, every well-formed PID is accepted. Removal does not consult
/// the directory: a PID that is not a member is simply not counted.
pub trait PersonDirectory: Send + Sync + fmt::Debug {
    /// For each of `pids` (well-formed, each once, in the order the caller
    /// first gave them), whether it is a known person of `org`. Called once per add
    /// call, with the whole batch.
    ///
    /// # Errors
    /// Any error fails the add call, which then changes nothing.
    fn known(&self, org: &OrgId, pids: &[Pid]) -> Result<Vec<bool>>;
}

/// A directory of a fixed set of PIDs, the same for every org.
///
/// ```
/// use segments_engine::{KnownPids, MemoryStore, NewSegment, OrgId, Segments};
/// let segments = Segments::new(MemoryStore::new())
///     .with_person_directory(KnownPids::new(["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4"])?);
/// let org = OrgId::new("acme")?;
/// let s = segments.create(&org, NewSegment::new("Known only"))?;
/// let out = segments.add_members(&org, s.id, &["p-a1b2c3d4e5f6", "p-invalid123"])?;
/// assert_eq!(out.n_added, 1);
/// assert_eq!(out.invalid_pids, ["p-invalid123"]);
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct KnownPids(HashSet<Pid>);

impl KnownPids {
    /// A directory that knows exactly `pids`.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) if one of them is not a
    /// well-formed PID.
    pub fn new<I>(pids: I) -> Result<Self>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        pids.into_iter()
            .map(|p| Ok(Pid::parse(p.as_ref())?))
            .collect::<Result<_>>()
            .map(Self)
    }

    /// Adds a person.
    pub fn insert(&mut self, pid: Pid) {
        self.0.insert(pid);
    }
}

impl PersonDirectory for KnownPids {
    fn known(&self, _org: &OrgId, pids: &[Pid]) -> Result<Vec<bool>> {
        Ok(pids.iter().map(|p| self.0.contains(p)).collect())
    }
}
