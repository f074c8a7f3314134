//! The auditor's web console, served on the query listener: a handful of static files embedded
//! in the binary (`web/`), and gRPC-Web in front of the existing `AuditQuery` service.
//!
//! Job: answer `GET`/`HEAD` for the console's own paths with the embedded file and a strict
//! Content-Security-Policy, and hand every other request to [`tonic_web::GrpcWebService`], which
//! turns gRPC-Web calls into ordinary gRPC calls for the same tonic router (plain gRPC passes
//! through unchanged). The browser therefore reaches the service through the same TLS listener,
//! with the same required client certificate, the same auditor table, roles, purpose binding and
//! self-logging: this module adds no second API and decides nothing about who may see what.
//!
//! Boundaries: no store, no writer, no configuration, no network: a tower layer over whatever
//! service the query listener builds. It must not fetch or serve anything not embedded here, and
//! the page it serves must not load anything from elsewhere (the CSP says so to the browser).

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use std::task::{Context, Poll};
use tonic::body::Body;
use tower_service::Service;

/// The Content-Security-Policy sent with every console file: scripts, styles and connections to
/// this origin only; no inline script or style, no frames, no forms posting anywhere, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file: the path it is served at, its media type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Everything the console is made of. The page's scripts are hand-written here (no npm code).
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/index.html"),
    },
    Asset {
        path: "/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/console.css"),
    },
    Asset {
        path: "/pb.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/pb.js"),
    },
    Asset {
        path: "/verify.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/verify.js"),
    },
    Asset {
        path: "/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/console.js"),
    },
    Asset {
        path: "/LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../web/LICENSE.txt"),
    },
];

fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// Is this request for the console rather than for a gRPC service? gRPC and gRPC-Web calls are
/// always `POST`s to `/package.Service/Method`; the console's files are `GET`s to its own paths.
fn is_console_request<B>(req: &Request<B>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && !req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The response for a console path: the file with its headers, or 404.
pub fn console_response(method: &Method, path: &str) -> Response<Body> {
    let Some(asset) = asset(path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(asset.body)
    };
    let mut response = Response::new(Body::new(Full::new(body)));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(asset.body.len() as u64),
    );
    secure_headers(h);
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure_headers(h);
    response
}

fn secure_headers(h: &mut http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Nothing personal is in these files, but nothing needs caching either: a new binary serves
    // new files at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// The tower layer the query listener wraps its router in: console files, then gRPC-Web.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsoleLayer;

impl<S> tower_layer::Layer<S> for ConsoleLayer {
    type Service = ConsoleService<tonic_web::GrpcWebService<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsoleService {
            inner: tonic_web::GrpcWebLayer::new().layer(inner),
        }
    }
}

/// See [`ConsoleLayer`].
#[derive(Clone, Debug)]
pub struct ConsoleService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for ConsoleService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, S::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router below is always ready (tonic's routes clone per call), so a console request
        // that does not use the readiness it reserved holds nothing back.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if is_console_request(&req) {
            let response = console_response(req.method(), req.uri().path());
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_the_policy_and_unknown_paths_are_not_found() {
        for a in ASSETS {
            let r = console_response(&Method::GET, a.path);
            assert_eq!(r.status(), StatusCode::OK, "{}", a.path);
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
        let r = console_response(&Method::GET, "/../Cargo.toml");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for a in ASSETS {
            let text = std::str::from_utf8(a.body).expect("utf8");
            for bad in [
                "http://", "https://", "//cdn", "<script>", "style=\"", "onclick=",
            ] {
                // License texts name their sources' web addresses; nothing is fetched from them.
                if a.path == "/LICENSE.txt" {
                    continue;
                }
                assert!(!text.contains(bad), "{} contains {bad}", a.path);
            }
        }
    }
}
