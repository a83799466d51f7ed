//! The simulated world: a clock, an event queue, the server, the durable store, the tabs, and the app.
//!
//! Everything happens as an event at a time; one event is processed at a time, and a crash may fall
//! between any two, which is every effect boundary the runtime has: between an engine call and the
//! commit of its writes, between a commit and the sends it releases, between a request leaving and its
//! answer, between an answer and the commit of what it changed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use outbox_core::{Batch, OpId, Reply};

use crate::broadcast::Msg;
use crate::lock::Lock;
use crate::oracle::Oracle;
use crate::profile::Profile;
use crate::rebuild::Forward;
use crate::sends::SendLog;
use crate::server::Server;
use crate::store::Store;
use crate::tab::Tab;
use crate::Stats;

/// How a request's journey goes wrong, drawn when it leaves.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Never reaches the server; the client times out.
    LostRequest,
    /// Processed; the answer never comes back.
    LostResponse,
    /// Answered 500 before any op is looked at.
    Error500,
    /// Answered 503, maybe with a `Retry-After`.
    Error503(Option<String>),
    /// Answered 429 with this `Retry-After` (if any).
    RateLimited(Option<String>),
    Auth401,
    /// A proxy's 409 with no body.
    Bare409,
    /// The server takes longer than the client waits; it still finishes.
    Stall,
}

/// A request on its way.
#[derive(Clone, Debug)]
pub struct Request {
    pub tab: usize,
    pub epoch: u64,
    pub batch: Batch,
    pub fault: Fault,
    /// The answer, once the server has made it.
    pub reply: Option<Reply>,
    /// The answer reached the engine that sent it.
    pub answered: bool,
}

#[derive(Clone, Debug)]
pub enum Ev {
    /// The app does something.
    App,
    /// The microtask that starts the next commit of a tab.
    CommitBegin { tab: usize, epoch: u64 },
    /// A commit's transaction ends.
    CommitEnd { tab: usize, epoch: u64, ok: bool },
    /// The debounced confirmation of enqueues made durable.
    Confirm { tab: usize, epoch: u64 },
    /// The engine's wake-up timer.
    Wake {
        tab: usize,
        epoch: u64,
        generation: u64,
    },
    /// A request reaches the server.
    Arrive { req: u64 },
    /// The server finishes processing a request.
    ServerDone { req: u64 },
    /// An answer reaches the client.
    Deliver { req: u64 },
    /// The transport gives up waiting.
    Timeout { req: u64 },
    /// A pull's page reaches the client.
    PullPage { tab: usize, epoch: u64, since: u64 },
    /// The tab is killed.
    Crash { tab: usize },
    /// A tab opens on the store.
    Reopen { tab: usize },
    /// After a commit, the tab posts what it stored and whether it changed anything else.
    Post { tab: usize, epoch: u64, msg: Msg },
    /// A message between tabs arrives (BroadcastChannel).
    Message { to: usize, epoch: u64, msg: Msg },
    /// A follower's throttled refresh of its mirror is due.
    RefreshTimer { tab: usize, epoch: u64 },
    /// The leader posts its answer to a forwarded command, once what the command wrote is durable.
    Reply {
        tab: usize,
        epoch: u64,
        answer: crate::rebuild::Answer,
    },
    /// A read of the store ends (its snapshot was taken when it began).
    ReadDone { tab: usize, epoch: u64, read: u64 },
    /// The lock's callback runs in the tab it was granted to.
    Granted { tab: usize, epoch: u64 },
    /// The leader's safety-net scan of the whole store.
    Scan { tab: usize, epoch: u64 },
    /// An app command a follower forwarded reaches the leader's side.
    Forwarded { forward: Forward },
}

pub struct World {
    pub seed: u64,
    pub rng: fastrand::Rng,
    pub profile: Profile,
    /// True time, ms. Tabs' clocks are offsets from it.
    pub time: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Ev>>,
    next_seq: u64,
    pub server: Server,
    pub store: Store,
    pub tabs: Vec<Tab>,
    /// The outbox's leader lock.
    pub lock: Lock,
    /// Forwarded commands waiting for the next leader.
    pub orphaned_commands: std::collections::VecDeque<Forward>,
    /// Messages and forwarded commands on their way, posts not yet made.
    pub in_transit: u64,
    /// The latest delivery time per (from, to): messages between two tabs arrive in order.
    pub channels: HashMap<(usize, usize), u64>,
    /// Store reads on their way, by id.
    pub reads: HashMap<u64, crate::broadcast::StoreRead>,
    pub next_read: u64,
    pub sends: SendLog,
    pub oracle: Oracle,
    pub requests: HashMap<u64, Request>,
    pub next_request: u64,
    pub stats: Stats,
    /// No fault strikes any more (the settling phase).
    pub healed: bool,
    /// Ops still to enqueue.
    pub budget: usize,
    /// Count conflicts whose only cause is our own tabs' acks instead of failing
    /// (`SIM_COUNT_OWN_CONFLICTS=1`), to measure them.
    pub count_own_conflicts: bool,
    /// The furthest ahead any tab's clock has been set (ms): no tab has read a time later than
    /// `time + this`, so no mark it wrote counts from later.
    pub clock_ahead_ms: i64,
    /// Each op's requests that left, for [`World::check_durable_sends`].
    pub sent: HashMap<OpId, crate::checks::Sent>,
    /// The last events, for a failure's report (`SIM_TRACE` of them, default 80).
    pub trace: Vec<String>,
    trace_len: usize,
}

impl World {
    pub fn new(seed: u64, ops: usize, tabs: usize) -> World {
        let mut rng = fastrand::Rng::with_seed(seed);
        let profile = Profile::draw(&mut rng);
        let start = 1_700_000_000_000 + rng.u64(..365 * 24 * crate::profile::HOUR);
        let server = Server::new(profile.server_ttl_ms);
        let mut world = World {
            seed,
            rng,
            time: start,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            next_seq: 0,
            server,
            store: Store::default(),
            tabs: Vec::new(),
            lock: Lock::default(),
            orphaned_commands: Default::default(),
            in_transit: 0,
            channels: HashMap::new(),
            reads: HashMap::new(),
            next_read: 0,
            sends: SendLog::default(),
            oracle: Oracle::default(),
            requests: HashMap::new(),
            next_request: 0,
            stats: Stats::default(),
            healed: false,
            count_own_conflicts: std::env::var("SIM_COUNT_OWN_CONFLICTS").is_ok_and(|v| v == "1"),
            clock_ahead_ms: 0,
            sent: HashMap::new(),
            budget: ops,
            trace: Vec::new(),
            trace_len: std::env::var("SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(80),
            profile,
        };
        for _ in 0..tabs {
            world.tabs.push(Tab::closed());
        }
        for tab in 0..tabs {
            world.at(0, Ev::Reopen { tab });
        }
        world.at(1, Ev::App);
        world
    }

    /// Schedules `ev` `delay` ms from now. Events at the same time run in the order they were
    /// scheduled, as the browser's task queue would.
    pub fn at(&mut self, delay: u64, ev: Ev) {
        let slot = self.events.len();
        self.events.push(Some(ev));
        self.queue
            .push(Reverse((self.time + delay, self.next_seq, slot)));
        self.next_seq += 1;
    }

    /// Runs one event; `false` when none is left.
    pub fn step(&mut self) -> Result<bool, String> {
        let Some(Reverse((time, _, slot))) = self.queue.pop() else {
            return Ok(false);
        };
        let ev = self.events[slot].take().expect("each event runs once");
        if matches!(ev, Ev::App) && self.budget == 0 {
            // The app is done: its pending step neither happens nor moves the clock.
            return Ok(true);
        }
        self.time = self.time.max(time);
        self.note(format!("{ev:?}"));
        self.stats.events += 1;
        self.dispatch(ev)?;
        Ok(true)
    }

    /// Adds a line to the trace a failure prints.
    pub fn note(&mut self, line: String) {
        if self.trace.len() >= self.trace_len {
            self.trace.remove(0);
        }
        self.trace.push(format!("t={} {line}", self.time));
    }

    /// Whether an event is still to come other than the app's own.
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    fn dispatch(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::App => self.app_step(),
            Ev::CommitBegin { tab, epoch } if self.alive(tab, epoch) => self.commit_begin(tab),
            Ev::CommitEnd { tab, epoch, ok } if self.alive(tab, epoch) => self.commit_end(tab, ok),
            Ev::Confirm { tab, epoch } if self.alive(tab, epoch) => self.confirm(tab),
            Ev::Wake {
                tab,
                epoch,
                generation,
            } if self.alive(tab, epoch) => self.wake(tab, generation),
            Ev::Arrive { req } => self.arrive(req),
            Ev::ServerDone { req } => self.server_done(req),
            Ev::Deliver { req } => self.deliver(req),
            Ev::Timeout { req } => self.timeout(req),
            Ev::PullPage { tab, epoch, since } if self.alive(tab, epoch) => {
                self.pull_page(tab, since)
            }
            // A crash point drawn before the faults stopped, whose event comes after: no crash then
            // (nothing would reopen the tab).
            Ev::Crash { .. } if self.healed => Ok(()),
            Ev::Crash { tab } => self.crash(tab),
            Ev::Reopen { tab } => self.reopen(tab),
            Ev::Post { tab, epoch, msg } => {
                self.in_transit -= 1;
                if self.alive(tab, epoch) {
                    self.post(tab, msg);
                }
                Ok(())
            }
            Ev::Message { to, epoch, msg } => {
                self.in_transit -= 1;
                if self.alive(to, epoch) {
                    self.on_message(to, msg)?;
                }
                Ok(())
            }
            Ev::ReadDone { tab, epoch, read } => {
                let read = self.reads.remove(&read).expect("each read ends once");
                if self.alive(tab, epoch) {
                    self.read_done(tab, read)?;
                }
                Ok(())
            }
            Ev::Forwarded { forward } => {
                self.in_transit -= 1;
                self.forwarded(forward)
            }
            Ev::RefreshTimer { tab, epoch } if self.alive(tab, epoch) => self.refresh_timer(tab),
            Ev::Reply { tab, epoch, answer } => {
                self.in_transit -= 1;
                if self.alive(tab, epoch) {
                    self.reply(tab, answer);
                }
                Ok(())
            }
            Ev::Granted { tab, epoch } if self.alive(tab, epoch) => self.granted(tab),
            Ev::Scan { tab, epoch } if self.alive(tab, epoch) => self.scan(tab),
            // An event of a tab that has died since it was scheduled.
            _ => Ok(()),
        }
    }

    pub fn alive(&self, tab: usize, epoch: u64) -> bool {
        self.tabs[tab].alive && self.tabs[tab].epoch == epoch
    }

    /// The tab's engine clock now.
    pub fn now(&self, tab: usize) -> u64 {
        self.time.saturating_add_signed(self.tabs[tab].clock_offset)
    }

    /// Draws with probability `pct` percent, never once healed.
    pub fn chance(&mut self, pct: u32) -> bool {
        !self.healed && self.rng.u32(..100) < pct
    }

    /// Several tabs share the store. Everything the multi-tab protocol adds draws from the seed only
    /// then, so a one-tab seed replays exactly as it always did.
    pub fn multi(&self) -> bool {
        self.tabs.len() > 1
    }

    /// A crash at one of the protocol's own crash points (between a commit and its post, in a
    /// promotion, with requests in flight): half the seed's crash rate, per point passed.
    pub fn crash_point(&mut self, tab: usize) -> bool {
        if !self.multi() || self.healed || self.rng.u32(..2000) >= self.profile.crash {
            return false;
        }
        self.at(0, Ev::Crash { tab });
        true
    }
}
