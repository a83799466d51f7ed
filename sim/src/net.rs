//! The network and the transport: requests leave, maybe arrive, are processed by the model server, and
//! their answers maybe come back before the transport's timeout. Faults strike here.

use std::time::{Duration, UNIX_EPOCH};

use outbox_core::{Batch, OpResult, Reply, Response, Write};

use crate::store::CURSOR;
use crate::world::{Ev, Fault, Request, World};

impl World {
    /// A send the queue released leaves the tab.
    pub fn start_send(&mut self, tab: usize, batch: Batch) -> Result<(), String> {
        self.check_send(tab, &batch)?;
        self.check_sender(tab, self.next_request, &batch)?;
        self.stats.requests += 1;
        let fault = self.draw_fault();
        let ops: Vec<String> = batch
            .ops
            .iter()
            .map(|o| {
                format!(
                    "{}/{}:{} {:?} key {} if-match {:?} create {}",
                    o.collection,
                    o.key,
                    short(&o.id.to_string()),
                    o.kind,
                    short(&o.idempotency_key.to_string()),
                    o.base_version,
                    o.create_only
                )
            })
            .collect();
        self.note(format!(
            "tab {tab} sends batch {} ({fault:?}): {ops:?}",
            batch.id
        ));
        let id = self.next_request;
        self.next_request += 1;
        self.tabs[tab].outstanding.insert(batch.id);
        let latency = self.rng.u64(2..40);
        if fault != Fault::LostRequest {
            self.at(latency, Ev::Arrive { req: id });
        }
        self.at(self.profile.timeout_ms, Ev::Timeout { req: id });
        let epoch = self.tabs[tab].epoch;
        self.requests.insert(
            id,
            Request {
                tab,
                epoch,
                batch,
                fault,
                reply: None,
                answered: false,
            },
        );
        // Crash point: the leader dies with this request in flight.
        self.crash_point(tab);
        Ok(())
    }

    fn draw_fault(&mut self) -> Fault {
        let p = self.profile.clone();
        if self.chance(p.lost_request) {
            Fault::LostRequest
        } else if self.chance(p.lost_response) {
            Fault::LostResponse
        } else if self.chance(p.error_500) {
            Fault::Error500
        } else if self.chance(p.error_503) {
            let ra = self.rng.bool().then(|| self.retry_after());
            Fault::Error503(ra)
        } else if self.chance(p.rate_limited) {
            let ra = (self.rng.u32(..5) != 0).then(|| self.retry_after());
            Fault::RateLimited(ra)
        } else if self.chance(p.auth_401) {
            Fault::Auth401
        } else if self.chance(p.bare_409) {
            Fault::Bare409
        } else if self.chance(p.stall) {
            Fault::Stall
        } else {
            Fault::None
        }
    }

    /// `Retry-After` in every form a server sends: delta seconds (zero among them), an HTTP-date in the
    /// past or the future, and an absurd ten years.
    fn retry_after(&mut self) -> String {
        match self.rng.u32(..6) {
            0 => "0".into(),
            1 => self.rng.u64(1..30).to_string(),
            2 => http_date(self.time.saturating_sub(self.rng.u64(1_000..86_400_000))),
            3 => http_date(self.time + self.rng.u64(1_000..30_000)),
            4 => "315360000".into(),
            _ => self.rng.u64(30..600).to_string(),
        }
    }

    /// The shortest wait a rate-limited answer allows: the server's ask (capped by the client's
    /// policy) and the policy's floor.
    fn rate_limit_floor(&self, retry_after: Option<&str>) -> u64 {
        let policy = &self.profile.config.retry;
        let asked = retry_after.map_or(0, |ra| match ra.parse::<u64>() {
            Ok(secs) => secs * 1000,
            Err(_) => httpdate::parse_http_date(ra)
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| {
                    (d.as_millis() as u64).saturating_sub(self.time + 1_000)
                }),
        });
        asked.min(policy.max_server_wait_ms).max(policy.floor_ms)
    }

    pub fn arrive(&mut self, req: u64) -> Result<(), String> {
        let request = self.requests[&req].clone();
        let envelope = match &request.fault {
            Fault::Error500 => Some(Response::status(500)),
            Fault::Error503(ra) => Some(with_retry_after(Response::status(503), ra)),
            Fault::RateLimited(ra) => Some(with_retry_after(Response::status(429), ra)),
            Fault::Auth401 => Some(Response::status(401)),
            Fault::Bare409 => Some(Response::status(409)),
            _ => None,
        };
        if let Some(response) = envelope {
            let reply = Reply::whole(self.envelope(response));
            self.requests.get_mut(&req).expect("listed").reply = Some(reply);
            let latency = self.rng.u64(2..40);
            self.at(latency, Ev::Deliver { req });
            return Ok(());
        }
        // Ops whose key is still being processed are answered 409 at once; the rest start.
        let mut early = Vec::new();
        for op in &request.batch.ops {
            if let Err(response) = self.server.begin(op) {
                early.push(OpResult {
                    id: op.id,
                    response,
                });
            }
        }
        self.requests.get_mut(&req).expect("listed").reply = Some(Reply {
            response: Response::status(200),
            results: Some(early),
        });
        let processing = if request.fault == Fault::Stall {
            self.profile.timeout_ms + self.rng.u64(1_000..20_000)
        } else {
            self.rng.u64(1..30)
        };
        self.at(processing, Ev::ServerDone { req });
        Ok(())
    }

    pub fn server_done(&mut self, req: u64) -> Result<(), String> {
        let request = self.requests[&req].clone();
        let mut results = request
            .reply
            .as_ref()
            .and_then(|r| r.results.clone())
            .unwrap_or_default();
        let answered: Vec<_> = results.iter().map(|r| r.id).collect();
        for op in &request.batch.ops {
            if answered.contains(&op.id) {
                continue;
            }
            let processed = self.server.finish(op, self.time)?;
            self.note(format!(
                "server: {} -> {} {:?} applied {}",
                short(&op.id.to_string()),
                processed.response.status,
                processed.response.header("etag"),
                processed.applied.is_some()
            ));
            if let Some(applied) = &processed.applied {
                self.stats.applied += 1;
                self.oracle.check_applied(applied, &self.server)?;
            }
            results.push(OpResult {
                id: op.id,
                response: processed.response,
            });
        }
        // In request order, as the push endpoint answers.
        results.sort_by_key(|r| request.batch.ops.iter().position(|o| o.id == r.id));
        let reply = if self.profile.push {
            Reply {
                response: self.envelope(Response::status(200)),
                results: Some(results),
            }
        } else {
            let only = results.pop().expect("one op per request");
            Reply::whole(self.envelope(only.response))
        };
        self.requests.get_mut(&req).expect("listed").reply = Some(reply);
        if request.fault != Fault::LostResponse {
            let latency = self.rng.u64(2..40);
            self.at(latency, Ev::Deliver { req });
        }
        Ok(())
    }

    /// The headers every answer of the server carries.
    fn envelope(&self, response: Response) -> Response {
        let mut response = response.with_header("Date", http_date(self.time));
        if self.profile.states_retention {
            response = response.with_header(
                "Idempotency-Retention",
                (self.profile.server_ttl_ms / 1000).to_string(),
            );
        }
        response
    }

    pub fn deliver(&mut self, req: u64) -> Result<(), String> {
        let request = self.requests[&req].clone();
        let tab = request.tab;
        if !self.alive(tab, request.epoch) || !self.tabs[tab].outstanding.remove(&request.batch.id)
        {
            return Ok(());
        }
        let reply = request.reply.expect("answered");
        self.requests.get_mut(&req).expect("listed").answered = true;
        if let Fault::RateLimited(ra) = &request.fault {
            let until = self.time + self.rate_limit_floor(ra.as_deref());
            let t = &mut self.tabs[tab];
            t.rate_limited_until = t.rate_limited_until.max(until);
            // Batches formed before the limit was known, only waiting for their commit, are as good as
            // sent already.
            let held: Vec<u64> = t.queue.held_sends().map(|b| b.id).collect();
            t.formed_before_limit.extend(held);
        }
        self.note_seen(tab, &request.batch, &reply);
        let now = self.now(tab);
        let fx = self.tabs[tab]
            .engine()
            .on_reply(request.batch.id, &reply, now, now)
            .map_err(|e| format!("on_reply: {e}"))?;
        self.run(tab, fx)
    }

    pub fn timeout(&mut self, req: u64) -> Result<(), String> {
        let request = self.requests[&req].clone();
        let tab = request.tab;
        if !self.alive(tab, request.epoch) || !self.tabs[tab].outstanding.remove(&request.batch.id)
        {
            return Ok(());
        }
        let now = self.now(tab);
        let fx = self.tabs[tab]
            .engine()
            .on_no_answer(request.batch.id, Some("timed out"), now)
            .map_err(|e| format!("on_no_answer: {e}"))?;
        self.run(tab, fx)
    }

    /// Versions the server delivered to a tab, for the confirmed-state check.
    fn note_seen(&mut self, tab: usize, batch: &Batch, reply: &Reply) {
        let answers: Vec<(&outbox_core::SendOp, &Response)> = match &reply.results {
            Some(results) => results
                .iter()
                .filter_map(|r| Some((batch.ops.iter().find(|o| o.id == r.id)?, &r.response)))
                .collect(),
            None => batch.ops.iter().map(|o| (o, &reply.response)).collect(),
        };
        for (op, response) in answers {
            let Some(version) = response
                .header("etag")
                .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
            else {
                continue;
            };
            let entity = (op.collection.to_string(), op.key.to_string());
            let seen = self.tabs[tab].seen.entry(entity).or_default();
            *seen = (*seen).max(version);
        }
    }

    /// A page of a pull arrives: its documents and the cursor commit together.
    pub fn pull_page(&mut self, tab: usize, since: u64) -> Result<(), String> {
        self.tabs[tab].pulling -= 1;
        if !self.tabs[tab].engine().can_send() {
            return Ok(());
        }
        let (docs, cursor, more) = self.server.pull(since, 20);
        for doc in &docs {
            let entity = (doc.collection.clone(), doc.key.clone());
            let version = crate::store::version(doc);
            let seen = self.tabs[tab].seen.entry(entity).or_default();
            *seen = (*seen).max(version);
        }
        let now = self.now(tab);
        let fx = self.tabs[tab].engine().ingest(docs, now);
        let mut accepted = self.tabs[tab].queue.accept(fx);
        if let Some(group) = self.tabs[tab].queue.add_writes(vec![Write::PutMeta {
            key: CURSOR.to_owned(),
            value: cursor.to_string(),
        }]) {
            accepted.group = Some(group);
        }
        self.tabs[tab].cursor = cursor;
        self.carry_out(tab, accepted)?;
        if more {
            self.tabs[tab].pulling += 1;
            let epoch = self.tabs[tab].epoch;
            let latency = self.rng.u64(2..40);
            self.at(
                latency,
                Ev::PullPage {
                    tab,
                    epoch,
                    since: cursor,
                },
            );
        }
        Ok(())
    }
}

fn with_retry_after(response: Response, retry_after: &Option<String>) -> Response {
    match retry_after {
        Some(ra) => response.with_header("Retry-After", ra.clone()),
        None => response,
    }
}

/// The first 8 characters of an id, for traces.
pub fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

pub fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}
