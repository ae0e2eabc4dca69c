//! The responses of the account page and its assets (`GET /account...`,
//! SPEC 8): the file under its media type, with the security and caching
//! headers that every one of them carries, and the 304 of a revalidation.

use super::responses::string_header;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr};
use utoipa::ToResponse;

/// The headers of every answer of the page's files, 304 included.
fn with_headers(mut response: ResponseBuilder) -> ResponseBuilder {
    for (name, pattern, description) in [
        (
            "Content-Security-Policy",
            "^default-src 'none'; ",
            "only this origin's script, style, images and API; no inline code",
        ),
        ("X-Content-Type-Options", "^nosniff$", "nosniff"),
        ("Referrer-Policy", "^no-referrer$", "no-referrer"),
        (
            "Cache-Control",
            "^no-cache$",
            "kept, but revalidated with the ETag before each use",
        ),
        ("ETag", "^\"[0-9a-f]{16}\"$", "the version of the file"),
    ] {
        response = response.header(name, string_header(pattern, description));
    }
    response
}

fn file(description: &str, media_type: &str) -> RefOr<Response> {
    let body = ObjectBuilder::new().schema_type(Type::String);
    with_headers(
        ResponseBuilder::new()
            .description(description)
            .content(media_type, ContentBuilder::new().schema(Some(body)).build()),
    )
    .build()
    .into()
}

macro_rules! file_response {
    ($name:ident, $description:expr, $media_type:expr) => {
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (stringify!($name), file($description, $media_type))
            }
        }
    };
}

file_response!(
    AccountPage,
    "The account page: one HTML page, no inline script or style",
    "text/html"
);
file_response!(AccountStyle, "The account page's stylesheet", "text/css");
file_response!(
    AccountScript,
    "The account page's script (a JavaScript module)",
    "text/javascript"
);
file_response!(AccountIcon, "The account page's icon", "image/svg+xml");

/// A revalidation that found the copy current.
pub struct NotModified;

impl<'s> ToResponse<'s> for NotModified {
    fn response() -> (&'s str, RefOr<Response>) {
        let response = with_headers(
            ResponseBuilder::new()
                .description("`If-None-Match` names the current version: the copy is still good"),
        )
        .build();
        ("NotModified", response.into())
    }
}
