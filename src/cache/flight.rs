//! Single flight: concurrent misses of one key in this process wait for one load.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;

use crate::util::Cause;

/// The loads in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    loading: Mutex<HashMap<String, watch::Receiver<Landing>>>,
}

/// How a load ended, as its followers see it.
#[derive(Clone)]
pub(crate) enum Landing {
    Flying,
    /// The encoded value, as stored.
    Landed(Bytes),
    Failed(Cause),
    /// The leader was dropped (its request cancelled) before it finished: a follower takes over.
    Abandoned,
}

/// The caller's part in a load.
pub(crate) enum Role<'a> {
    /// Runs the load and reports it through the pilot.
    Leader(Pilot<'a>),
    /// Waits for the leader.
    Follower(watch::Receiver<Landing>),
}

impl Flights {
    /// Whether a load of `key` is in progress.
    pub(crate) fn is_flying(&self, key: &str) -> bool {
        self.loading.lock().unwrap().contains_key(key)
    }

    /// Leads the load of `key`, or follows the one in progress.
    pub(crate) fn join(&self, key: &str) -> Role<'_> {
        let mut loading = self.loading.lock().unwrap();
        if let Some(flight) = loading.get(key) {
            return Role::Follower(flight.clone());
        }
        let (report, flight) = watch::channel(Landing::Flying);
        loading.insert(key.to_owned(), flight);
        Role::Leader(Pilot {
            flights: self,
            key: key.to_owned(),
            report,
            landed: false,
        })
    }
}

/// Waits for the leader's outcome; a leader gone without one reads as [`Landing::Abandoned`].
pub(crate) async fn follow(mut flight: watch::Receiver<Landing>) -> Landing {
    match flight
        .wait_for(|landing| !matches!(landing, Landing::Flying))
        .await
    {
        Ok(landing) => landing.clone(),
        Err(_) => Landing::Abandoned,
    }
}

/// The leader's handle: reports the outcome once, and `Abandoned` when dropped without one.
pub(crate) struct Pilot<'a> {
    flights: &'a Flights,
    key: String,
    report: watch::Sender<Landing>,
    landed: bool,
}

impl Pilot<'_> {
    /// Tells the followers and ends the flight: the next miss starts a new one.
    pub(crate) fn land(mut self, landing: Landing) {
        self.finish(landing);
    }

    fn finish(&mut self, landing: Landing) {
        self.landed = true;
        self.flights.loading.lock().unwrap().remove(&self.key);
        self.report.send_replace(landing);
    }
}

impl Drop for Pilot<'_> {
    fn drop(&mut self) {
        if !self.landed {
            self.finish(Landing::Abandoned);
        }
    }
}
