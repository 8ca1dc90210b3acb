//! `ProductionLayer` from environment variables, the error a bad variable gives, and reading
//! one value out of a `/metrics` text.

use rustforge_prod::ProductionLayer;

/// The layer `vars` configure; panics on a configuration error.
pub async fn from_vars(vars: &[(&str, &str)]) -> ProductionLayer {
    ProductionLayer::builder()
        .from_vars(vars.iter().copied())
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// The error `vars` give, whether reading them or building finds it.
pub async fn config_error(vars: &[(&str, &str)]) -> String {
    match ProductionLayer::builder().from_vars(vars.iter().copied()) {
        Err(err) => err.to_string(),
        Ok(builder) => builder.build().await.unwrap_err().to_string(),
    }
}

/// The sum of the samples whose line starts with `prefix` (a name, or a name and labels).
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}
