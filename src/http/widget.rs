//! The embeddable chat widget, served at the server root: the script at `/widget.js`, which a
//! business puts on its site with one `<script>` tag, and `/demo`, a page to try it with a
//! publishable key. Both are compiled into the binary.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const WIDGET_JS: &str = include_str!("widget/widget.js");
pub const DEMO_HTML: &str = include_str!("widget/demo.html");

/// Validator of the script, so browsers revalidate cheaply once `max-age` has passed. Weak, because
/// the gzipped and the plain bytes share it.
static WIDGET_ETAG: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(WIDGET_JS.as_bytes());
    format!("W/\"{}\"", hex::encode(&digest[..16]))
});

/// The demo page's policy: its own inline script (by hash) and the widget from this server; the
/// widget's requests and WebSocket go to this server too.
static DEMO_CSP: LazyLock<String> = LazyLock::new(|| {
    let hashes: Vec<String> = inline_scripts(DEMO_HTML)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'none'; script-src 'self' {}; style-src 'self' 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        hashes.join(" ")
    )
});

/// The bodies of the `<script>` elements without `src` in an HTML document.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</script>").map(|(body, _)| body))
}

pub fn router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(widget_js))
        .routes(routes!(demo))
        // Every site visit loads the script: gzip makes it about a third of its size.
        .layer(CompressionLayer::new().gzip(true))
}

/// The chat widget script. Embed it with
/// `<script src="https://<host>/widget.js" data-key="pk_…" async></script>`.
#[utoipa::path(
    get,
    path = "/widget.js",
    tag = "widget",
    responses(
        (status = 200, description = "The script", body = String, content_type = "application/javascript"),
        (status = 304, description = "Unchanged since the `ETag` given in `If-None-Match`"),
    )
)]
async fn widget_js(headers: HeaderMap) -> Response {
    let etag = WIDGET_ETAG.as_str();
    let common = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // Sites that isolate themselves (COEP) may still load the script.
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/javascript; charset=utf-8"),
        )],
        WIDGET_JS,
    )
        .into_response()
}

/// A page to try the widget: paste a publishable key and load the script as a site would.
#[utoipa::path(
    get,
    path = "/demo",
    tag = "widget",
    responses((status = 200, description = "The demo page", body = String, content_type = "text/html"))
)]
async fn demo() -> Response {
    let csp = HeaderValue::from_str(&DEMO_CSP).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; frame-ancestors 'none'",
    ));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        DEMO_HTML,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn app() -> axum::Router {
        let (router, _) = router::<()>().split_for_parts();
        router
    }

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn script_is_served_cacheable_and_not_sniffed() {
        let response = get("/widget.js", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "application/javascript; charset=utf-8"
        );
        assert_eq!(
            header_of(&response, header::CACHE_CONTROL),
            "public, max-age=300"
        );
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        let etag = header_of(&response, header::ETAG).to_string();
        assert!(etag.len() > 2);

        let again = get("/widget.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = get("/widget.js", Some("\"something-else\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn script_is_gzipped_for_browsers_that_accept_it() {
        let request = Request::get("/widget.js")
            .header(header::ACCEPT_ENCODING, "gzip, deflate, br")
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(header_of(&response, header::CONTENT_ENCODING), "gzip");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.len() < WIDGET_JS.len() / 2, "{} bytes", body.len());
        let plain = get("/widget.js", None).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[tokio::test]
    async fn demo_page_allows_exactly_its_own_script() {
        let response = get("/demo", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        let csp = header_of(&response, header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("script-src 'self' 'sha256-"), "{csp}");
        assert!(!csp.contains("unsafe-eval"));
        assert_eq!(inline_scripts(DEMO_HTML).count(), 1);
    }

    #[test]
    fn widget_stays_small() {
        // Served to every visitor of every embedding site: growth should be a decision.
        assert!(WIDGET_JS.len() < 40 * 1024, "{} bytes", WIDGET_JS.len());
        assert!(!WIDGET_JS.contains("innerHTML"));
    }
}
