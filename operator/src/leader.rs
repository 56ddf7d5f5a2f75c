//! Leader election over a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one reconciles and the others stand by.
//!
//! The decision is pure ([`Elector::handle_lease`]: the Lease as read, the local monotonic
//! time and the wall time in, create / update / wait out), the shell ([`acquire`],
//! [`Leadership`]) only reads and writes the Lease. Writes are conditional: an update carries
//! the `resourceVersion` it was decided on, so two replicas racing for an expired Lease cannot
//! both win (the loser gets 409 Conflict).
//!
//! As in client-go, expiry is judged on the local clock, never on the holder's `renewTime`
//! (clocks of nodes differ): a Lease held by someone else is taken over once it has not
//! changed for `leaseDurationSeconds` of our own time. The holder renews every
//! [`Config::renew_period`] and gives up, and the process exits non-zero so that its
//! Deployment restarts it as a standby, once it could not renew for [`Config::renew_deadline`]
//! (shorter than the lease duration, so it stops before anyone else may start) or once it sees
//! another holder. On a clean shutdown the Lease is released so a standby takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::chrono::{DateTime, Utc};
use kube::api::{Api, PostParams};
use tokio::sync::oneshot;

/// The Lease's name in the operator's namespace.
pub const LEASE_NAME: &str = "dhcpair-operator";

/// How leader election runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    /// `holderIdentity`: the pod name.
    pub identity: String,
    pub lease_duration: Duration,
    /// The holder gives up when it could not renew for this long.
    pub renew_deadline: Duration,
    /// How often the holder renews.
    pub renew_period: Duration,
    /// How often a standby looks at the Lease, and a holder retries a failed renewal.
    pub retry_period: Duration,
}

impl Config {
    /// The defaults of client-go, with a 5 s renewal.
    pub fn new(namespace: String, identity: String) -> Config {
        Config {
            namespace,
            name: LEASE_NAME.to_string(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_period: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// This replica's identity: `POD_NAME`, else the host name.
pub fn identity() -> Option<String> {
    let non_empty = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    std::env::var("POD_NAME")
        .ok()
        .and_then(non_empty)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .and_then(non_empty)
        })
}

/// What to do about the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// There is none: create it, held by us.
    Create(Lease),
    /// Write this (renewal, or taking over an expired or released Lease).
    Update(Lease),
    /// Someone else holds it; it expires in `expires_in` unless renewed.
    Wait {
        holder: String,
        expires_in: Duration,
    },
}

/// The identity of one version of the Lease, to see whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    holder: Option<String>,
    renew_time: Option<DateTime<Utc>>,
    resource_version: Option<String>,
}

/// The pure part of leader election; `now` (monotonic) and `wall` (for the Lease's
/// timestamps) are arguments.
#[derive(Debug, Clone)]
pub struct Elector {
    identity: String,
    lease_duration: Duration,
    /// The Lease as last seen and since when (local time) it looked like that.
    observed: Option<(Seen, Instant)>,
}

impl Elector {
    pub fn new(identity: String, lease_duration: Duration) -> Elector {
        Elector {
            identity,
            lease_duration,
            observed: None,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Decide on the Lease as just read (None: it does not exist).
    pub fn handle_lease(
        &mut self,
        current: Option<&Lease>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Decision {
        let Some(current) = current else {
            self.observed = None;
            return Decision::Create(Lease {
                metadata: ObjectMeta::default(),
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(MicroTime(wall)),
                    renew_time: Some(MicroTime(wall)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            });
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let seen = Seen {
            holder: holder.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            resource_version: current.metadata.resource_version.clone(),
        };
        let since = match &self.observed {
            Some((s, t)) if *s == seen => *t,
            _ => now,
        };
        self.observed = Some((seen, since));
        let mut next = current.clone();
        let mut spec = spec;
        spec.lease_duration_seconds = Some(self.duration_seconds());
        spec.renew_time = Some(MicroTime(wall));
        match holder {
            Some(h) if h == self.identity => {
                next.spec = Some(spec);
                Decision::Update(next)
            }
            Some(h) => {
                let their = spec_duration(current).unwrap_or(self.lease_duration);
                let age = now.saturating_duration_since(since);
                if age < their {
                    return Decision::Wait {
                        holder: h,
                        expires_in: their - age,
                    };
                }
                next.spec = Some(self.taken(spec, wall));
                Decision::Update(next)
            }
            None => {
                next.spec = Some(self.taken(spec, wall));
                Decision::Update(next)
            }
        }
    }

    fn taken(&self, mut spec: LeaseSpec, wall: DateTime<Utc>) -> LeaseSpec {
        spec.holder_identity = Some(self.identity.clone());
        spec.acquire_time = Some(MicroTime(wall));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        spec
    }

    /// The Lease to write to give it up (a clean shutdown), when we hold it.
    pub fn release(&self, current: &Lease, wall: DateTime<Utc>) -> Option<Lease> {
        let spec = current.spec.as_ref()?;
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return None;
        }
        let mut next = current.clone();
        next.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(wall)),
            ..spec.clone()
        });
        Some(next)
    }
}

fn spec_duration(lease: &Lease) -> Option<Duration> {
    let s = lease.spec.as_ref()?.lease_duration_seconds?;
    u64::try_from(s).ok().map(Duration::from_secs)
}

/// What one look at the Lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// We hold it (created, renewed or taken over).
    Leading,
    /// Someone else holds it.
    Standby { holder: String },
    /// Our write lost a race (409); look again.
    Conflict,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 409)
}

/// Read the Lease, decide, write: one round.
pub async fn try_once(
    api: &Api<Lease>,
    name: &str,
    elector: &mut Elector,
    now: Instant,
    wall: DateTime<Utc>,
) -> Result<Outcome, kube::Error> {
    let current = api.get_opt(name).await?;
    let res = match elector.handle_lease(current.as_ref(), now, wall) {
        Decision::Wait { holder, .. } => return Ok(Outcome::Standby { holder }),
        Decision::Create(mut lease) => {
            lease.metadata.name = Some(name.to_string());
            api.create(&PostParams::default(), &lease).await
        }
        Decision::Update(lease) => api.replace(name, &PostParams::default(), &lease).await,
    };
    match res {
        Ok(_) => Ok(Outcome::Leading),
        Err(e) if is_conflict(&e) => Ok(Outcome::Conflict),
        Err(e) => Err(e),
    }
}

/// Held leadership: a task renews the Lease until it fails or [`Leadership::release`].
#[derive(Debug)]
pub struct Leadership {
    api: Api<Lease>,
    config: Config,
    elector: Elector,
    lost: oneshot::Receiver<String>,
    task: tokio::task::JoinHandle<()>,
}

/// Wait until this replica holds the Lease (forever, retrying errors; the caller stops it on
/// a shutdown signal), then keep renewing it in the background.
pub async fn acquire(api: Api<Lease>, config: Config) -> Leadership {
    let mut elector = Elector::new(config.identity.clone(), config.lease_duration);
    let mut standing_by: Option<String> = None;
    loop {
        match try_once(&api, &config.name, &mut elector, Instant::now(), Utc::now()).await {
            Ok(Outcome::Leading) => break,
            Ok(Outcome::Standby { holder }) => {
                if standing_by.as_ref() != Some(&holder) {
                    tracing::info!(lease = %config.name, %holder, "standing by: the lease is held");
                    standing_by = Some(holder);
                }
            }
            Ok(Outcome::Conflict) => {
                tracing::debug!("lost a race for the lease; looking again");
            }
            Err(e) => tracing::warn!(lease = %config.name, namespace = %config.namespace,
                error = %e, "reading or writing the lease failed (is coordination.k8s.io/v1 served? may we use leases?)"),
        }
        tokio::time::sleep(config.retry_period).await;
    }
    tracing::info!(lease = %config.name, identity = %config.identity, "leading");
    let (tx, lost) = oneshot::channel();
    let task = tokio::spawn(renew(api.clone(), config.clone(), elector.clone(), tx));
    Leadership {
        api,
        config,
        elector,
        lost,
        task,
    }
}

async fn renew(
    api: Api<Lease>,
    config: Config,
    mut elector: Elector,
    lost: oneshot::Sender<String>,
) {
    let mut last_ok = Instant::now();
    let mut wait = config.renew_period;
    let why = loop {
        tokio::time::sleep(wait).await;
        match try_once(&api, &config.name, &mut elector, Instant::now(), Utc::now()).await {
            Ok(Outcome::Leading) => {
                last_ok = Instant::now();
                wait = config.renew_period;
                continue;
            }
            Ok(Outcome::Standby { holder }) => break format!("the lease is held by {holder} now"),
            Ok(Outcome::Conflict) => tracing::warn!("renewing the lease: conflict; retrying"),
            Err(e) => tracing::warn!(error = %e, "renewing the lease failed; retrying"),
        }
        if last_ok.elapsed() >= config.renew_deadline {
            break format!(
                "the lease could not be renewed for {}s",
                config.renew_deadline.as_secs()
            );
        }
        wait = config.retry_period;
    };
    let _ = lost.send(why);
}

impl Leadership {
    /// Resolves when leadership is lost, with why.
    pub async fn lost(&mut self) -> String {
        (&mut self.lost)
            .await
            .unwrap_or_else(|_| "the lease renewal task ended".to_string())
    }

    /// Stop renewing and give the Lease up (best effort), so a standby takes over at once.
    pub async fn release(self) {
        self.task.abort();
        let res = async {
            let Some(current) = self.api.get_opt(&self.config.name).await? else {
                return Ok(());
            };
            if let Some(next) = self.elector.release(&current, Utc::now()) {
                self.api
                    .replace(&self.config.name, &PostParams::default(), &next)
                    .await?;
                tracing::info!(lease = %self.config.name, "lease released");
            }
            Ok::<(), kube::Error>(())
        };
        if let Err(e) = res.await {
            tracing::warn!(error = %e, "releasing the lease failed; it expires on its own");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, rv: &str, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                namespace: Some("ops".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(Utc::now())),
                lease_transitions: Some(3),
                ..Default::default()
            }),
        }
    }

    fn spec_of(d: &Decision) -> LeaseSpec {
        match d {
            Decision::Create(l) | Decision::Update(l) => l.spec.clone().unwrap_or_default(),
            Decision::Wait { .. } => LeaseSpec::default(),
        }
    }

    #[test]
    fn no_lease_is_created_held_by_us() {
        let mut e = Elector::new("op-1".into(), Duration::from_secs(15));
        let d = e.handle_lease(None, Instant::now(), Utc::now());
        assert!(matches!(d, Decision::Create(_)));
        let s = spec_of(&d);
        assert_eq!(s.holder_identity.as_deref(), Some("op-1"));
        assert_eq!(s.lease_duration_seconds, Some(15));
        assert_eq!(s.lease_transitions, Some(0));
        assert!(s.acquire_time.is_some() && s.renew_time.is_some());
    }

    #[test]
    fn our_own_lease_is_renewed_keeping_its_version_for_a_conditional_write() {
        let mut e = Elector::new("op-1".into(), Duration::from_secs(15));
        let l = lease(Some("op-1"), "7", 15);
        let wall = Utc::now();
        let d = e.handle_lease(Some(&l), Instant::now(), wall);
        let Decision::Update(next) = &d else {
            panic!("{d:?}");
        };
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
        let s = spec_of(&d);
        assert_eq!(s.holder_identity.as_deref(), Some("op-1"));
        assert_eq!(s.renew_time.map(|t| t.0), Some(wall));
        assert_eq!(s.lease_transitions, Some(3), "a renewal is no transition");
    }

    #[test]
    fn a_lease_held_by_another_is_taken_only_after_it_did_not_change_for_its_duration() {
        let mut e = Elector::new("op-2".into(), Duration::from_secs(15));
        let t0 = Instant::now();
        let held = lease(Some("op-1"), "7", 15);
        let d = e.handle_lease(Some(&held), t0, Utc::now());
        assert_eq!(
            d,
            Decision::Wait {
                holder: "op-1".into(),
                expires_in: Duration::from_secs(15)
            }
        );
        let d = e.handle_lease(Some(&held), t0 + Duration::from_secs(14), Utc::now());
        assert!(
            matches!(d, Decision::Wait { expires_in, .. } if expires_in == Duration::from_secs(1))
        );
        // Renewed by its holder at 14 s: the clock starts again.
        let renewed = lease(Some("op-1"), "8", 15);
        let d = e.handle_lease(Some(&renewed), t0 + Duration::from_secs(14), Utc::now());
        assert!(matches!(d, Decision::Wait { .. }));
        let d = e.handle_lease(Some(&renewed), t0 + Duration::from_secs(28), Utc::now());
        assert!(matches!(d, Decision::Wait { .. }), "{d:?}");
        let d = e.handle_lease(Some(&renewed), t0 + Duration::from_secs(29), Utc::now());
        let Decision::Update(next) = &d else {
            panic!("{d:?}");
        };
        assert_eq!(next.metadata.resource_version.as_deref(), Some("8"));
        let s = spec_of(&d);
        assert_eq!(s.holder_identity.as_deref(), Some("op-2"));
        assert_eq!(s.lease_transitions, Some(4));
        assert!(s.acquire_time.is_some());
    }

    #[test]
    fn the_holders_own_duration_counts_not_ours() {
        let mut e = Elector::new("op-2".into(), Duration::from_secs(15));
        let t0 = Instant::now();
        let held = lease(Some("op-1"), "7", 60);
        assert!(matches!(
            e.handle_lease(Some(&held), t0, Utc::now()),
            Decision::Wait { .. }
        ));
        let d = e.handle_lease(Some(&held), t0 + Duration::from_secs(30), Utc::now());
        assert!(matches!(d, Decision::Wait { .. }));
    }

    #[test]
    fn a_released_lease_is_taken_at_once_and_only_the_holder_releases() {
        let holder = Elector::new("op-1".into(), Duration::from_secs(15));
        let held = lease(Some("op-1"), "7", 15);
        let released = holder.release(&held, Utc::now());
        let Some(released) = released else {
            panic!("the holder releases");
        };
        let s = released.spec.clone().unwrap_or_default();
        assert_eq!(s.holder_identity, None);
        assert!(Elector::new("op-2".into(), Duration::from_secs(15))
            .release(&held, Utc::now())
            .is_none());
        let mut e = Elector::new("op-2".into(), Duration::from_secs(15));
        let d = e.handle_lease(Some(&released), Instant::now(), Utc::now());
        assert_eq!(spec_of(&d).holder_identity.as_deref(), Some("op-2"));
    }

    // Mocked apiserver (tower-test): the calls of acquiring and renewing.
    mod calls {
        use super::*;
        use http::{Request, Response};
        use kube::client::Body;
        use kube::Client;
        use serde_json::{json, Value};
        use tower_test::mock;

        type Handle = mock::Handle<Request<Body>, Response<Body>>;

        async fn expect(
            h: &mut Handle,
            method: &str,
            path: &str,
            code: u16,
            reply: Value,
        ) -> Value {
            let next = tokio::time::timeout(Duration::from_secs(10), h.next_request()).await;
            let Ok(Some((req, send))) = next else {
                panic!("no request; wanted {method} {path}");
            };
            assert_eq!(
                (req.method().as_str(), req.uri().path()),
                (method, path),
                "unexpected request"
            );
            let bytes = match req.into_body().collect_bytes().await {
                Ok(b) => b,
                Err(e) => panic!("body: {e}"),
            };
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let reply = if reply.is_null() { body.clone() } else { reply };
            match Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&reply).unwrap_or_default()))
            {
                Ok(r) => send.send_response(r),
                Err(e) => panic!("response: {e}"),
            }
            body
        }

        const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";

        fn not_found() -> Value {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "NotFound", "code": 404, "message": "leases \"dhcpair-operator\" not found"})
        }

        #[tokio::test]
        async fn acquiring_reads_then_creates_the_lease_and_renewing_replaces_it() {
            let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
            let api: Api<Lease> = Api::namespaced(Client::new(svc, "default"), "ops");
            let server = async move {
                let lease_path = format!("{PATH}/{LEASE_NAME}");
                expect(&mut h, "GET", &lease_path, 404, not_found()).await;
                let created = expect(&mut h, "POST", PATH, 201, Value::Null).await;
                assert_eq!(created["metadata"]["name"], LEASE_NAME);
                assert_eq!(created["spec"]["holderIdentity"], "op-1");
                assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
                let mut stored = created.clone();
                stored["metadata"]["resourceVersion"] = json!("5");
                expect(&mut h, "GET", &lease_path, 200, stored).await;
                let renewed = expect(&mut h, "PUT", &lease_path, 200, Value::Null).await;
                assert_eq!(renewed["metadata"]["resourceVersion"], "5");
                assert_eq!(renewed["spec"]["holderIdentity"], "op-1");
                assert_ne!(renewed["spec"]["renewTime"], created["spec"]["renewTime"]);
            };
            let client = async move {
                let mut e = Elector::new("op-1".into(), Duration::from_secs(15));
                let t0 = Utc::now();
                let first = try_once(&api, LEASE_NAME, &mut e, Instant::now(), t0).await;
                let later = t0 + k8s_openapi::chrono::Duration::seconds(5);
                let second = try_once(&api, LEASE_NAME, &mut e, Instant::now(), later).await;
                (first.ok(), second.ok())
            };
            let ((first, second), ()) = tokio::join!(client, server);
            assert_eq!(first, Some(Outcome::Leading));
            assert_eq!(second, Some(Outcome::Leading));
        }

        #[tokio::test]
        async fn a_held_lease_means_standby_without_a_write_and_a_lost_race_is_a_conflict() {
            let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
            let api: Api<Lease> = Api::namespaced(Client::new(svc, "default"), "ops");
            let server = async move {
                let lease_path = format!("{PATH}/{LEASE_NAME}");
                let held = serde_json::to_value(lease(Some("op-1"), "7", 15)).unwrap_or_default();
                expect(&mut h, "GET", &lease_path, 200, held).await;
                // Released meanwhile: taken over, but another standby wrote first.
                let released = serde_json::to_value(lease(None, "8", 1)).unwrap_or_default();
                expect(&mut h, "GET", &lease_path, 200, released).await;
                let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "Conflict", "code": 409, "message": "the object has been modified"});
                let body = expect(&mut h, "PUT", &lease_path, 409, conflict).await;
                assert_eq!(body["metadata"]["resourceVersion"], "8");
                assert_eq!(body["spec"]["holderIdentity"], "op-2");
            };
            let client = async move {
                let mut e = Elector::new("op-2".into(), Duration::from_secs(15));
                let a = try_once(&api, LEASE_NAME, &mut e, Instant::now(), Utc::now()).await;
                let b = try_once(&api, LEASE_NAME, &mut e, Instant::now(), Utc::now()).await;
                (a.ok(), b.ok())
            };
            let ((a, b), ()) = tokio::join!(client, server);
            assert_eq!(
                a,
                Some(Outcome::Standby {
                    holder: "op-1".into()
                })
            );
            assert_eq!(b, Some(Outcome::Conflict));
        }
    }
}
