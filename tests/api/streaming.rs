//! The body is streamed, and a store failure after the 200 aborts it.

use crate::helpers::*;
use async_trait::async_trait;
use catalytics::domain::{
    AccessGrant, AuditRecord, Buckets, DateRange, Event, LoginCodeId, OrgId, Timestamp, UserId,
};
use catalytics::store::{
    ErasureOutcome, Export, IngestOutcome, PoolUse, Purged, SharedRateLimiter, Store, StoreError,
    Summary,
};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// What the wrapped export does after `after` batches.
#[derive(Clone)]
pub(crate) enum Fault {
    Fail,
    Stall,
    /// Nothing after; but each export first waits for (and uses up) a
    /// permit, so a test decides when downloads get going.
    Gate(Arc<tokio::sync::Semaphore>),
}

/// A store that behaves like the real one except that its export goes
/// wrong after a number of batches.
struct FaultyStore {
    inner: Arc<dyn Store>,
    after: usize,
    fault: Fault,
}

#[async_trait]
impl Store for FaultyStore {
    async fn ingest(&self, events: Vec<Event>) -> Result<IngestOutcome, StoreError> {
        self.inner.ingest(events).await
    }
    async fn export(&self, org: &OrgId, range: DateRange) -> Result<Export, StoreError> {
        if let Fault::Gate(gate) = &self.fault {
            gate.acquire().await.unwrap().forget();
            return self.inner.export(org, range).await;
        }
        let Export { dictionary, rows } = self.inner.export(org, range).await?;
        let fault = self.fault.clone();
        let tail = futures_util::stream::once(async move {
            match fault {
                Fault::Stall => std::future::pending().await,
                _ => Err(StoreError::Backend("disk on fire".into())),
            }
        });
        Ok(Export {
            dictionary,
            rows: rows.take(self.after).chain(tail).boxed(),
        })
    }
    async fn summary(&self, org: &OrgId, buckets: &Buckets) -> Result<Summary, StoreError> {
        self.inner.summary(org, buckets).await
    }
    async fn may_view_analytics(&self, org: &OrgId, user: &UserId) -> Result<bool, StoreError> {
        self.inner.may_view_analytics(org, user).await
    }
    async fn grant(&self, grant: &AccessGrant) -> Result<bool, StoreError> {
        self.inner.grant(grant).await
    }
    async fn revoke(&self, grant: &AccessGrant) -> Result<bool, StoreError> {
        self.inner.revoke(grant).await
    }
    async fn list_access(&self, org: Option<&OrgId>) -> Result<Vec<AccessGrant>, StoreError> {
        self.inner.list_access(org).await
    }
    async fn redeem_login_code(
        &self,
        id: &LoginCodeId,
        valid_until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.redeem_login_code(id, valid_until).await
    }
    async fn erase_user(
        &self,
        org: &OrgId,
        user: &UserId,
        actor: Option<&UserId>,
    ) -> Result<ErasureOutcome, StoreError> {
        self.inner.erase_user(org, user, actor).await
    }
    async fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.record_audit(record).await
    }
    async fn list_audit(
        &self,
        org: &OrgId,
        since: Option<Timestamp>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.list_audit(org, since).await
    }
    async fn purge_events(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError> {
        self.inner.purge_events(before, limit).await
    }
    async fn purge_audit(&self, before: Timestamp, limit: u64) -> Result<Purged, StoreError> {
        self.inner.purge_audit(before, limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn holds_events(&self) -> Result<bool, StoreError> {
        self.inner.holds_events().await
    }
    fn pool_use(&self) -> Option<PoolUse> {
        self.inner.pool_use()
    }
    fn max_concurrent_exports(&self) -> Option<usize> {
        self.inner.max_concurrent_exports()
    }
    fn shared_rate_limiter(&self) -> Option<Arc<dyn SharedRateLimiter>> {
        self.inner.shared_rate_limiter()
    }
}

/// Wraps the app's store so its exports go wrong as `fault` says.
pub(crate) fn faulty(fault: Fault, after: usize) -> StoreWrapper {
    Box::new(move |inner| {
        Arc::new(FaultyStore {
            inner,
            after,
            fault,
        })
    })
}

pub(crate) async fn faulty_app(fault: Fault, after: usize) -> TestApp {
    spawn_app_with(AppOptions {
        wrap_store: faulty(fault, after),
        ..Default::default()
    })
    .await
}

pub(crate) async fn many_events(app: &TestApp, n: usize) {
    let base = time::macros::datetime!(2024-01-01 0:00 UTC).unix_timestamp() * 1000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let events = chunk
            .iter()
            .map(|i| {
                let mut e = event("org-a", "2024-01-01T00:00:00.000Z");
                e.timestamp = catalytics::domain::Timestamp::from_millis(base + *i as i64 * 1000);
                e
            })
            .collect();
        app.ingest(events).await;
    }
}

async fn a_mid_stream_store_failure_aborts_the_response() {
    let app = faulty_app(Fault::Fail, 2).await;
    let bearer = app.admin_bearer("org-a").await;
    many_events(&app, 5000).await;
    let response = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(
        response.status(),
        200,
        "the failure happens after the headers"
    );
    let body = response.bytes().await;
    assert!(
        body.is_err(),
        "a truncated body must be an error, not a short file: got {:?} bytes",
        body.map(|b| b.len())
    );
}

async fn the_first_bytes_leave_before_the_last_row_is_read() {
    let app = faulty_app(Fault::Stall, 1).await;
    let bearer = app.admin_bearer("org-a").await;
    many_events(&app, 3000).await;
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        app.get_download(Some(&bearer), &wide()),
    )
    .await
    .expect("headers arrive while the store is still producing");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("first chunk arrives");
    let first = first.unwrap().unwrap();
    assert!(first.starts_with(b"Timestamp,Event,"));
}

async fn a_healthy_large_export_is_whole() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    many_events(&app, 5000).await;
    let response = app.get_download(Some(&bearer), &wide()).await;
    let (_, rows) = parse_csv(&response.bytes().await.unwrap());
    assert_eq!(rows.len(), 5000);
}

/// Every slot busy: a download queues for `download_queue_wait`, then 429.
async fn downloads_queued_past_the_wait_get_429() {
    let app = spawn_app_with(AppOptions {
        settings: Box::new(|s| {
            s.limits.max_concurrent_downloads = 1;
            s.limits.download_queue_wait = Duration::from_millis(100);
        }),
        wrap_store: faulty(Fault::Stall, 1),
    })
    .await;
    let bearer = app.admin_bearer("org-a").await;
    many_events(&app, 100).await;
    let first = app.get_download(Some(&bearer), &wide()).await; // holds the only slot
    assert_eq!(first.status(), 200);
    let second = app.get_download(Some(&bearer), &wide()).await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    assert_eq!(
        json_of(second).await,
        error_body(
            "TooManyRequests",
            "More requests were received than the subscription rate-limit allows."
        )
    );
    drop(first); // the client goes away: the slot is freed
    let mut third = None;
    for _ in 0..50 {
        let r = app.get_download(Some(&bearer), &wide()).await;
        if r.status() == 200 {
            third = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        third.is_some(),
        "the slot comes back when the first download ends"
    );
}

async fn each_organization_has_its_own_download_rate() {
    let app = spawn_app_with(AppOptions {
        settings: Box::new(|s| s.limits.downloads_per_minute_per_org = Some(2)),
        ..Default::default()
    })
    .await;
    let (a, b) = (
        app.admin_bearer("org-a").await,
        app.admin_bearer("org-b").await,
    );
    for _ in 0..2 {
        assert_eq!(app.get_download(Some(&a), &wide()).await.status(), 200);
    }
    let limited = app.get_download(Some(&a), &wide()).await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        json_of(limited).await,
        error_body(
            "TooManyRequests",
            "More requests were received than the subscription rate-limit allows."
        )
    );
    assert_eq!(
        app.get_download(Some(&b), &wide()).await.status(),
        200,
        "another organization is not limited"
    );
    let bad = app.get_download(Some(&a), "startDate=nope").await;
    assert_eq!(bad.status(), 422, "parameters are checked before the rate");
}

crate::both_backends!(
    each_organization_has_its_own_download_rate,
    a_mid_stream_store_failure_aborts_the_response,
    the_first_bytes_leave_before_the_last_row_is_read,
    a_healthy_large_export_is_whole,
    downloads_queued_past_the_wait_get_429,
);
