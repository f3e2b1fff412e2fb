//! Webhooks: signed JSON POSTs to the URLs of `[webhooks]` when a publisher session starts or
//! stops and when a booked slot starts or ends. Delivery never blocks media or the API.
//!
//! # Events
//! One JSON object per POST (`Content-Type: application/json`):
//! ```json
//! {"id": "evt_6f1c…", "type": "publish.started", "created_at": "2026-11-21T20:55:03.120Z",
//!  "room": "main",
//!  "data": {"streamer_id": 7, "streamer_name": "Ann", "session_id": "3f2a…", "protocol": "whip"}}
//! ```
//! - `id`: unique per event (`evt_` + 32 hex digits); the same on every retry and every URL,
//!   so receivers can drop duplicates. `created_at`: RFC 3339 UTC, milliseconds.
//! - `publish.started` / `publish.stopped` ([`PublishData`]): `streamer_id`, `streamer_name`,
//!   `session_id` (the WHIP resource id, or the RTMP bridge's session), `protocol` `"whip"` or
//!   `"rtmp"`. Sent when the gateway registers a publisher session and when that session ends
//!   (DELETE, disconnect, replaced by a new publish with the same key, its window closed, the
//!   streamer deleted) — once each per session.
//! - `slot.started` / `slot.ended` ([`SlotData`]): `event_id`, `booking_id`, `streamer_id`,
//!   `artist_name`, `start`, `end` (RFC 3339 UTC) of the artist's window (contiguous bookings
//!   merged; the window the key opens for, without the graces). Sent by the schedule's timer
//!   at the window's start and end, once each (see [`crate::schedule`] for restarts and edits).
//!
//! # Headers and signature
//! - `Venue-Event-Id`, `Venue-Event-Type`: the body's `id` and `type`.
//! - `Venue-Delivery-Attempt`: 1 for the first attempt, 2 for the first retry, …
//! - `Venue-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is the lowercase hex
//!   HMAC-SHA256, keyed with the UTF-8 bytes of `webhooks.secret`, of the ASCII timestamp, a
//!   `.` and the raw body bytes: `HMAC(secret, "<t>.<body>")` (the timestamped scheme of
//!   Stripe and Standard Webhooks). `t` is the time of the attempt, so every retry is
//!   signed afresh.
//!
//! A receiver verifies it like this:
//! 1. Read the raw body bytes (before any JSON parsing or re-serialisation).
//! 2. Split the header on `,`; take `t` and every `v1` (more than one may come in future, e.g.
//!    while a secret is rotated; any match is enough).
//! 3. Reject when `|now - t|` exceeds a tolerance (5 minutes is usual): this stops replays.
//! 4. Compute `hex(HMAC-SHA256(secret, t + "." + body))` and compare it with `v1` in constant
//!    time. Then drop the event if its `id` was seen already.
//!
//! ```text
//! # Python
//! expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
//! ok = hmac.compare_digest(expected, v1) and abs(time.time() - int(t)) < 300
//! ```
//! [`Signer::verify`] does the same in Rust.
//!
//! # Delivery
//! - [`Webhooks::emit`] is synchronous and never waits: it `try_send`s into a bounded queue
//!   ([`QUEUE_CAPACITY`] events); when the queue is full the event is dropped and counted.
//!   With no URL configured it does nothing.
//! - A dispatcher task serialises each event once and hands it to one worker per URL (each with
//!   its own queue of [`URL_QUEUE_CAPACITY`] and up to [`MAX_IN_FLIGHT_PER_URL`] deliveries in
//!   flight), so a slow or dead receiver never holds back the others.
//! - An attempt ends after `timeout_ms`. Network errors, timeouts, 408, 429 and 5xx are
//!   retried up to `max_attempts` attempts in all, waiting `retry_initial_ms` × 2ⁿ (n = 0 for
//!   the first retry) capped at 60 s, jittered to a uniform value in [½, 1] × that, and at
//!   least a `Retry-After` (seconds, capped at 60 s) when the receiver sends one. 2xx is
//!   delivered; any other answer (3xx — redirects are not followed — and other 4xx) is final.
//! - Events of one URL are usually delivered in order, but retries can reorder them: order by
//!   `created_at` when it matters.
//! - Counters ([`WebhookStats`], per event × URL): delivered, failed (final answer or attempts
//!   used up), dropped (a queue was full), retried (attempts after the first); on `/metrics`.
//! - Logs name the receiver's host only (URLs may carry tokens); the secret is never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};

use crate::config::WebhooksConfig;
use crate::ids::{BookingId, EventId, StreamerId};

/// How a publisher reaches the server (`"whip"` / `"rtmp"` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// WebRTC-HTTP ingest (RFC 9725), from a browser or OBS.
    Whip,
    /// RTMP ingest (`rtmp://host/live/<stream key>`), bridged into the SFU.
    Rtmp,
}

/// Events [`Webhooks::emit`] queues before it drops new ones.
pub const QUEUE_CAPACITY: usize = 1024;
/// Events one URL's worker queues before it drops new ones.
pub const URL_QUEUE_CAPACITY: usize = 256;
/// Deliveries (attempts and the waits between them) in flight per URL.
pub const MAX_IN_FLIGHT_PER_URL: usize = 4;
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The signature header.
pub const SIGNATURE_HEADER: &str = "Venue-Signature";
/// The event id header.
pub const EVENT_ID_HEADER: &str = "Venue-Event-Id";
/// The event type header.
pub const EVENT_TYPE_HEADER: &str = "Venue-Event-Type";
/// The attempt number header (1-based).
pub const ATTEMPT_HEADER: &str = "Venue-Delivery-Attempt";

type HmacSha256 = Hmac<Sha256>;

/// What happened (`type` in the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventType {
    /// A publisher session was registered.
    #[serde(rename = "publish.started")]
    PublishStarted,
    /// A publisher session ended.
    #[serde(rename = "publish.stopped")]
    PublishStopped,
    /// A booked window started.
    #[serde(rename = "slot.started")]
    SlotStarted,
    /// A booked window ended.
    #[serde(rename = "slot.ended")]
    SlotEnded,
}

impl EventType {
    /// The wire name (`"publish.started"`, …), as in the body and `Venue-Event-Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PublishStarted => "publish.started",
            EventType::PublishStopped => "publish.stopped",
            EventType::SlotStarted => "slot.started",
            EventType::SlotEnded => "slot.ended",
        }
    }
}

/// `data` of `publish.*` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishData {
    pub streamer_id: StreamerId,
    pub streamer_name: String,
    /// The session's id (the `{session}` of `/api/whip/{session}` for WHIP).
    pub session_id: String,
    pub protocol: Protocol,
}

/// `data` of `slot.*` events: one artist's window (contiguous bookings merged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotData {
    pub event_id: EventId,
    pub booking_id: BookingId,
    pub streamer_id: StreamerId,
    pub artist_name: String,
    /// Window start, RFC 3339 UTC (`2026-11-21T21:00:00Z`).
    pub start: String,
    /// Window end, RFC 3339 UTC.
    pub end: String,
}

/// `data` of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    Publish(PublishData),
    Slot(SlotData),
}

/// One webhook event: the JSON body, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// `evt_` + 32 lowercase hex digits, random.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// The room's name.
    pub room: String,
    pub data: EventData,
}

impl Event {
    /// A `publish.started` (`started`) or `publish.stopped` event created at `at`.
    pub fn publish(started: bool, room: String, data: PublishData, at: DateTime<Utc>) -> Event {
        let kind = if started {
            EventType::PublishStarted
        } else {
            EventType::PublishStopped
        };
        Event::new(kind, room, EventData::Publish(data), at)
    }

    /// A `slot.started` (`started`) or `slot.ended` event created at `at`.
    pub fn slot(started: bool, room: String, data: SlotData, at: DateTime<Utc>) -> Event {
        let kind = if started {
            EventType::SlotStarted
        } else {
            EventType::SlotEnded
        };
        Event::new(kind, room, EventData::Slot(data), at)
    }

    fn new(kind: EventType, room: String, data: EventData, at: DateTime<Utc>) -> Event {
        let id: [u8; 16] = rand::random();
        Event {
            id: format!("evt_{}", hex::encode(id)),
            kind,
            created_at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            room,
            data,
        }
    }
}

/// Why a webhook set-up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error("webhooks.urls: {0:?} is not a valid URL")]
    Url(String),
    #[error("webhooks.secret is required when webhooks.urls is set")]
    NoSecret,
    #[error("webhooks.secret is not a usable HMAC key")]
    Key,
    #[error("building the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why [`Signer::verify`] refused a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("the signature header is not t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// HMAC-SHA256 signer and verifier of `Venue-Signature` headers.
#[derive(Clone)]
pub struct Signer {
    mac: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// A signer keyed with `secret`'s bytes. Errors: [`WebhookError::Key`] (HMAC accepts keys
    /// of any length, so in practice never).
    pub fn new(secret: &[u8]) -> Result<Signer, WebhookError> {
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| WebhookError::Key)?;
        Ok(Signer { mac })
    }

    fn mac(&self, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The header value for `body` signed at `timestamp` (Unix seconds):
    /// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
    pub fn header(&self, timestamp: i64, body: &[u8]) -> String {
        let digest = self.mac(timestamp, body).finalize().into_bytes();
        format!("t={timestamp},v1={}", hex::encode(digest))
    }

    /// Checks a `Venue-Signature` header against the raw `body` at `now` (Unix seconds),
    /// accepting timestamps at most `tolerance` away. Any one matching `v1` is enough; the
    /// comparison is constant-time.
    pub fn verify(
        &self,
        header: &str,
        body: &[u8],
        now: i64,
        tolerance: Duration,
    ) -> Result<(), VerifyError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => {
                    timestamp = Some(v.parse::<i64>().map_err(|_| VerifyError::Malformed)?)
                }
                Some(("v1", v)) => signatures.push(v),
                _ => {}
            }
        }
        let t = timestamp.ok_or(VerifyError::Malformed)?;
        if signatures.is_empty() {
            return Err(VerifyError::Malformed);
        }
        let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
        if now.abs_diff(t) > tolerance.unsigned_abs() {
            return Err(VerifyError::Stale);
        }
        let ok = signatures.iter().any(|s| {
            hex::decode(s).is_ok_and(|bytes| self.mac(t, body).verify_slice(&bytes).is_ok())
        });
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// No answer: connection error or timeout.
    Error,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again (if attempts are left).
    Retry,
    /// Give up: the receiver's answer is final.
    Fail,
}

/// The retry policy: 2xx delivered; errors, timeouts, 408, 429 and 5xx retried; anything
/// else (1xx, 3xx, other 4xx, nonsense) final.
pub fn verdict(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Error => Verdict::Retry,
        Outcome::Status(200..=299) => Verdict::Delivered,
        Outcome::Status(408 | 429 | 500..=599) => Verdict::Retry,
        Outcome::Status(_) => Verdict::Fail,
    }
}

/// Attempts and waits between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, first included, ≥ 1.
    pub max_attempts: u32,
    /// Wait before the first retry (before jitter).
    pub initial: Duration,
}

impl RetryPolicy {
    /// The policy of `config`.
    pub fn of(config: &WebhooksConfig) -> RetryPolicy {
        RetryPolicy {
            max_attempts: config.max_attempts.max(1),
            initial: Duration::from_millis(config.retry_initial_ms),
        }
    }

    /// The wait before retry `retry` (1 = the first retry) without jitter:
    /// `initial × 2^(retry-1)`, at most [`MAX_BACKOFF`].
    pub fn base_delay(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(MAX_BACKOFF)
    }

    /// The jittered wait before retry `retry`: uniform in `[base/2, base]`, and at least
    /// `retry_after` (capped at [`MAX_BACKOFF`]) when the receiver sent one.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, rng: &mut impl Rng) -> Duration {
        let base = self.base_delay(retry);
        let half = base / 2;
        let jitter = rng.random_range(0..=duration_nanos(base - half));
        let jittered = half + Duration::from_nanos(jitter);
        retry_after.map_or(jittered, |ra| jittered.max(ra.min(MAX_BACKOFF)))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Delivery counters, each per event × URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Answered 2xx.
    pub delivered: u64,
    /// Given up: a final answer, or `max_attempts` used up.
    pub failed: u64,
    /// Not attempted: a queue was full.
    pub dropped: u64,
    /// Attempts after the first.
    pub retried: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retried: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<Event>,
    urls: u64,
}

/// The emitters' handle: cheap to clone. `Default` is disabled (emit does nothing).
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    queue: Option<Arc<Queue>>,
    counters: Arc<Counters>,
}

/// What the dispatcher hands a URL worker: one event, serialised once.
#[derive(Debug)]
struct Job {
    id: String,
    kind: EventType,
    body: Bytes,
}

#[derive(Debug)]
struct Ctx {
    client: reqwest::Client,
    signer: Signer,
    policy: RetryPolicy,
    counters: Arc<Counters>,
}

impl Webhooks {
    /// A handle whose [`Webhooks::emit`] does nothing.
    pub fn disabled() -> Webhooks {
        Webhooks::default()
    }

    /// A handle queueing into a fresh queue of `capacity`, as if `urls` URLs were configured,
    /// and that queue's receiving end (the dispatcher's, or a test's).
    pub(crate) fn channel(capacity: usize, urls: usize) -> (Webhooks, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let webhooks = Webhooks {
            queue: Some(Arc::new(Queue {
                tx,
                urls: urls as u64,
            })),
            counters: Arc::new(Counters::default()),
        };
        (webhooks, rx)
    }

    /// Starts delivery for `config` (disabled when `urls` is empty): the dispatcher and one
    /// worker per URL, on the current tokio runtime. Errors: a bad URL, no secret, the HTTP
    /// client could not be built.
    pub fn start(config: &WebhooksConfig) -> Result<Webhooks, WebhookError> {
        if config.urls.is_empty() {
            return Ok(Webhooks::disabled());
        }
        let urls = config
            .urls
            .iter()
            .map(|u| reqwest::Url::parse(u).map_err(|_| WebhookError::Url(u.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let secret = config.secret.as_ref().ok_or(WebhookError::NoSecret)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Venue-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (webhooks, rx) = Webhooks::channel(QUEUE_CAPACITY, urls.len());
        let ctx = Arc::new(Ctx {
            client,
            signer: Signer::new(secret.expose().as_bytes())?,
            policy: RetryPolicy::of(config),
            counters: webhooks.counters.clone(),
        });
        let mut workers = Vec::with_capacity(urls.len());
        for url in urls {
            let (tx, rx) = mpsc::channel(URL_QUEUE_CAPACITY);
            workers.push(tx);
            tokio::spawn(url_worker(url, rx, ctx.clone()));
        }
        tokio::spawn(dispatch(rx, workers, ctx.counters.clone()));
        tracing::info!(
            urls = config.urls.len(),
            max_attempts = ctx.policy.max_attempts,
            "webhooks enabled"
        );
        Ok(webhooks)
    }

    /// Whether any URL is configured.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `event` for every URL without waiting; drops (and counts) it when the queue is
    /// full. Does nothing when disabled.
    pub fn emit(&self, event: Event) {
        let Some(queue) = &self.queue else {
            return;
        };
        let kind = event.kind;
        if queue.tx.try_send(event).is_err() {
            bump(&self.counters.dropped, queue.urls);
            tracing::warn!(
                event = kind.as_str(),
                "webhook queue full or closed; event dropped"
            );
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.counters;
        WebhookStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
        }
    }
}

/// Serialises each event once and offers it to every URL's worker without waiting.
async fn dispatch(
    mut rx: mpsc::Receiver<Event>,
    workers: Vec<mpsc::Sender<Arc<Job>>>,
    counters: Arc<Counters>,
) {
    while let Some(event) = rx.recv().await {
        let body = match serde_json::to_vec(&event) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(error = %e, "webhook event does not serialise");
                bump(&counters.failed, workers.len() as u64);
                continue;
            }
        };
        let job = Arc::new(Job {
            id: event.id,
            kind: event.kind,
            body,
        });
        for worker in &workers {
            if worker.try_send(job.clone()).is_err() {
                bump(&counters.dropped, 1);
                tracing::warn!(
                    event = job.kind.as_str(),
                    "a webhook receiver is too far behind; event dropped for it"
                );
            }
        }
    }
    tracing::debug!("webhook dispatcher stopped");
}

/// Delivers one URL's jobs, up to [`MAX_IN_FLIGHT_PER_URL`] at a time.
async fn url_worker(url: reqwest::Url, mut rx: mpsc::Receiver<Arc<Job>>, ctx: Arc<Ctx>) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_URL));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let Some(job) = rx.recv().await else {
            break;
        };
        let (ctx, url) = (ctx.clone(), url.clone());
        tokio::spawn(async move {
            deliver(&ctx, &url, &job).await;
            drop(permit);
        });
    }
}

/// Attempts, waits and retries one job to one URL; counts the result.
async fn deliver(ctx: &Ctx, url: &reqwest::Url, job: &Job) {
    let host = url.host_str().unwrap_or("?").to_owned();
    let max = ctx.policy.max_attempts.max(1);
    for attempt in 1..=max {
        let (outcome, retry_after) = attempt_once(ctx, url, job, attempt).await;
        match verdict(outcome) {
            Verdict::Delivered => {
                bump(&ctx.counters.delivered, 1);
                tracing::debug!(%host, event = job.kind.as_str(), id = %job.id, attempt, "webhook delivered");
                return;
            }
            Verdict::Retry if attempt < max => {
                let wait = ctx.policy.delay(attempt, retry_after, &mut rand::rng());
                tracing::debug!(%host, event = job.kind.as_str(), ?outcome, attempt, ?wait, "webhook attempt failed; retrying");
                bump(&ctx.counters.retried, 1);
                tokio::time::sleep(wait).await;
            }
            Verdict::Retry | Verdict::Fail => {
                bump(&ctx.counters.failed, 1);
                tracing::warn!(%host, event = job.kind.as_str(), id = %job.id, ?outcome, attempt, "webhook delivery failed");
                return;
            }
        }
    }
}

async fn attempt_once(
    ctx: &Ctx,
    url: &reqwest::Url,
    job: &Job,
    attempt: u32,
) -> (Outcome, Option<Duration>) {
    let signature = ctx.signer.header(Utc::now().timestamp(), &job.body);
    let sent = ctx
        .client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_ID_HEADER, job.id.as_str())
        .header(EVENT_TYPE_HEADER, job.kind.as_str())
        .header(ATTEMPT_HEADER, attempt.to_string())
        .body(job.body.clone())
        .send()
        .await;
    match sent {
        Ok(res) => {
            let retry_after = res
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            (Outcome::Status(res.status().as_u16()), retry_after)
        }
        Err(e) => {
            tracing::debug!(error = %e.without_url(), "webhook attempt got no answer");
            (Outcome::Error, None)
        }
    }
}

#[cfg(test)]
#[path = "tests/webhooks.rs"]
mod tests;
