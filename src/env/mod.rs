//! Environment variables: how a module declares the variables it reads, and the parsers they
//! share.
//!
//! Each module declares its variables once, in a table next to its config type — name, config
//! key, default, one line of documentation and the function that applies the value. The crate's
//! table ([`crate::config::env_vars`]) is those tables joined; the README's environment table and
//! `docs/environment.md` are generated from it (a test keeps them in step). A variable is applied
//! by its own function, so a declared variable can't be forgotten by a `match`.

pub(crate) mod parse;
mod var;

pub use var::EnvVar;
pub(crate) use var::{Setting, find};
