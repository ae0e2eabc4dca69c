//! The form-encoded parameters of an OAuth request (RFC 6749 §3.2, RFC
//! 7009 §2.1, RFC 7662 §2.1): `application/x-www-form-urlencoded` only, a
//! parameter at most once, and one sent without a value is as if omitted
//! (RFC 6749 §3.1). Parameters we do not know are ignored, as the RFC asks.

use actix_web::http::header;
use actix_web::{mime, HttpRequest};

use super::error::OAuthError;

/// The parameters of one request body.
#[derive(Debug)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Reads a form body; any other content type is `invalid_request`.
    pub fn parse(req: &HttpRequest, body: &[u8]) -> Result<Form, OAuthError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.essence_str() == mime::APPLICATION_WWW_FORM_URLENCODED.as_ref());
        if !is_form {
            return Err(OAuthError::InvalidRequest(
                "the content type must be application/x-www-form-urlencoded",
            ));
        }
        Form::from_bytes(body)
    }

    fn from_bytes(body: &[u8]) -> Result<Form, OAuthError> {
        serde_urlencoded::from_bytes(body)
            .map(Form)
            .map_err(|_| OAuthError::InvalidRequest("the body is not a valid form"))
    }

    /// A parameter's value: `None` when absent or empty; `invalid_request`
    /// when it is sent more than once.
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self
            .0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str());
        match (values.next(), values.next()) {
            (_, Some(_)) => Err(OAuthError::InvalidRequest(
                "a parameter is repeated (RFC 6749 section 3.2)",
            )),
            (value, None) => Ok(value.filter(|v| !v.is_empty())),
        }
    }

    /// A parameter that must be there: its absence is `invalid_request`
    /// with `missing` as the description.
    pub fn required(&self, name: &str, missing: &'static str) -> Result<&str, OAuthError> {
        self.get(name)?.ok_or(OAuthError::InvalidRequest(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn form(body: &str) -> Form {
        Form::from_bytes(body.as_bytes()).unwrap()
    }

    #[test]
    fn values_are_percent_decoded_and_unknown_parameters_ignored() {
        let f = form("grant_type=refresh_token&refresh_token=a%2Eb+c&scope=x&client_id=y");
        assert_eq!(f.get("grant_type").unwrap(), Some("refresh_token"));
        assert_eq!(f.get("refresh_token").unwrap(), Some("a.b c"));
        assert_eq!(f.get("token").unwrap(), None);
    }

    #[test]
    fn an_empty_value_is_as_if_omitted() {
        let f = form("token=&token_type_hint");
        assert_eq!(f.get("token").unwrap(), None);
        assert_eq!(f.get("token_type_hint").unwrap(), None);
        assert!(matches!(
            f.required("token", "token is missing"),
            Err(OAuthError::InvalidRequest("token is missing"))
        ));
    }

    #[test]
    fn a_repeated_parameter_is_invalid_request() {
        let f = form("token=a&token=b");
        assert!(matches!(f.get("token"), Err(OAuthError::InvalidRequest(_))));
    }

    #[test]
    fn only_the_form_content_type_is_read() {
        for (content_type, ok) in [
            (Some("application/x-www-form-urlencoded"), true),
            (
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                true,
            ),
            (Some("Application/X-WWW-Form-Urlencoded"), true),
            (Some("application/json"), false),
            (Some("text/plain"), false),
            (Some("multipart/form-data; boundary=x"), false),
            (None, false),
        ] {
            let mut req = TestRequest::post();
            if let Some(content_type) = content_type {
                req = req.insert_header((header::CONTENT_TYPE, content_type));
            }
            let parsed = Form::parse(&req.to_http_request(), b"token=a");
            assert_eq!(parsed.is_ok(), ok, "{content_type:?}");
        }
    }
}
