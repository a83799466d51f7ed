//! Group commit: every write submitted in the same JS task shares ONE IndexedDB transaction.
//!
//! An app that enqueues 1,000 changes in a loop would otherwise pay for 1,000 transactions, each with its
//! own commit (and, with strict durability, its own fsync). Instead, the first submit of a task schedules a
//! flush on the microtask queue, which runs only once the task's synchronous code has finished; every
//! submit until then joins the same group. Each caller's future resolves once the group's transaction has
//! committed, so "resolved" still means "durable".

use std::cell::RefCell;
use std::future::Future;
use std::mem;
use std::rc::Rc;

use futures_channel::oneshot;

use super::{IdbStore, StoreError, Write};

/// Batches writes per JS task into one [`IdbStore::commit`].
pub struct GroupCommit {
    store: Rc<IdbStore>,
    group: RefCell<Group>,
}

#[derive(Default)]
struct Group {
    writes: Vec<Write>,
    waiters: Vec<oneshot::Sender<Result<(), StoreError>>>,
    flush_scheduled: bool,
}

impl GroupCommit {
    /// Wraps a store.
    pub fn new(store: Rc<IdbStore>) -> Rc<Self> {
        Rc::new(Self {
            store,
            group: RefCell::new(Group::default()),
        })
    }

    /// The store the groups are committed to.
    pub fn store(&self) -> &Rc<IdbStore> {
        &self.store
    }

    /// Adds `writes` to the current task's group. The returned future resolves when the group's single
    /// transaction has committed, or fails with its error: the writes of a group land all together or not
    /// at all.
    ///
    /// The writes join the group at call time, not when the future is first polled.
    pub fn submit(
        self: &Rc<Self>,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let (done, result) = oneshot::channel();
        let schedule = {
            let mut group = self.group.borrow_mut();
            group.writes.extend(writes);
            group.waiters.push(done);
            !mem::replace(&mut group.flush_scheduled, true)
        };
        if schedule {
            let this = Rc::clone(self);
            // spawn_local runs the flush from the microtask queue, after the current task's synchronous
            // code: exactly the boundary that defines "the same task".
            wasm_bindgen_futures::spawn_local(async move { this.flush().await });
        }
        async move {
            result
                .await
                .unwrap_or(Err(StoreError::Closed { cause: None }))
        }
    }

    async fn flush(&self) {
        let group = mem::take(&mut *self.group.borrow_mut());
        let result = self.store.commit(&group.writes).await;
        for waiter in group.waiters {
            // A caller that dropped its future no longer wants the answer; the write happened regardless.
            let _ = waiter.send(result.clone());
        }
    }
}
