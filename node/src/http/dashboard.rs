//! `GET /`: the live dashboard. A static page built into the binary from
//! `dashboard/` at the workspace root (HTML, CSS and one hand-written ES
//! module, so `cargo build` needs no Node). The page reads only this node:
//! `/ws` for the payment feed, `/metrics` and `/health` for the figures,
//! and, with an API key, `/api/observer/dead-letters`. Its
//! Content-Security-Policy keeps it that way: nothing from another origin,
//! no inline script or style.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::App;

const INDEX: &str = include_str!("../../../dashboard/index.html");
const SCRIPT: &str = include_str!("../../../dashboard/app.js");
const STYLE: &str = include_str!("../../../dashboard/style.css");

/// Same-origin only. `connect-src` adds `ws:`/`wss:` because browsers that
/// predate CSP 3 do not count `ws://` to the page's own host as `'self'`;
/// `img-src data:` is the empty favicon, which spares a request.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page and its two assets.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(index))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/style.css", get(style))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small, and must follow the binary: revalidate rather than cache.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_asset_has_its_type_and_the_policy() {
        for (resp, ty) in [
            (index().await, "text/html"),
            (script().await, "text/javascript"),
            (style().await, "text/css"),
        ] {
            let h = resp.headers();
            assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(ty));
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

    #[test]
    fn the_page_names_no_other_origin() {
        // The SVG namespace is a name, not a request.
        for text in [INDEX, SCRIPT, STYLE] {
            let rest = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !rest.contains("http://") && !rest.contains("https://") && !rest.contains("//cdn")
            );
            assert!(!rest.contains("@import") && !rest.contains("url("));
        }
        assert!(INDEX.contains(r#"src="/dashboard/app.js""#));
        assert!(INDEX.contains(r#"href="/dashboard/style.css""#));
        // No inline script or style the policy would refuse.
        assert!(
            !INDEX.contains("<style") && !INDEX.contains(" style=") && !INDEX.contains("onclick")
        );
    }
}
