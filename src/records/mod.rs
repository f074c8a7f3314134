//! A small built-in POLE records service (people, objects, locations, events) to put s62 in front
//! of: used by the tests, the demo and the load test. It knows nothing of s62 and must not import
//! the log, the proxy or the classifier; it is an ordinary, unmodified records system. Its API is
//! the one `config/sidecar.example.toml` describes, so the shipped route rules fit it.
//!
//! In memory, JSON over HTTP/1.1 and HTTP/2. Ids: `P-` people, `O-` objects, `L-` locations,
//! `E-` events.
//!
//! | request | what it does | s62 operation (example rules) |
//! |---|---|---|
//! | `GET /people?surname=` (or `?q=`) | search people → `{"results":[..],"total":n}` | consultation |
//! | `GET /people/{id}` | view a person | consultation |
//! | `POST /people` | create a person → 201 `{"id":..}` | collection |
//! | `PUT`/`PATCH /people/{id}` | alter a person | alteration |
//! | `DELETE /people/{id}` | erase a person (and links to them) | erasure |
//! | `PUT`/`POST /people/{id}/links/{other}` `{"relation","event_id"}` | link two records | combination |
//! | `POST /exports` `{"recipient","people":[{"id"}]}` | export people to a named recipient | disclosure |
//! | `GET /objects/{id}` (`owners`), `/locations/{id}` (`occupants`), `/events/{id}` (`people`) | view | consultation |
//! | `POST`/`PUT`/`PATCH /objects/{id}` | create or alter an object | alteration |
//! | `POST /events` `{"people":[{"id","role"}]}` | record an event → 201 `{"id":..}` | collection |
//! | `GET /events/bulk/{prefix}` | every event whose time starts with `prefix` (`all`: every one) | consultation (streamed) |
//! | `GET /health` | liveness | consultation, no justification |

mod data;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Largest request body the service reads.
const MAX_BODY: usize = 1 << 20;
/// Most results one search returns.
const MAX_RESULTS: usize = 50;

/// The four POLE entity kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Person,
    Object,
    Location,
    Event,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Person, Kind::Object, Kind::Location, Kind::Event];

    /// Singular name used in the `kind` field.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Object => "object",
            Kind::Location => "location",
            Kind::Event => "event",
        }
    }

    /// Collection name used in paths.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Person => "people",
            Kind::Object => "objects",
            Kind::Location => "locations",
            Kind::Event => "events",
        }
    }

    fn prefix(self) -> char {
        match self {
            Kind::Person => 'P',
            Kind::Object => 'O',
            Kind::Location => 'L',
            Kind::Event => 'E',
        }
    }
}

/// One record: its kind-specific fields, the people it concerns and its links.
#[derive(Clone, Debug)]
pub struct Record {
    kind: Kind,
    id: String,
    /// People the record concerns: owners of an object, occupants of a location, people in an
    /// event (for a person, itself).
    subjects: Vec<String>,
    fields: Map<String, Value>,
    /// (other record id, relation).
    links: Vec<(String, String)>,
}

impl Record {
    fn new(kind: Kind, id: &str, subjects: Vec<String>, fields: Value) -> Record {
        Record {
            kind,
            id: id.to_owned(),
            subjects,
            fields: match fields {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            links: Vec::new(),
        }
    }

    fn relation_to(&self, other: &str) -> Option<&str> {
        self.links
            .iter()
            .find(|(to, _)| to == other)
            .map(|(_, r)| r.as_str())
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("kind".into(), json!(self.kind.label()));
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        match self.kind {
            Kind::Person => {}
            Kind::Object => {
                let owners: Vec<Value> = self
                    .subjects
                    .iter()
                    .map(|p| json!({ "person_id": p }))
                    .collect();
                m.insert("owners".into(), Value::Array(owners));
            }
            Kind::Location => {
                let occupants: Vec<Value> = self
                    .subjects
                    .iter()
                    .map(|p| json!({ "person_id": p }))
                    .collect();
                m.insert("occupants".into(), Value::Array(occupants));
            }
            Kind::Event => {
                let people: Vec<Value> = self
                    .subjects
                    .iter()
                    .map(|p| json!({ "id": p, "role": self.relation_to(p).unwrap_or("involved") }))
                    .collect();
                m.insert("people".into(), Value::Array(people));
            }
        }
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|(to, relation)| json!({ "id": to, "relation": relation }))
            .collect();
        m.insert("links".into(), Value::Array(links));
        Value::Object(m)
    }

    fn text_matches(&self, field: &str, q: &str) -> bool {
        let q = q.to_lowercase();
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|v| v.to_lowercase().contains(&q))
    }

    fn any_text_matches(&self, q: &str) -> bool {
        let q = q.to_lowercase();
        self.id.to_lowercase() == q
            || self
                .fields
                .values()
                .any(|v| v.as_str().is_some_and(|s| s.to_lowercase().contains(&q)))
    }
}

#[derive(Debug, Default)]
struct State {
    records: BTreeMap<String, Record>,
    next: [u32; 4],
    exports: u32,
    erasure: ErasureMode,
    /// People "erased" under [`ErasureMode::HideFromSearch`]: still served by id.
    hidden: std::collections::BTreeSet<String>,
}

/// How `DELETE /people/{id}` behaves: really, or in one of the ways records systems have been
/// found to only pretend (for testing s62's erasure checks and zombie alerts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErasureMode {
    /// The person and every link to them are removed.
    #[default]
    Full,
    /// The person disappears from search but is still served by `GET /people/{id}`.
    HideFromSearch,
    /// The person record is removed, but events, objects and locations still list them.
    LeaveLinks,
}

impl State {
    fn next_id(&mut self, kind: Kind) -> String {
        let slot = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let n = self.next[slot];
        self.next[slot] = n + 1;
        format!("{}-{n}", kind.prefix())
    }

    fn get(&self, kind: Kind, id: &str) -> Option<&Record> {
        self.records.get(id).filter(|r| r.kind == kind)
    }
}

/// The records, shared by every connection. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Records {
    state: Arc<Mutex<State>>,
}

type Reply = Response<Full<Bytes>>;

impl Records {
    /// An empty service.
    pub fn empty() -> Records {
        Records::default()
    }

    /// A service holding the fictional demo records.
    pub fn demo() -> Records {
        let mut state = State::default();
        for r in data::seed() {
            state.records.insert(r.id.clone(), r);
        }
        let links = [
            ("P-1001", "E-4001", "suspect"),
            ("P-1003", "E-4001", "witness"),
            ("P-1002", "E-4002", "victim"),
            ("P-1005", "E-4002", "vehicle keeper"),
            ("P-1006", "E-4003", "complainant"),
            ("P-1007", "E-4003", "suspect"),
            ("P-1008", "E-4004", "victim"),
            ("P-1004", "E-4005", "missing person"),
            ("P-1009", "E-4006", "witness"),
            ("O-2001", "E-4002", "used in"),
            ("P-1001", "P-1010", "partner"),
        ];
        for (from, to, relation) in links {
            link_both(&mut state, from, to, relation);
        }
        state.next = [2000, 3000, 4000, 5000];
        Records {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Makes later erasures behave as `mode` says.
    pub fn set_erasure_mode(&self, mode: ErasureMode) {
        self.lock().erasure = mode;
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// True when no records are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record with this id, as the service would return it.
    pub fn view(&self, id: &str) -> Option<Value> {
        self.lock().records.get(id).map(Record::to_json)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code panics while holding the lock; if one did, the map is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Reply
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({"error": "body_too_large"}),
                );
            }
        };
        let query = parts.uri.query().unwrap_or("");
        let path: Vec<&str> = parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let with_body = |f: &dyn Fn(Value) -> Reply| {
            if body.is_empty() {
                return f(json!({}));
            }
            match serde_json::from_slice(&body) {
                Ok(v) => f(v),
                Err(e) => reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_json", "detail": e.to_string()}),
                ),
            }
        };
        let m = &parts.method;
        let read = *m == Method::GET || *m == Method::HEAD;
        let write = *m == Method::PUT || *m == Method::PATCH;
        let resp = match path.as_slice() {
            ["health"] if read => reply(StatusCode::OK, json!({"status": "ok"})),
            ["people"] if read => self.search_people(query),
            ["people"] if *m == Method::POST => with_body(&|v| self.create(Kind::Person, None, v)),
            ["people", id] if read => self.get(Kind::Person, id),
            ["people", id] if write => with_body(&|v| self.alter(Kind::Person, id, v)),
            ["people", id] if *m == Method::DELETE => self.erase(Kind::Person, id),
            ["people", id, "links", other] if write || *m == Method::POST => {
                with_body(&|v| self.link(id, other, &v))
            }
            ["exports"] if *m == Method::POST => {
                let header_recipient = parts
                    .headers
                    .get("x-recipient")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                with_body(&|v| self.export(header_recipient.as_deref(), &v))
            }
            ["objects", id] if read => self.get(Kind::Object, id),
            ["objects", id] if *m == Method::POST => {
                with_body(&|v| self.create(Kind::Object, Some(id), v))
            }
            ["objects", id] if write => with_body(&|v| self.alter(Kind::Object, id, v)),
            ["locations", id] if read => self.get(Kind::Location, id),
            ["events"] if *m == Method::POST => with_body(&|v| self.create(Kind::Event, None, v)),
            ["events", "bulk", prefix] if read => self.bulk_events(prefix),
            ["events", id] if read => self.get(Kind::Event, id),
            ["health"]
            | ["people", ..]
            | ["exports"]
            | ["objects", ..]
            | ["locations", ..]
            | ["events", ..] => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method_not_allowed"}),
            ),
            _ => not_found(),
        };
        if *m == Method::HEAD {
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, Full::new(Bytes::new()));
        }
        resp
    }

    fn search_people(&self, query: &str) -> Reply {
        let surname = query_param(query, "surname");
        let q = query_param(query, "q");
        let st = self.lock();
        let hits: Vec<&Record> = st
            .records
            .values()
            .filter(|r| r.kind == Kind::Person && !st.hidden.contains(&r.id))
            .filter(|r| {
                surname
                    .as_deref()
                    .is_none_or(|s| r.text_matches("family_name", s))
            })
            .filter(|r| q.as_deref().is_none_or(|q| r.any_text_matches(q)))
            .collect();
        let results: Vec<Value> = hits.iter().take(MAX_RESULTS).map(|r| r.to_json()).collect();
        reply(
            StatusCode::OK,
            json!({ "results": results, "total": hits.len() }),
        )
    }

    fn get(&self, kind: Kind, id: &str) -> Reply {
        match self.lock().get(kind, id) {
            Some(r) => reply(StatusCode::OK, r.to_json()),
            None => not_found(),
        }
    }

    /// Takes `subjects` for a new record from the body: people's ids in `people`, `owners` or
    /// `occupants` (`[{"id"}]` or `[{"person_id"}]`).
    fn subjects_from(fields: &mut Map<String, Value>) -> (Vec<String>, Vec<(String, String)>) {
        let mut subjects = Vec::new();
        let mut roles = Vec::new();
        for key in ["people", "owners", "occupants"] {
            if let Some(Value::Array(list)) = fields.remove(key) {
                for p in list {
                    let id = p["id"]
                        .as_str()
                        .or(p["person_id"].as_str())
                        .map(str::to_owned);
                    if let Some(id) = id {
                        if let Some(role) = p["role"].as_str() {
                            roles.push((id.clone(), role.to_owned()));
                        }
                        subjects.push(id);
                    }
                }
            }
        }
        (subjects, roles)
    }

    fn create(&self, kind: Kind, id: Option<&str>, body: Value) -> Reply {
        let Value::Object(mut fields) = body else {
            return reply(StatusCode::BAD_REQUEST, json!({"error": "expected_object"}));
        };
        let mut st = self.lock();
        let id = match id {
            Some(id) if st.records.contains_key(id) => {
                return reply(StatusCode::CONFLICT, json!({"error": "exists", "id": id}));
            }
            Some(id) if id.starts_with(kind.prefix()) => id.to_owned(),
            Some(_) => return reply(StatusCode::BAD_REQUEST, json!({"error": "bad_id"})),
            None => st.next_id(kind),
        };
        for k in ["id", "kind", "links"] {
            fields.remove(k);
        }
        let (subjects, roles) = match kind {
            Kind::Person => (vec![id.clone()], Vec::new()),
            _ => Self::subjects_from(&mut fields),
        };
        if kind != Kind::Person && subjects.iter().any(|p| st.get(Kind::Person, p).is_none()) {
            return reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "unknown_person"}),
            );
        }
        st.records.insert(
            id.clone(),
            Record::new(kind, &id, subjects.clone(), Value::Object(fields)),
        );
        for p in &subjects {
            let role = roles
                .iter()
                .find(|(r, _)| r == p)
                .map_or("involved", |(_, role)| role.as_str());
            link_both(&mut st, p, &id, role);
        }
        let body = st
            .records
            .get(&id)
            .map(Record::to_json)
            .unwrap_or(Value::Null);
        let mut resp = reply(StatusCode::CREATED, body);
        if let Ok(v) = header::HeaderValue::from_str(&format!("/{}/{id}", kind.collection())) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp
    }

    fn alter(&self, kind: Kind, id: &str, body: Value) -> Reply {
        let Value::Object(changes) = body else {
            return reply(StatusCode::BAD_REQUEST, json!({"error": "expected_object"}));
        };
        let mut st = self.lock();
        let Some(r) = st.records.get_mut(id).filter(|r| r.kind == kind) else {
            return not_found();
        };
        for (k, v) in changes {
            if matches!(
                k.as_str(),
                "id" | "kind" | "links" | "people" | "owners" | "occupants"
            ) {
                continue;
            }
            if v.is_null() {
                r.fields.remove(&k);
            } else {
                r.fields.insert(k, v);
            }
        }
        reply(StatusCode::OK, r.to_json())
    }

    fn erase(&self, kind: Kind, id: &str) -> Reply {
        let mut st = self.lock();
        if st.get(kind, id).is_none() {
            return not_found();
        }
        if st.erasure == ErasureMode::HideFromSearch {
            st.hidden.insert(id.to_owned());
            return reply(
                StatusCode::OK,
                json!({ "erased": id, "kind": kind.label() }),
            );
        }
        let Some(gone) = st.records.remove(id) else {
            return not_found();
        };
        if st.erasure == ErasureMode::Full {
            for r in st.records.values_mut() {
                r.links.retain(|(to, _)| to != id);
                r.subjects.retain(|s| s != id);
            }
        }
        // Only identifiers come back: the erased content is gone.
        reply(
            StatusCode::OK,
            json!({ "erased": gone.id, "kind": gone.kind.label() }),
        )
    }

    fn link(&self, id: &str, other: &str, body: &Value) -> Reply {
        let relation = body["relation"].as_str().unwrap_or("associate").to_owned();
        let event = body["event_id"].as_str();
        let mut st = self.lock();
        let known = |st: &State, x: &str| st.records.contains_key(x);
        if id == other
            || st.get(Kind::Person, id).is_none()
            || !known(&st, other)
            || event.is_some_and(|e| st.get(Kind::Event, e).is_none())
        {
            return not_found();
        }
        link_both(&mut st, id, other, &relation);
        if let Some(e) = event {
            for p in [id, other] {
                link_both(&mut st, p, e, &relation);
                if st.get(Kind::Person, p).is_some()
                    && let Some(ev) = st.records.get_mut(e)
                    && !ev.subjects.iter().any(|s| s == p)
                {
                    ev.subjects.push(p.to_owned());
                }
            }
        }
        reply(
            StatusCode::CREATED,
            json!({ "person_id": id, "other_id": other, "relation": relation, "event_id": event }),
        )
    }

    fn export(&self, header_recipient: Option<&str>, body: &Value) -> Reply {
        let Some(recipient) = body["recipient"]
            .as_str()
            .or(header_recipient)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
        else {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "recipient_required"}),
            );
        };
        let mut ids: Vec<&str> = body["people"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["id"].as_str()).collect())
            .unwrap_or_default();
        ids.extend(body["person_id"].as_str());
        if ids.is_empty() {
            return reply(StatusCode::BAD_REQUEST, json!({"error": "people_required"}));
        }
        let mut st = self.lock();
        let people: Vec<Value> = ids
            .iter()
            .filter_map(|id| st.get(Kind::Person, id))
            .map(Record::to_json)
            .collect();
        if people.len() != ids.len() {
            return not_found();
        }
        st.exports += 1;
        let export_id = format!("X-{:04}", st.exports);
        reply(
            StatusCode::OK,
            json!({ "export_id": export_id, "recipient": recipient, "people": people }),
        )
    }

    fn bulk_events(&self, prefix: &str) -> Reply {
        let st = self.lock();
        let events: Vec<Value> = st
            .records
            .values()
            .filter(|r| r.kind == Kind::Event)
            .filter(|r| prefix == "all" || r.text_matches("occurred_at", prefix))
            .map(Record::to_json)
            .collect();
        reply(StatusCode::OK, json!({ "events": events }))
    }
}

fn link_both(st: &mut State, from: &str, to: &str, relation: &str) {
    for (a, b) in [(from, to), (to, from)] {
        if let Some(r) = st.records.get_mut(a)
            && !r.links.iter().any(|(t, _)| t == b)
        {
            r.links.push((b.to_owned(), relation.to_owned()));
        }
    }
}

/// The first value of query parameter `name`, form-decoded (`%XX`, `+` as space).
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn not_found() -> Response<Full<Bytes>> {
    reply(StatusCode::NOT_FOUND, json!({"error": "not_found"}))
}

/// Serves `records` on `listener` (plain HTTP/1.1 and HTTP/2) until `shutdown` completes, then
/// finishes the requests in flight.
pub async fn serve(listener: TcpListener, records: Records, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let records = records.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let records = records.clone();
                    async move { Ok::<_, std::convert::Infallible>(records.handle(req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "records connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
}

/// `s62 records --listen ADDR`: serves the demo records until ctrl-c.
pub fn run(listen: std::net::SocketAddr) -> std::io::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = TcpListener::bind(listen).await?;
            eprintln!("demo records service on http://{}", listener.local_addr()?);
            serve(listener, Records::demo(), async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
            Ok(())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(
        records: &Records,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("valid request");
        let resp = records.handle(req).await;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("full body")
            .to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json")
        };
        (status, v)
    }

    fn ids(v: &Value, list: &str, field: &str) -> Vec<String> {
        v[list]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|x| x[field].as_str().map(str::to_owned))
            .collect()
    }

    #[tokio::test]
    async fn a_surname_search_returns_the_matching_people() {
        let r = Records::demo();
        let (status, v) = call(&r, Method::GET, "/people?surname=whitcombe", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&v, "results", "id"), ["P-1001", "P-1010", "P-1011"]);
        assert_eq!(v["total"], 3);
    }

    #[tokio::test]
    async fn objects_locations_and_events_name_the_people_they_concern() {
        let r = Records::demo();
        assert_eq!(
            ids(
                &call(&r, Method::GET, "/objects/O-2001", None).await.1,
                "owners",
                "person_id"
            ),
            ["P-1005", "P-1001"]
        );
        assert_eq!(
            ids(
                &call(&r, Method::GET, "/locations/L-3001", None).await.1,
                "occupants",
                "person_id"
            ),
            ["P-1001", "P-1010"]
        );
        let (_, event) = call(&r, Method::GET, "/events/E-4001", None).await;
        assert_eq!(ids(&event, "people", "id"), ["P-1001", "P-1003"]);
        assert_eq!(event["people"][0]["role"], "suspect");
        let (_, bulk) = call(&r, Method::GET, "/events/bulk/2026-10", None).await;
        assert_eq!(ids(&bulk, "events", "id"), ["E-4001", "E-4002", "E-4003"]);
    }

    #[tokio::test]
    async fn create_alter_link_export_and_erase_change_what_is_held() {
        let r = Records::demo();
        let (status, created) = call(
            &r,
            Method::POST,
            "/people",
            Some(json!({"given_name": "Ruth", "family_name": "Okafor"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let id = created["id"].as_str().expect("id").to_owned();

        let (status, altered) = call(
            &r,
            Method::PATCH,
            &format!("/people/{id}"),
            Some(json!({"note": "moved away"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(altered["note"], "moved away");

        let (status, link) = call(
            &r,
            Method::PUT,
            &format!("/people/{id}/links/P-1008"),
            Some(json!({"relation": "witness", "event_id": "E-4004"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(link["event_id"], "E-4004");
        let (_, event) = call(&r, Method::GET, "/events/E-4004", None).await;
        assert!(ids(&event, "people", "id").contains(&id));

        let (status, event) = call(
            &r,
            Method::POST,
            "/events",
            Some(json!({"category": "assault", "people": [{"id": id, "role": "victim"}]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(event["people"][0]["role"], "victim");

        let (status, export) = call(
            &r,
            Method::POST,
            "/exports",
            Some(json!({"recipient": "Crown Prosecution Service", "people": [{"id": "P-1001"}, {"id": id}]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(export["export_id"], "X-0001");
        assert_eq!(
            ids(&export, "people", "id"),
            ["P-1001".to_owned(), id.clone()]
        );

        let (status, erased) = call(&r, Method::DELETE, &format!("/people/{id}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            erased,
            json!({"erased": id, "kind": "person"}),
            "only identifiers come back"
        );
        assert!(r.view(&id).is_none());
        let event = r.view("E-4004").expect("event kept");
        assert!(
            !event.to_string().contains(&id),
            "links to the erased person are gone"
        );
    }

    #[tokio::test]
    async fn unknown_records_and_bad_bodies_get_clear_errors() {
        let r = Records::demo();
        assert_eq!(
            call(&r, Method::GET, "/people/P-9999", None).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&r, Method::GET, "/events/P-1001", None).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&r, Method::DELETE, "/events/E-4001", None).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(
                &r,
                Method::POST,
                "/exports",
                Some(json!({"people": [{"id": "P-1001"}]}))
            )
            .await
            .0,
            StatusCode::BAD_REQUEST,
            "an export needs a named recipient"
        );
        let req = Request::builder()
            .method(Method::POST)
            .uri("/people")
            .body(Full::new(Bytes::from_static(b"{not json")))
            .expect("request");
        assert_eq!(r.handle(req).await.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        assert_eq!(
            query_param("a=1&q=o%27sullivan+liam", "q").as_deref(),
            Some("o'sullivan liam")
        );
        assert_eq!(query_param("q=100%", "q").as_deref(), Some("100%"));
        assert_eq!(query_param("x=1", "q"), None);
    }
}
