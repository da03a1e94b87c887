//! The domain: ids, names, PIDs, segments, limits. No storage, no HTTP.

pub(crate) mod death;
pub(crate) mod history;
pub(crate) mod ids;
pub mod limits;
pub(crate) mod member;
pub(crate) mod name;
pub(crate) mod page;
pub(crate) mod pid;
pub(crate) mod segment;
pub(crate) mod set_expr;
