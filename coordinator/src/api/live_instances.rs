//! Every coordinator's view of the live app instances, kept by following
//! the instances bucket (`followed.rs`), so that `app.status` and
//! `app.list` read only the app's own instances, not every instance the
//! bucket keeps.

use super::followed::{Followed, View};
use crate::store::{Bucket, StoreError};
use async_nats::jetstream::kv::{Entry, Operation};
use reef_proto::app::Instance;
use reef_proto::{decode, InstanceId};
use std::collections::HashMap;
use tokio_util::task::TaskTracker;

/// The live instances, by id.
#[derive(Default)]
struct Live(HashMap<InstanceId, Instance>);

impl View for Live {
    fn reset(&mut self, _last: u64) -> Option<u64> {
        self.0.clear();
        None
    }

    fn take_in(&mut self, entry: Entry) {
        let Ok(id) = entry.key.parse::<InstanceId>() else {
            return;
        };
        let instance = match entry.operation {
            Operation::Put => decode::<Instance>(&entry.value).ok(),
            Operation::Delete | Operation::Purge => None,
        };
        match instance {
            Some(instance) if !instance.state.is_terminal() => {
                self.0.insert(id, instance);
            }
            _ => {
                self.0.remove(&id);
            }
        }
    }
}

pub(crate) struct LiveInstances {
    bucket: Bucket<Instance>,
    followed: Followed<Live>,
}

impl LiveInstances {
    pub(crate) fn new(bucket: Bucket<Instance>, tasks: TaskTracker) -> Self {
        Self {
            followed: Followed::new(bucket.kv().clone(), tasks),
            bucket,
        }
    }

    /// Ends the watch.
    pub(crate) fn stop(&self) {
        self.followed.stop();
    }

    /// The live instances of `app`, by id.
    pub(crate) async fn of(&self, app: &str) -> Result<Vec<Instance>, StoreError> {
        let last = self.bucket.last_written().await?;
        if !self.followed.caught_up(last).await {
            tracing::debug!(
                last,
                "the instances view is behind; answering with what it has"
            );
        }
        let live = self.followed.view();
        let mut instances: Vec<Instance> =
            live.0.values().filter(|i| i.app == app).cloned().collect();
        instances.sort_by_key(|i| i.id);
        Ok(instances)
    }
}
