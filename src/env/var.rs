//! [`EnvVar`] (what the docs show) and [`Setting`] (how a module applies it).

use crate::error::ConfigError;

/// One environment variable the crate reads, as its documentation shows it.
///
/// ```
/// let vars = rustforge_prod::config::env_vars();
/// let timeout = vars.iter().find(|v| v.name == "RUSTFORGE_REQUEST_TIMEOUT").unwrap();
/// assert_eq!(timeout.key, "http.timeout");
/// assert_eq!(timeout.default, "`30s`");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvVar {
    /// The variable, e.g. `RUSTFORGE_REQUEST_TIMEOUT`.
    pub name: &'static str,
    /// The [`Config`](crate::Config) key it sets (`http.timeout`); empty for a variable the
    /// crate documents but a library underneath reads (the `AWS_*` variables of object_store).
    pub key: &'static str,
    /// The default, as Markdown.
    pub default: &'static str,
    /// What it means, one line of Markdown.
    pub doc: &'static str,
}

/// A variable of the config section `C` and the function that applies its value.
pub(crate) struct Setting<C> {
    pub(crate) var: EnvVar,
    pub(crate) apply: fn(&mut C, &'static str, &str) -> Result<(), ConfigError>,
}

impl<C> Setting<C> {
    /// A variable that sets `key` of `C` through `apply(config, variable name, value)`.
    pub(crate) const fn new(
        name: &'static str,
        key: &'static str,
        default: &'static str,
        doc: &'static str,
        apply: fn(&mut C, &'static str, &str) -> Result<(), ConfigError>,
    ) -> Self {
        Self {
            var: EnvVar {
                name,
                key,
                default,
                doc,
            },
            apply,
        }
    }

    /// A variable the crate documents but a library underneath reads itself.
    #[allow(dead_code)] // only the modules that document such variables use it
    pub(crate) const fn read_elsewhere(
        name: &'static str,
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        Self::new(name, "", default, doc, |_, _, _| Ok(()))
    }
}

/// The entry of `table` for the variable `name`.
pub(crate) fn find<C>(table: &'static [Setting<C>], name: &str) -> Option<&'static Setting<C>> {
    table.iter().find(|setting| setting.var.name == name)
}
