//! Sending: the scheduling indexes, forming batches, the clock, and taking a batch back out of flight
//! when its answer comes.

use super::*;

impl Engine {
    /// The transport got a reply for a batch. See [`Reply`] for how per-op results are matched.
    pub fn on_reply(
        &mut self,
        batch_id: u64,
        reply: &Reply,
        now: u64,
        wall_now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        let mut fx = Vec::new();
        let ids = self.take_batch(batch_id, now, &mut fx)?;
        self.warm_up(ids.iter());
        self.learn_retention(&reply.response, &mut fx);
        if reply.results.is_none()
            && ids.len() > 1
            && self.refused_as_a_whole(&ids, &reply.response, &mut fx)
        {
            self.unmark(&ids, &mut fx);
            self.finish(&mut fx);
            return Ok(fx);
        }
        let envelope_info = rate_limit::parse(&reply.response, wall_now);
        let by_id: Option<HashMap<OpId, &Response>> = reply
            .results
            .as_ref()
            .map(|results| results.iter().map(|r| (r.id, &r.response)).collect());
        for &id in &ids {
            let (response, info) = match &by_id {
                None => (Some(&reply.response), envelope_info),
                Some(by_id) => match by_id.get(&id) {
                    Some(r) if r.is_success() => (Some(*r), RateLimitInfo::default()),
                    Some(r) => (Some(*r), rate_limit::parse(r, wall_now)),
                    None => (None, RateLimitInfo::default()),
                },
            };
            self.settle(id, response, None, info, &mut fx);
        }
        if let Some(ms) = self
            .config
            .retry
            .cap_server_wait(envelope_info.exhausted_for_ms())
        {
            self.block(self.now.saturating_add(ms), &mut fx);
        }
        self.unmark(&ids, &mut fx);
        self.finish(&mut fx);
        Ok(fx)
    }

    /// The send failed without a response (network error, timeout, or the response was lost).
    pub fn on_network_error(&mut self, batch_id: u64, now: u64) -> Result<Vec<Effect>, CoreError> {
        self.on_no_answer(batch_id, None, now)
    }

    /// Like [`Engine::on_network_error`], with the transport's own words for what happened ("timed out
    /// after 15000 ms"), which become the ops' `last_error` message.
    pub fn on_no_answer(
        &mut self,
        batch_id: u64,
        reason: Option<&str>,
        now: u64,
    ) -> Result<Vec<Effect>, CoreError> {
        let mut fx = Vec::new();
        let ids = self.take_batch(batch_id, now, &mut fx)?;
        for &id in &ids {
            self.settle(id, None, reason, RateLimitInfo::default(), &mut fx);
        }
        self.unmark(&ids, &mut fx);
        self.finish(&mut fx);
        Ok(fx)
    }

    /// Takes back the mark of a settled batch of several ops: each of its ops still queued is written
    /// as it now is (unless this call writes it already), then the mark is deleted, in the same
    /// commit. Until then a restore reads the ops through the mark. A batch of one sent on a mark
    /// ahead leaves that mark ([`Engine::settled_ahead`]).
    fn unmark(&mut self, ids: &[OpId], fx: &mut Vec<Effect>) {
        if let [only] = ids {
            self.settled_ahead(*only, fx);
            return;
        }
        for &id in ids {
            self.write_as_it_is(id, fx);
        }
        fx.push(Effect::DeleteMark(ids[0]));
    }

    /// Writes the record of `id`, if still queued, as it now is, unless this call writes or deletes it
    /// already: what a mark said of it no longer counts after that write.
    pub(super) fn write_as_it_is(&self, id: OpId, fx: &mut Vec<Effect>) {
        let written = fx.iter().any(|f| match f {
            Effect::Persist(r) => r.id == id,
            Effect::Delete(d) => *d == id,
            _ => false,
        });
        if let (false, Some(entry)) = (written, self.ops.get(&id)) {
            fx.push(Effect::Persist(entry.record.clone()));
        }
    }

    /// Takes a batch out of flight and moves the clock: how every answer to a send begins.
    pub(super) fn take_batch(
        &mut self,
        batch_id: u64,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> Result<Vec<OpId>, CoreError> {
        let ids = self
            .batches
            .remove(&batch_id)
            .ok_or(CoreError::UnknownBatch(batch_id))?;
        self.advance(now, fx);
        Ok(ids)
    }

    /// Puts `id` into `ready` or `waiting` if it heads its lane, is sendable and is not already there.
    pub(super) fn schedule_if_head(&mut self, id: OpId) {
        let Some(entry) = self.ops.get_mut(&id) else {
            return;
        };
        if entry.slot != Slot::None
            || !entry.durable
            || !matches!(entry.record.state, OpState::Pending | OpState::Backoff)
            || !self.lanes.is_head(entry.lane_hash, id)
        {
            return;
        }
        let seq = entry.record.seq;
        match entry.record.next_attempt_at.filter(|at| *at > self.now) {
            Some(at) => {
                entry.slot = Slot::Waiting;
                self.waiting.insert((at, seq, id), id);
            }
            None => {
                entry.slot = Slot::Ready;
                self.ready.insert((seq, 0, id), id);
            }
        }
    }

    /// Takes an op out of `ready` / `waiting`.
    pub(super) fn unslot(&mut self, id: OpId) {
        let Some(entry) = self.ops.get_mut(&id) else {
            return;
        };
        match entry.slot {
            Slot::None => {}
            Slot::Ready => {
                self.ready.remove(&(entry.record.seq, 0, id));
            }
            Slot::Waiting => {
                let at = entry.record.next_attempt_at.unwrap_or_default();
                self.waiting.remove(&(at, entry.record.seq, id));
            }
        }
        entry.slot = Slot::None;
    }

    /// Reads the memory a batch is about to use, op by op, in one tight loop of independent loads.
    ///
    /// Sending or settling a batch touches every op in it; with a big queue those ops were last used
    /// long ago and are out of cache. Touched one at a time, each miss waits for the one before; touched
    /// here first, the CPU fetches them in parallel. This keeps per-op cost nearly flat from 1k to 100k
    /// queued ops. It changes no state.
    pub(super) fn warm_up<'a>(&self, ids: impl Iterator<Item = &'a OpId>) {
        let mut sum = 0usize;
        for id in ids {
            if let Some(e) = self.ops.get(id) {
                let r = &e.record;
                sum = sum
                    .wrapping_add(e.size as usize)
                    .wrapping_add(r.attempts as usize)
                    .wrapping_add(r.key.as_bytes().first().copied().unwrap_or(0) as usize)
                    .wrapping_add(r.payload.text().len())
                    .wrapping_add(usize::from(r.last_error.is_some()))
                    .wrapping_add(usize::from(r.server_doc.is_some()))
                    .wrapping_add(usize::from(self.lanes.is_head(e.lane_hash, *id)));
            }
        }
        std::hint::black_box(sum);
    }

    /// Removes the head of a lane (ack or discard) and schedules the next op, if any.
    pub(super) fn remove_head(&mut self, lane_hash: u64, id: OpId) {
        if let Some(next) = self.lanes.pop_head(lane_hash, id) {
            self.schedule_if_head(next);
        }
    }

    /// Moves the clock forward: expired backoffs become ready, an expired block lifts.
    pub(super) fn advance(&mut self, now: u64, fx: &mut Vec<Effect>) {
        if !self.passive {
            fx.append(&mut self.deferred);
        }
        self.now = self.now.max(now);
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let ((_, seq, _), id) = entry.remove_entry();
            self.ready.insert((seq, 0, id), id);
            if let Some(e) = self.ops.get_mut(&id) {
                e.slot = Slot::Ready;
            }
        }
        if self.blocked_until.is_some_and(|t| t <= self.now) {
            self.blocked_until = None;
            fx.push(Effect::Emit(Event::Unblocked));
        }
    }

    /// Ends a server-requested block early (the app's explicit retry).
    pub(super) fn lift_block(&mut self, fx: &mut Vec<Effect>) {
        if self.blocked_until.take().is_some() {
            fx.push(Effect::Emit(Event::Unblocked));
        }
    }

    pub(super) fn block(&mut self, until: u64, fx: &mut Vec<Effect>) {
        if until <= self.now || self.blocked_until.is_some_and(|b| b >= until) {
            return;
        }
        self.blocked_until = Some(until);
        fx.push(Effect::Emit(Event::Blocked { until }));
    }

    /// Forms and sends batches while there is room and something is ready.
    ///
    /// Each op sent is marked in flight (and, on its key's first send, given its horizon) by a write that
    /// comes before the `Send`: by the barrier rule the mark is durable before the request leaves, so a
    /// restarted engine always knows the server may have applied the op. The write is a `Persist` of
    /// the op for a batch of one, one `PersistMark` for a batch of several ([`BatchMark`]); the call
    /// that settles the batch takes the mark back ([`Engine::unmark`]). A batch of one whose op was
    /// marked ahead ([`super::mark_ahead`]) writes nothing.
    pub(super) fn pump(&mut self, fx: &mut Vec<Effect>) {
        if self.passive
            || self.paused
            || !self.online
            || self.blocked_until.is_some()
            || self.storage_error.is_some()
        {
            return;
        }
        let max_ops = self
            .learned_max_ops
            .map_or(self.config.max_ops, |n| n.min(self.config.max_ops));
        while self.batches.len() < self.config.max_in_flight && !self.ready.is_empty() {
            self.warm_up(self.ready.values().take(max_ops));
            let mut ids = Vec::new();
            let mut bytes = 0usize;
            while ids.len() < max_ops {
                let Some((_, &id)) = self.ready.first_key_value() else {
                    break;
                };
                let entry = self.ops.get_mut(&id).expect("ready op exists");
                if entry.size == super::UNSIZED {
                    entry.size = super::wire_size(&entry.record);
                }
                let (size, solo) = (entry.size as usize, entry.solo);
                if !ids.is_empty() && (solo || bytes.saturating_add(size) > self.config.max_bytes) {
                    break;
                }
                self.ready.pop_first();
                self.ops.get_mut(&id).expect("ready op exists").slot = Slot::None;
                if self.past_memory(id) == Memory::Forgotten {
                    self.mark_unknown(id, None, fx);
                    continue;
                }
                bytes = bytes.saturating_add(size);
                ids.push(id);
                if solo {
                    break;
                }
            }
            if ids.is_empty() {
                continue;
            }
            let now = self.now;
            let horizon = now.saturating_add(self.safe_retention_ms());
            let mut ops = Vec::with_capacity(ids.len());
            let mut mark = Vec::new();
            for &id in &ids {
                let past = self.past_memory(id) == Memory::ResendGuarded;
                let attempts = self.ops[&id].record.attempts.saturating_add(1);
                let marked_ahead = self.send_under_mark_ahead(id, attempts, ids.len() == 1);
                let entry = self.ops.get_mut(&id).expect("ready op exists");
                entry.sent_past_horizon = past;
                set_state(&mut self.counts, &mut entry.record, OpState::Inflight);
                entry.record.attempts = entry.record.attempts.saturating_add(1);
                entry.record.next_attempt_at = None;
                entry.record.not_before = None;
                entry.record.horizon.get_or_insert(horizon);
                let r = &entry.record;
                ops.push(SendOp {
                    id,
                    idempotency_key: r.idempotency_key,
                    collection: r.collection.clone(),
                    key: r.key.clone(),
                    kind: r.kind.clone(),
                    payload: r.payload.clone(),
                    base_version: r.base_version.clone(),
                    create_only: r.create_only,
                    attempt: r.attempts,
                });
                // `attempts` is stored too, so `max_attempts` survives a tab that crashes on every
                // send.
                if ids.len() == 1 {
                    // Marked ahead: the mark is its write (durable, or waited for by the queue).
                    if !marked_ahead {
                        fx.push(Effect::Persist(entry.record.clone()));
                    }
                } else {
                    let horizon = entry.record.horizon.unwrap_or(horizon);
                    mark.push(MarkedOp(id, entry.record.attempts, horizon));
                }
            }
            if !mark.is_empty() {
                fx.push(Effect::PersistMark(BatchMark { ops: mark }));
            }
            let batch_id = self.next_batch;
            self.next_batch += 1;
            self.batches.insert(batch_id, ids.clone());
            fx.push(Effect::Send(Batch {
                id: batch_id,
                refresh_auth: std::mem::take(&mut self.refresh_auth),
                ops,
            }));
            fx.push(Effect::Emit(Event::Sent { batch_id, ids }));
        }
        self.mark_ahead(fx);
    }

    /// A batch of several ops refused as a whole (a non-2xx answer to the push itself): no op was looked
    /// at, so none is failed for it. Too many ops (`413 batch-too-large`, with the server's `maxOps`)
    /// lowers the batch size from now on; any other refusal may be one op's fault (a body the server
    /// cannot parse), so each op goes alone next time, and only the guilty one fails, for its own answer.
    /// Rate limits, auth and transient answers are not refusals: they go the usual way.
    pub(super) fn refused_as_a_whole(
        &mut self,
        ids: &[OpId],
        response: &Response,
        fx: &mut Vec<Effect>,
    ) -> bool {
        let kind = self.ops.get(&ids[0]).map(|e| e.record.kind.clone());
        let class = classify(
            &self.config.rules,
            &self.config.key_in_flight_problem_types,
            &kind.unwrap_or(OpKind::Put),
            Some(response),
        );
        if !matches!(class, OutcomeClass::Permanent | OutcomeClass::Conflict) {
            return false;
        }
        let too_many = response.status == 413
            && response
                .problem_type()
                .is_some_and(|t| t.ends_with("/batch-too-large"));
        if too_many {
            let stated = response
                .body_value()
                .and_then(|b| b.get("maxOps")?.as_u64())
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0);
            let limit = stated.unwrap_or(ids.len() / 2).clamp(1, ids.len() - 1);
            self.learned_max_ops = Some(self.learned_max_ops.map_or(limit, |l| l.min(limit)));
        }
        let error = settling::op_error(OutcomeClass::Transient, Some(response), None);
        let now = self.now;
        for &id in ids {
            let Some(entry) = self.ops.get_mut(&id) else {
                continue;
            };
            entry.solo = entry.solo || !too_many;
            // Not the op's failure: its attempt is not charged to it.
            entry.record.uncharged_attempts = entry.record.uncharged_attempts.saturating_add(1);
            self.reschedule(id, now, None, error.clone(), fx);
        }
        true
    }

    /// Whether the server can still be relied on to remember the op's key, if the op may have been
    /// applied under it.
    pub(super) fn past_memory(&self, id: OpId) -> Memory {
        let r = &self.ops[&id].record;
        if !r.maybe_applied || r.horizon.is_none_or(|h| self.now < h) {
            Memory::Remembered
        } else if r.is_conditional() {
            Memory::ResendGuarded
        } else {
            Memory::Forgotten
        }
    }

    /// When the clock is next stored while ops are held: twice per margin the horizons keep, so a
    /// clock set back by more than the margin is noticed at the next load (at least every minute,
    /// at most every hour).
    pub(super) fn next_clock_mark(&self) -> u64 {
        let period = (self.safe_retention_ms() / 18).clamp(60_000, 3_600_000);
        self.clock_marked.saturating_add(period)
    }

    /// The retention the client relies on: the configured one, or the server's shorter statement,
    /// less a tenth as a margin for clock drift and the server's own timing.
    pub(super) fn safe_retention_ms(&self) -> u64 {
        let retention = self
            .stated_retention_ms
            .map_or(self.config.idempotency_retention_ms, |stated| {
                stated.min(self.config.idempotency_retention_ms)
            });
        retention - retention / 10
    }

    /// Ends every call: send what is ready, then report drained / wake-up / status changes.
    pub(super) fn finish(&mut self, fx: &mut Vec<Effect>) {
        if !self.passive && !self.ops.is_empty() && self.now >= self.next_clock_mark() {
            self.clock_marked = self.now;
            fx.push(Effect::PersistClock(self.now));
        }
        self.pump(fx);
        if !self.passive {
            self.drop_spent_marks_ahead(fx);
        }
        // The sync is over when nothing is left to settle: `Drained`, and the next one counts from zero.
        let busy = self.to_settle() > 0;
        if !busy {
            self.settled = 0;
        }
        if self.busy && !busy {
            fx.push(Effect::Emit(Event::Drained));
        }
        self.busy = busy;
        let wake = self.next_wake();
        if let Some(at) = wake.filter(|_| wake != self.scheduled_wake) {
            fx.push(Effect::ScheduleWake(at));
        }
        self.scheduled_wake = wake;
        let status = self.status();
        if self.last_status.as_ref() != Some(&status) {
            fx.push(Effect::Emit(Event::StatusChanged {
                status: status.clone(),
            }));
            self.last_status = Some(status);
        }
    }
}
